"""`addgp models`, `addgp runs`, `addgp show`, `addgp compare`: what a workspace holds, read-only.

Each verb takes the workspace from --config (a pipeline config's workdir; default: the embedded
demo config) or --workdir; the listing and formatting are tasks/report/inventory.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli.common import app, exit_codes, fail

CONFIG_HELP = "Pipeline config whose workdir to read (default: the embedded demo config)."
WORKDIR_HELP = "The workspace folder itself (instead of --config)."
JSON_HELP = "Machine-readable output."


def _workdir(config: Path | None, workdir: Path | None) -> Path:
    if config is not None and workdir is not None:
        fail("give --config or --workdir, not both")
    if workdir is not None:
        if not workdir.is_dir():
            fail(f"--workdir {workdir}: no such folder")
        return workdir
    from flows.cli.pipeline import default_config
    from flows.config import load_pipeline_config

    with exit_codes():
        return load_pipeline_config(config or default_config()).workdir


@app.command()
def models(
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List every registered model version: kind, created, trained on, parent, champion / latest."""
    from storage.workspace import Workspace
    from tasks.report.inventory import model_inventory, render_models

    workspace = Workspace.at(_workdir(config, workdir))
    with exit_codes():
        records = model_inventory(workspace.models, workspace.state)
    typer.echo(json.dumps(records, indent=2, default=str) if as_json else render_models(records))


@app.command()
def runs(
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the published reports: runs (models, corpora, regressions) and nightly reports (per detector, decision)."""
    from storage.workspace import Workspace
    from tasks.report.inventory import render_runs, run_inventory

    workspace = Workspace.at(_workdir(config, workdir))
    records = run_inventory(workspace.reports)
    typer.echo(json.dumps(records, indent=2, default=str) if as_json else render_runs(records))


@app.command()
def show(
    model: str = typer.Argument(
        ...,
        help="NAME or NAME/vN in the workspace's registry, or a path MODELS/NAME[/vN]; "
        "NAME is the champion in service, else the latest version.",
    ),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the whole model card."),
) -> None:
    """Show a model's card: what it was trained on, its parent and adaptations, its settings."""
    from storage.models import read_card, resolve_model
    from storage.workspace import Workspace
    from tasks.report.inventory import in_service, model_card_lines

    as_path = Path(model)
    if not as_path.exists():
        as_path = Path(Workspace.at(_workdir(config, workdir)).models) / model
    with exit_codes():
        resolved = resolve_model(str(as_path))
        card = read_card(resolved.path)
    if as_json:
        typer.echo(json.dumps(card, indent=2, default=str))
        return
    typer.echo("\n".join(model_card_lines(card, resolved.reason, in_service(resolved.path, card))))


@app.command()
def compare(
    before: str = typer.Argument(..., help="Run id (a folder under REPORTS/) or a report folder: the older run."),
    after: str = typer.Argument(..., help="Run id or report folder: the newer run."),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Diff two chosen runs: every EER cell side by side, and the regressions and improvements beyond
    the CI half-width (the report's own rule against the previous run)."""
    from storage.reports import read_report_metrics
    from storage.workspace import Workspace
    from tasks.report.inventory import compare_runs, render_comparison

    def document(run: str) -> dict:
        folder = Path(run)
        if not (folder / "metrics.json").is_file():
            folder = Path(Workspace.at(_workdir(config, workdir)).reports) / run
        if not (folder / "metrics.json").is_file():
            fail(f"no published report {run!r}: expected {folder}/metrics.json (`addgp runs` lists them)")
        with exit_codes(ValueError, OSError):
            return read_report_metrics(folder)

    diff = compare_runs(document(before), document(after))
    typer.echo(json.dumps(diff, indent=2, default=str) if as_json else render_comparison(diff))
