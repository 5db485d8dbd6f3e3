"""The ``addgp`` command line. Each verb validates its inputs, calls a flow or a stage, prints a summary.

Exit codes: 0 success, 2 bad input (config, paths, layouts: the message says which and how
to fix it), 3 an encoder or model that is not available on this machine, 4 another run of
the same kind holds the lock, 5 (`addgp score`) a model asked to score embeddings of another
encoder variant (fp32/int8) than it was trained on.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

# Prefect's local server would otherwise try to send telemetry on every run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer  # noqa: E402

from addgp import __version__  # noqa: E402
from addgp.config import ConfigError  # noqa: E402
from flows.cli_evaluate import register as register_evaluate_verbs  # noqa: E402
from flows.cli_models import register as register_model_verbs  # noqa: E402

app = typer.Typer(
    name="addgp",
    help="Audio deepfake detection pipeline: XLS-R embeddings, LR and DKL-GP detectors, cross-dataset reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_BUSY = 4


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def default_config() -> Path:
    """The embedded demo config shipped inside the package."""
    return Path(str(resources.files("configs") / "demo.yaml"))


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="Pipeline config (YAML). Default: the embedded demo config."),
    run_id: Optional[str] = typer.Option(None, help="Name of the report folder (default: UTC time + config name)."),
) -> None:
    """Run the whole pipeline of CONFIG: ingest, embed, train, evaluate, report."""
    from addgp.config import load_config

    path = config or default_config()
    try:
        load_config(path)  # fail here, before any server or cluster starts
    except ConfigError as exc:
        _fail(str(exc))
    from flows.pipeline import pipeline_flow

    folder = pipeline_flow(str(path), run_id=run_id)
    typer.echo(f"report: {folder}/index.html")


@app.command()
def nightly(
    config: Path = typer.Argument(..., help="Pipeline config with a `nightly:` section."),
    run_id: Optional[str] = typer.Option(None, help="Name of the report folder (default: UTC time + config name)."),
) -> None:
    """Run one night now: absorb new inbox batches, challenge the champion, promote if better."""
    from addgp.config import load_config
    from storage.champions import RunInProgressError

    try:
        if load_config(config).nightly is None:
            _fail(f"{config}: no `nightly:` section (inbox, detector, strategy); see docs/operations.md")
    except ConfigError as exc:
        _fail(str(exc))
    from flows.nightly import nightly_flow

    try:
        outcome = nightly_flow(str(config), run_id=run_id)
    except RunInProgressError as exc:
        _fail(str(exc), EXIT_BUSY)
    verdict = "nothing new" if outcome["nothing_new"] else ("challenger promoted" if outcome["promoted"] else "champion kept")
    typer.echo(f"{verdict}; report: {outcome['report']}/index.html")


@app.command()
def serve(config: Path = typer.Argument(..., help="Pipeline config; its `schedule:` says when each deployment runs.")) -> None:
    """Serve the scheduled deployments (nightly, weekly benchmark) from this process until stopped."""
    try:
        from flows.deployments import build_deployments

        deployments = build_deployments(config)
    except ConfigError as exc:
        _fail(str(exc))
    from prefect import serve as prefect_serve

    prefect_serve(*deployments)


@app.command("demo-data")
def demo_data(
    directory: Path = typer.Argument(..., help="Where to write the demo corpus."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same files."),
    conditions: str = typer.Option("studio,phone,far", help="Comma-separated recording conditions (one dataset each)."),
    train: int = typer.Option(60, help="Utterances in each dataset's train split."),
    dev: int = typer.Option(30, help="Utterances in each dataset's dev split."),
    eval_: int = typer.Option(60, "--eval", help="Utterances in each dataset's eval split."),
) -> None:
    """Synthesise the demo corpus (ASVspoof 2019 LA layout, one dataset per condition)."""
    from tasks.ingest.demo_corpus import generate_demo_corpus

    try:
        roots = generate_demo_corpus(
            directory, seed=seed, conditions=tuple(c.strip() for c in conditions.split(",") if c.strip()),
            utterances_per_split={"train": train, "dev": dev, "eval": eval_},
        )
    except ValueError as exc:
        _fail(str(exc))
    for name, root in roots.items():
        typer.echo(f"{name}\t{root}")


@app.command()
def ingest(
    dataset: str = typer.Argument(..., help="Registry name of the corpus layout, e.g. asvspoof2019_la (see `addgp datasets`)."),
    root: Path = typer.Argument(..., help="The corpus as shipped by its publisher."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest to write (Parquet); rejects go beside it."),
    name: Optional[str] = typer.Option(None, help="Dataset name written into the rows (default: DATASET)."),
    option: list[str] = typer.Option([], "--option", help="Adapter option KEY=VALUE (repeatable), e.g. keys_root=/data/keys."),
    workers: int = typer.Option(16, help="Threads reading audio headers and hashing."),
) -> None:
    """Read a corpus from its native layout into a manifest; prints a summary."""
    from storage.manifests import rejects_path_for, write_manifest, write_rejects
    from tasks.ingest.common import LayoutError
    from tasks.ingest.registry import ingest_dataset

    options = {}
    for item in option:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--option {item!r} is not KEY=VALUE")
        options[key] = value
    try:
        result = ingest_dataset(dataset, root, dataset=name, workers=workers, **options)
    except (LayoutError, KeyError, FileNotFoundError, ValueError, TypeError) as exc:
        _fail(str(exc).strip("'\""))
    write_manifest(result.manifest, output)
    rejects = write_rejects(result.rejects, rejects_path_for(output))
    summary = result.summary()
    typer.echo(json.dumps({**summary, "manifest": str(output), "rejects_table": rejects}, indent=2))
    if result.manifest.empty:
        _fail(f"no usable rows in {root}; see {rejects}")


@app.command()
def datasets(
    registry: Optional[Path] = typer.Option(None, help="Corpus registry YAML (default: the packaged configs/datasets.yaml)."),
    no_scan: bool = typer.Option(False, "--no-scan", help="Only report manifests already written; do not list corpus folders."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the corpus registry: what is on disk, and rows per split, label and attack."""
    from tasks.ingest.catalog import RegistryError, describe_registry, render_registry

    try:
        rows = describe_registry(registry, scan=not no_scan)
    except (RegistryError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(rows, indent=2, default=str) if as_json else render_registry(rows))


@app.command()
def embed(
    manifest: list[Path] = typer.Argument(..., help="Manifest(s) from `addgp ingest`."),
    encoder: str = typer.Option(..., help="Hugging Face hub id, local checkpoint dir, or random preset (tiny-random, xlsr-300m-random, …)."),
    store: Path = typer.Option(..., help="Embedding store directory."),
    layers: str = typer.Option("-1", help="Comma-separated hidden-state indices (0 = CNN features, -1 = last)."),
    pooling: str = typer.Option("mean", help="mean or mean+std."),
    crop_seconds: Optional[float] = typer.Option(None, help="Embed only the first N seconds."),
    variant: str = typer.Option("fp32", help="Encoder variant: fp32, or int8 (quantised linear layers, CPU only; stored as ENCODER+int8)."),
    batch_seconds: Optional[float] = typer.Option(None, help="Padded audio seconds per encoder batch (default: 16 on CPU, 64 on CUDA)."),
    shard_seconds: float = typer.Option(600.0, help="Audio seconds per shard (one Dask task, one file)."),
    dtype: str = typer.Option("float32", help="Stored precision: float32 or float16."),
    revision: Optional[str] = typer.Option(None, help="Checkpoint revision to pin (hub ids)."),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address; default: run in this process."),
) -> None:
    """Embed every manifest row the store lacks; re-running adds nothing."""
    from storage.manifests import read_manifests
    from tasks.embed.encoder import VARIANTS, EncoderSpec, EncoderUnavailableError
    from tasks.embed.run import embed_manifest

    if pooling not in ("mean", "mean+std"):
        _fail(f"--pooling must be mean or mean+std, not {pooling!r}")
    if dtype not in ("float32", "float16"):
        _fail(f"--dtype must be float32 or float16, not {dtype!r}")
    if variant not in VARIANTS:
        _fail(f"--variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    try:
        frame = read_manifests(list(manifest))
        spec = EncoderSpec(
            id=encoder, revision=revision, variant=variant, layers=tuple(int(x) for x in layers.split(",")), pooling=pooling,
            crop_seconds=crop_seconds, storage_dtype=dtype,
        )
        if scheduler:
            from flows.cluster import dask_client

            with dask_client(scheduler) as client:
                summary = embed_manifest(frame, spec, str(store), batch_seconds=batch_seconds, shard_seconds=shard_seconds, client=client)
        else:
            summary = embed_manifest(frame, spec, str(store), batch_seconds=batch_seconds, shard_seconds=shard_seconds)
    except EncoderUnavailableError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for warning in summary.warnings:
        typer.secho(f"WARNING: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(json.dumps(summary.as_dict(), indent=2))


@app.command()
def metrics(scores: Path = typer.Argument(..., help="CSV or Parquet with columns score, label (optional attack).")) -> None:
    """Print EER, minDCF, actDCF, Cllr, ECE, … of a score file as one JSON object."""
    from storage.reports import read_scores
    from addgp.metrics import MetricsError, compute_metrics

    try:
        frame = read_scores(scores)
        missing = [c for c in ("score", "label") if c not in frame.columns]
        if missing:
            _fail(f"{scores} lacks column(s) {missing}; found {list(frame.columns)}")
        result = compute_metrics(frame["score"].to_numpy(dtype=float), frame["label"].astype(str).to_numpy())
    except (FileNotFoundError, MetricsError, ValueError) as exc:
        _fail(f"{scores}: {exc}")
    typer.echo(json.dumps(result))


register_evaluate_verbs(app)
register_model_verbs(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
