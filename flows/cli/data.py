"""`addgp demo-data`, `addgp ingest`, `addgp datasets`, `addgp embed`: corpora in, embeddings out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

import typer

from addgp.config import EmbedConfig
from flows.cli.common import EXIT_TOO_MANY_REJECTS, LIST_HELP, app, exit_codes, fail, split_values
from flows.cli.options import key_values

# The CLI's embed limits are the config's defaults, so the two ways to run embed cannot drift apart.
EMBED_DEFAULTS = EmbedConfig()


@app.command("demo-data")
def demo_data(
    directory: Path = typer.Argument(..., help="Where to write the demo corpus."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same files."),
    conditions: list[str] = typer.Option(
        ["studio", "phone", "far"], "--conditions", help=f"Recording conditions, one dataset each ({LIST_HELP})."
    ),
    train: int = typer.Option(60, help="Utterances in each dataset's train split."),
    dev: int = typer.Option(30, help="Utterances in each dataset's dev split."),
    eval_: int = typer.Option(60, "--eval", help="Utterances in each dataset's eval split."),
) -> None:
    """Synthesise the demo corpus (ASVspoof 2019 LA layout, one dataset per condition)."""
    from tasks.demo_corpus import generate_demo_corpus

    with exit_codes(ValueError):
        roots = generate_demo_corpus(
            directory,
            seed=seed,
            conditions=tuple(split_values(conditions)),
            utterances_per_split={"train": train, "dev": dev, "eval": eval_},
        )
    for name, root in roots.items():
        typer.echo(f"{name}\t{root}")


@app.command()
def ingest(
    dataset: str = typer.Argument(
        ..., help="Registry name of the corpus layout, e.g. asvspoof2019_la (see `addgp datasets`)."
    ),
    root: Path = typer.Argument(..., help="The corpus as shipped by its publisher."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest to write (Parquet); rejects go beside it."),
    name: str | None = typer.Option(None, help="Dataset name written into the rows (default: DATASET)."),
    option: list[str] = typer.Option(
        [], "--option", help="Adapter option KEY=VALUE (repeatable), e.g. keys_root=/data/keys."
    ),
    workers: int = typer.Option(16, help="Threads reading audio headers and hashing."),
    max_reject_fraction: float = typer.Option(
        EMBED_DEFAULTS.max_reject_fraction,
        min=0.0,
        max=1.0,
        help="Exit 7 (after writing the manifest) when a larger share of the corpus is rejected; "
        "a split the layout lists that loses every row always exits 7.",
    ),
) -> None:
    """Read a corpus from its native layout into a manifest; prints a summary.

    Exit code 7: the manifest was written, but a split lost every row or more than
    --max-reject-fraction of the corpus was rejected (the summary's lost_splits, reject_fraction)."""
    from storage.manifests import rejects_path_for, write_manifest, write_rejects
    from tasks.ingest.common import LayoutError
    from tasks.ingest.losses import ingest_losses, loss_message
    from tasks.ingest.registry import ingest_dataset

    options = key_values(option, "--option")
    with exit_codes(LayoutError, KeyError, FileNotFoundError, ValueError, TypeError):
        result = ingest_dataset(dataset, root, dataset=name, workers=workers, **options)
    write_manifest(result.manifest, output)
    rejects = write_rejects(result.rejects, rejects_path_for(output))
    summary = result.summary()
    typer.echo(json.dumps({**summary.as_dict(), "manifest": str(output), "rejects_table": rejects}, indent=2))
    if result.manifest.empty:
        fail(f"no usable rows in {root}; see {rejects}")
    losses = ingest_losses(summary, max_reject_fraction)
    if losses:
        fail(loss_message({summary.dataset: losses}, str(rejects)), EXIT_TOO_MANY_REJECTS)


@app.command()
def datasets(
    registry: Path | None = typer.Option(
        None, help="Corpus registry YAML (default: the packaged configs/datasets.yaml)."
    ),
    no_scan: bool = typer.Option(
        False, "--no-scan", help="Only report manifests already written; do not list corpus folders."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Check this pipeline's workspace instead of the registry: its datasets' manifests, splits "
        "the config uses that have no row, and the data checks with the config's train/eval roles.",
    ),
) -> None:
    """List the corpus registry: what is on disk, rows per split, label and attack, and the data
    checks of the manifests written (duplicate audio, train/eval overlap). With --config, the
    same for a pipeline's workspace (what `addgp run` checks before training)."""
    from tasks.ingest.catalog import RegistryError, describe_registry, registry_data_checks, render_registry

    if config is not None and registry is not None:
        fail("give --config (a pipeline's workspace) or --registry, not both")
    with exit_codes(RegistryError, FileNotFoundError):
        if config is not None:
            from flows.config import load_pipeline_config
            from tasks.ingest.workspace_checks import workspace_datasets

            rows, checks = workspace_datasets(load_pipeline_config(config))
        else:
            rows = describe_registry(registry, scan=not no_scan)
            checks = registry_data_checks(registry)
    if as_json:
        typer.echo(json.dumps({"corpora": rows, "data_checks": checks.to_dict("records")}, indent=2, default=str))
    else:
        typer.echo(render_registry(rows, checks))


class _EmbedOptions(TypedDict):
    """The ``embed_manifest`` options ``addgp embed`` passes, with or without a Dask client."""

    batch_seconds: float | None
    shard_seconds: float
    max_seconds: float | None


@app.command()
def embed(
    manifest: list[Path] = typer.Argument(..., help="Manifest(s) from `addgp ingest`."),
    encoder: str = typer.Option(
        ..., help="Hugging Face hub id, local checkpoint dir, or random preset (tiny-random, xlsr-300m-random, …)."
    ),
    store: Path = typer.Option(..., help="Embedding store directory."),
    layers: list[str] = typer.Option(
        ["-1"], "--layers", help=f"Hidden-state indices, 0 = CNN features, -1 = last ({LIST_HELP})."
    ),
    pooling: str = typer.Option("mean", help="mean or mean+std."),
    crop_seconds: float | None = typer.Option(None, help="Embed only the first N seconds."),
    variant: str = typer.Option(
        "fp32", help="Encoder variant: fp32, or int8 (quantised linear layers, CPU only; stored as ENCODER+int8)."
    ),
    batch_seconds: float | None = typer.Option(
        None, help="Padded audio seconds per encoder batch (default: 16 on CPU, 64 on CUDA)."
    ),
    shard_seconds: float = typer.Option(600.0, help="Audio seconds per shard (one Dask task, one file)."),
    dtype: str = typer.Option("float32", help="Stored precision: float32 or float16."),
    revision: str | None = typer.Option(None, help="Checkpoint revision to pin (hub ids)."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address; default: run in this process."),
    max_seconds: float | None = typer.Option(
        EMBED_DEFAULTS.max_seconds, help="Reject files whose header declares more audio seconds (unless cropped)."
    ),
    max_reject_fraction: float = typer.Option(
        EMBED_DEFAULTS.max_reject_fraction,
        min=0.0,
        max=1.0,
        help="Exit 7 (after writing everything) when a dataset has a larger share of rows not embedded.",
    ),
) -> None:
    """Embed every manifest row the store lacks; re-running adds nothing (rows rejected as
    transient — the file could not be read — are tried again)."""
    from storage.manifests import read_manifests
    from tasks.embed.encoder import VARIANTS, EncoderSpec
    from tasks.embed.run import embed_manifest, parse_layers
    from tasks.embed.task import dask_client

    if pooling not in ("mean", "mean+std"):
        fail(f"--pooling must be mean or mean+std, not {pooling!r}")
    if dtype not in ("float32", "float16"):
        fail(f"--dtype must be float32 or float16, not {dtype!r}")
    if variant not in VARIANTS:
        fail(f"--variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    with exit_codes(ValueError):
        layer_indices = parse_layers(",".join(split_values(layers)))
    with exit_codes(FileNotFoundError, ValueError):
        frame = read_manifests(list(manifest))
        spec = EncoderSpec(
            id=encoder,
            revision=revision,
            variant=variant,
            layers=layer_indices,
            pooling=pooling,
            crop_seconds=crop_seconds,
            storage_dtype=dtype,
        )
        options: _EmbedOptions = {
            "batch_seconds": batch_seconds,
            "shard_seconds": shard_seconds,
            "max_seconds": max_seconds,
        }
        if scheduler:
            with dask_client(scheduler) as client:
                summary = embed_manifest(frame, spec, str(store), client=client, **options)
        else:
            summary = embed_manifest(frame, spec, str(store), **options)
    for warning in summary.warnings:
        typer.secho(f"WARNING: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(json.dumps(summary.as_dict(), indent=2))
    with exit_codes():
        summary.check_rejects(max_reject_fraction)
