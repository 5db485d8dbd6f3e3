"""`addgp run`, `addgp nightly`, `addgp serve`: the flows of a pipeline config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from flows.cli.common import (
    EXIT_TOO_MANY_REJECTS,
    FAIL_ON_REGRESSION_HELP,
    app,
    exit_codes,
    exit_on_regressions,
    fail,
)
from flows.cli.console import say


def default_config() -> Path:
    """The embedded demo config shipped inside the package."""
    return Path(str(resources.files("configs") / "demo.yaml"))


@app.command()
def run(
    config: Path | None = typer.Argument(None, help="Pipeline config (YAML). Default: the embedded demo config."),
    run_id: str | None = typer.Option(None, help="Name of the report folder (default: UTC time + config name)."),
    fail_on_regression: bool = typer.Option(True, help=FAIL_ON_REGRESSION_HELP),
) -> None:
    """Run the whole pipeline of CONFIG: ingest, embed, train, evaluate, report.

    Exit code 6: the run finished, and its report found regressions against the previous one.
    Exit code 7: a corpus lost a split or too many rows at ingest; the run left it out (of the
    role that needed the split) and published the report of the rest, which names it."""
    from flows.config import load_pipeline_config

    path = config or default_config()
    with exit_codes():
        loaded = load_pipeline_config(path)  # fail here, before any server or cluster starts
    say(f"addgp run: {path} (config {loaded.name}, workdir {loaded.workdir})")
    from flows.cli.server import prefect_api
    from flows.pipeline import pipeline_flow
    from storage.reports import read_report_metrics

    with exit_codes(), prefect_api():
        folder = pipeline_flow(str(path), run_id=run_id)
    typer.echo(f"report: {folder}/index.html")
    published = read_report_metrics(folder)
    regressions = published.get("comparison", {}).get("regressions", [])
    left_out = published.get("left_out") or []
    if left_out:
        exit_on_regressions(regressions, fail_on_regression=False)
        for record in left_out:
            typer.secho(f"left out: {record['dataset']} ({record['role']}): {record['reason']}", err=True)
        fail(
            f"{len(left_out)} corpus role(s) left out after ingest lost rows; the report covers the rest "
            "(section 'Corpora left out'). Fix those corpora and run again.",
            EXIT_TOO_MANY_REJECTS,
        )
    exit_on_regressions(regressions, fail_on_regression)


@app.command()
def nightly(
    config: Path = typer.Argument(..., help="Pipeline config with a `nightly:` section."),
    run_id: str | None = typer.Option(
        None, help="Name of the report folder (default: UTC time + config name + '-nightly')."
    ),
) -> None:
    """Run one night now: absorb new inbox batches, challenge the champion, promote if better."""
    from flows.config import load_pipeline_config

    with exit_codes():
        loaded = load_pipeline_config(config)
        if loaded.nightly is None:
            fail(f"{config}: no `nightly:` section (inbox, detector, strategy); see docs/operations.md")
    say(f"addgp nightly: {config} (config {loaded.name}, workdir {loaded.workdir}, detector {loaded.nightly.detector})")
    from flows.cli.server import prefect_api
    from flows.nightly import nightly_flow

    with exit_codes(FileExistsError), prefect_api():
        outcome = nightly_flow(str(config), run_id=run_id)
    verdict = "nothing new" if outcome.nothing_new else ("challenger promoted" if outcome.promoted else "champion kept")
    if outcome.outcome == "not enough evidence yet":
        verdict = "not enough evidence yet, champion kept"
    resumed = " (resumed an unfinished night)" if outcome.resumed else ""
    drifted = "; tonight's inbox drifted from the champion's training data" if outcome.drifted else ""
    typer.echo(f"{verdict}{resumed}{drifted}; report: {outcome.report}/index.html")


@app.command()
def serve(
    config: Path = typer.Argument(..., help="Pipeline config; its `schedule:` says when each deployment runs."),
    pause_on_stop: bool = typer.Option(
        True,
        help="Pause both deployments' schedules when this process stops (SIGTERM, Ctrl-C), so nothing is "
        "scheduled while no server runs them; --no-pause-on-stop keeps them scheduled (runs due meanwhile "
        "wait for the next `addgp serve`).",
    ),
) -> None:
    """Serve the scheduled deployments (nightly, weekly benchmark) from this process until stopped.

    Stopping it (SIGTERM from `systemctl stop` or `restart`, Ctrl-C) pauses both deployments by default: the
    Prefect UI shows them Paused until the next `addgp serve` of this config starts, which resumes them."""
    with exit_codes():
        from flows.deployments import build_deployments

        deployments = build_deployments(config)
    from prefect import serve as prefect_serve

    prefect_serve(*deployments, pause_on_shutdown=pause_on_stop)
