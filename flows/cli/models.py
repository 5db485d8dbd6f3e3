"""`addgp train`, `addgp adapt` and `addgp score`: fit, adapt and use registered detectors."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli.common import EXIT_UNAVAILABLE, app, exit_codes, fail


def _params(items: list[str]) -> dict:
    """KEY=VALUE pairs; values parsed as JSON where they are JSON (numbers, lists, true/false/null)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--param {item!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def resolve_model_option(path: str | Path, option: str = "--model") -> str:
    """The version folder ``path`` names (``storage.models.resolve_model``: ROOT/NAME/vN as
    given; ROOT/NAME the champion in service, else the latest), said on stderr with the reason.

    An unknown version or a missing model exits 3 naming what there is; a damaged champion
    record exits 2 naming the file.
    """
    from storage.models import resolve_model

    with exit_codes(FileNotFoundError, prefix=f"{option} {path}: "):
        resolved = resolve_model(str(path))
    typer.secho(f"{option} {path}: using {resolved.path} ({resolved.reason})", err=True)
    return resolved.path


def _filters(items: list[str]) -> dict[str, list[str]]:
    """COLUMN=V1,V2 filters on manifest rows."""
    filters = {}
    for item in items:
        column, sep, values = item.partition("=")
        if not sep:
            fail(f"--where {item!r} is not COLUMN=VALUE[,VALUE…]")
        filters[column] = values.split(",")
    return filters


@app.command()
def train(
    manifest: list[Path] = typer.Argument(..., help="Manifest(s) holding the training rows."),
    store: Path = typer.Option(..., help="Embedding store with those rows embedded."),
    models: Path = typer.Option(..., help="Model registry root; the model is saved as MODELS/NAME/vN."),
    name: str = typer.Option(..., help="Model name in the registry."),
    kind: str = typer.Option("logreg", help="Detector kind: logreg, dkl_gp or dkl_gp_lastblock (docs/detectors.md)."),
    encoder: str = typer.Option(
        ...,
        help="Encoder the store rows were made with, as in the store's encoder column (e.g. ID@REV+int8), "
        "or the local checkpoint folder (named by its weights digest).",
    ),
    layer: int = typer.Option(-1, help="Stored layer to train on."),
    pooling: str = typer.Option("mean", help="Stored pooling."),
    crop_seconds: float | None = typer.Option(None, help="Stored crop (none = full length)."),
    datasets: str | None = typer.Option(None, help="Comma-separated datasets (default: all in the manifests)."),
    splits: str = typer.Option("train", help="Comma-separated training splits."),
    dev_splits: str = typer.Option("dev", help="Comma-separated dev splits (C / early stopping); empty for none."),
    param: list[str] = typer.Option(
        [], "--param", help="Detector hyper-parameter KEY=VALUE (repeatable), e.g. mode=variational."
    ),
) -> None:
    """Fit a detector on store embeddings and register it with a model card."""
    from storage.manifests import read_manifests
    from tasks.embed.encoder import EncoderSpec, resolve_layer
    from tasks.train.fit import TrainingSelection, fit_and_register

    with exit_codes(FileNotFoundError, ValueError, TypeError):
        frame = read_manifests(list(manifest))
        spec = EncoderSpec.from_name(encoder, pooling=pooling, crop_seconds=crop_seconds)
        selection = TrainingSelection(
            datasets=tuple(datasets.split(",")) if datasets else tuple(sorted(frame["dataset"].unique())),
            splits=tuple(splits.split(",")),
            dev_splits=tuple(s for s in dev_splits.split(",") if s),
            layer=resolve_layer(spec, layer),
        )
        result = fit_and_register(frame, str(store), str(models), spec, selection, name, kind, _params(param))
    typer.echo(json.dumps(result, indent=2, default=str))


# Manual adaptations are registered under a name of their own (docs/operations.md#model-names).
ADAPT_SUFFIX = "-adapt"


@app.command()
def adapt(
    model: Path = typer.Argument(
        ..., help="Registered model version MODELS/NAME/vN, or MODELS/NAME: the champion in service, else the latest."
    ),
    shots: list[Path] = typer.Option(
        ..., "--shots", help="Manifest(s) holding the labelled examples of the new generator."
    ),
    where: list[str] = typer.Option(
        [], "--where", help="Keep shot rows with COLUMN=V1,V2 (repeatable), e.g. attack=A17."
    ),
    store: Path = typer.Option(..., help="Embedding store holding the shots and the model's training rows."),
    training_manifest: list[Path] = typer.Option(
        ..., "--training-manifest", help="Manifest(s) of the model's training data (for replay)."
    ),
    models: Path = typer.Option(..., help="Model registry root: the adapted model becomes the next version of --name."),
    replay: int = typer.Option(2000, help="Old training rows replayed with the shots."),
    seed: int = typer.Option(0, help="Seed of the replay sample."),
    name: str | None = typer.Option(
        None,
        help="Registry name of the adapted model (default: the parent's name + '-adapt'; never the parent's own "
        "name, which `addgp run` and the nightly write, so their latest version is not whatever ran last).",
    ),
) -> None:
    """Few-shot adaptation: teach a model a new generator from K labelled examples, without forgetting.

    The result is the next version of NAME-adapt (or --name), its card naming the parent."""
    from storage.manifests import read_manifests
    from storage.models import save_model
    from tasks.nightly.challenger import build_challenger, derived_card
    from tasks.train.detectors import load_detector

    parent = resolve_model_option(model, "MODEL")
    with exit_codes(FileNotFoundError, ValueError, TypeError):
        detector, card = load_detector(parent)
        shot_rows = read_manifests(list(shots))
        for column, values in _filters(where).items():
            if column not in shot_rows.columns:
                fail(f"--where {column}: the shot manifest has no column {column!r}; it has {list(shot_rows.columns)}")
            shot_rows = shot_rows[shot_rows[column].astype(str).isin(values)]
        if shot_rows.empty:
            fail("no shot rows left after --where filters")
        manifest = read_manifests(list(dict.fromkeys(list(training_manifest) + list(shots))))  # each file once
        adapted = build_challenger(detector, card, "adapt", manifest, str(store), shot_rows, replay, seed)
        target = name or f"{card['name']}{ADAPT_SUFFIX}"
        if target == card["name"]:
            fail(
                f"--name {target}: the parent's own name; manual adaptations go under another name (default {target}{ADAPT_SUFFIX})"
            )
        ref = save_model(
            str(models),
            target,
            adapted,
            derived_card(card, shot_rows, {"adapted_from": parent}, rows_key="shots"),
        )
    typer.echo(
        json.dumps(
            {"name": ref.name, "version": ref.version, "path": str(ref.path), "shots": int(len(shot_rows))}, indent=2
        )
    )


@app.command()
def score(
    audio: list[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    model: Path = typer.Option(
        ..., help="Registered model version MODELS/NAME/vN, or MODELS/NAME: the champion in service, else the latest."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of tab-separated text."),
    encoder_variant: str | None = typer.Option(
        None,
        help="fp32 or int8; must be the variant the model was trained on (exit 5 otherwise). Default: the model's.",
    ),
) -> None:
    """Score files with a registered model: a header line, then per file its path (C-style escaped,
    docs/operations.md), score (LLR, higher = bona fide), P(spoof), GP variance, status (ok/error) and
    error. Exits 2 after printing every row when a file (or a folder holding no audio) could not be scored."""
    from tasks.embed.encoder import VARIANTS, EncoderUnavailableError
    from tasks.evaluate.score_files import ERROR, score_files, score_table_lines
    from tasks.report.format import records

    missing = [str(p) for p in audio if not p.exists()]
    if missing:
        fail(f"not found: {', '.join(missing)}")
    if encoder_variant is not None and encoder_variant not in VARIANTS:
        fail(f"--encoder-variant must be one of {', '.join(VARIANTS)}, not {encoder_variant!r}")
    resolved = resolve_model_option(model)
    with exit_codes(FileNotFoundError):
        try:
            table = score_files([str(p) for p in audio], resolved, variant=encoder_variant)
        except EncoderUnavailableError as exc:  # said from the model's side: the card names the encoder
            fail(f"{model} needs its encoder's weights, which are not on this machine: {exc}", EXIT_UNAVAILABLE)
    lines = [json.dumps(row) for row in records(table)] if as_json else score_table_lines(table)
    for line in lines:
        typer.echo(line)
    failed = int((table["status"] == ERROR).sum())
    if failed:  # after every result is out: the good files' scores are not lost
        fail(f"{failed} of {len(table)} file(s) could not be scored; see the rows with status {ERROR}")
