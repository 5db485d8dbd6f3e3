"""`addgp train`, `addgp adapt` and `addgp score`: fit, adapt and use registered detectors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from flows.cli.common import EXIT_UNAVAILABLE, LIST_HELP, app, exit_codes, fail, split_values
from flows.cli.options import key_values
from tasks.train.kinds import kind_names


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
    return {column: values.split(",") for column, values in key_values(items, "--where").items()}


@app.command()
def train(
    manifest: list[Path] = typer.Argument(..., help="Manifest(s) holding the training rows."),
    store: Path = typer.Option(..., help="Embedding store with those rows embedded."),
    models: Path = typer.Option(..., help="Model registry root; the model is saved as MODELS/NAME/vN."),
    name: str = typer.Option(..., help="Model name in the registry."),
    kind: str = typer.Option(
        "logreg", help=f"Detector kind: {', '.join(kind_names())} (tasks/train/kinds.py, docs/detectors.md)."
    ),
    encoder: str = typer.Option(
        ...,
        help="Encoder the store rows were made with, as in the store's encoder column (e.g. ID@REV+int8), "
        "or the local checkpoint folder (named by its weights digest).",
    ),
    layer: int = typer.Option(-1, help="Stored layer to train on."),
    pooling: str = typer.Option("mean", help="Stored pooling."),
    crop_seconds: float | None = typer.Option(None, help="Stored crop (none = full length)."),
    datasets: list[str] = typer.Option(
        [], "--datasets", help=f"Training datasets ({LIST_HELP}; default: all in the manifests)."
    ),
    splits: list[str] = typer.Option(["train"], "--splits", help=f"Training splits ({LIST_HELP})."),
    dev_splits: list[str] = typer.Option(
        ["dev"], "--dev-splits", help=f"Dev splits for C / early stopping ({LIST_HELP}); '' for none."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Detector hyper-parameter KEY=VALUE (repeatable), e.g. mode=variational."
    ),
) -> None:
    """Fit a detector on store embeddings and register it with a model card."""
    from storage.manifests import read_manifests
    from tasks.embed.encoder import EncoderSpec, resolve_layer
    from tasks.train.detectors import check_params
    from tasks.train.fit import TrainingSelection, fit_and_register

    params = key_values(param, "--param", json_values=True, list_hint="[a, b]")
    with exit_codes(FileNotFoundError, ValueError, TypeError):
        check_params(kind, params)  # a wrong kind or parameter stops before any data is read
        frame = read_manifests(list(manifest))
        spec = EncoderSpec.from_name(encoder, pooling=pooling, crop_seconds=crop_seconds)
        selection = TrainingSelection(
            datasets=tuple(split_values(datasets)) or tuple(sorted(frame["dataset"].unique())),
            splits=tuple(split_values(splits)),
            dev_splits=tuple(split_values(dev_splits)),
            layer=resolve_layer(spec, layer),
        )
        result = fit_and_register(
            frame,
            str(store),
            str(models),
            spec,
            selection,
            name,
            kind,
            params,
        )
    typer.echo(json.dumps(result.as_dict(), indent=2, default=str))


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
    audio: list[Path] = typer.Argument(None, help="Audio files or folders (searched recursively)."),
    model: Path = typer.Option(
        ..., help="Registered model version MODELS/NAME/vN, or MODELS/NAME: the champion in service, else the latest."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of tab-separated text."),
    encoder_variant: str | None = typer.Option(
        None,
        help="fp32 or int8; must be the variant the model was trained on (exit 5 otherwise). Default: the model's.",
    ),
    list_file: str | None = typer.Option(
        None,
        "--list",
        help="Also score the paths listed in this file, one per line. '-': read them from standard input and "
        "print each row as its line arrives, until end of input - one start-up (imports, model, encoder) for "
        "any number of requests.",
    ),
) -> None:
    """Score files with a registered model: a header line, then per file its path (C-style escaped,
    docs/operations.md), score (LLR, higher = bona fide), P(spoof), GP variance, status (ok/error) and
    error. Exits 2 after printing every row when a file (or a folder holding no audio) could not be scored."""
    from tasks.embed.encoder import VARIANTS, EncoderUnavailableError
    from tasks.evaluate.score_files import (
        ERROR,
        SCORE_FILE_COLUMNS,
        model_embedder,
        score_files,
        score_table_lines,
    )
    from tasks.report.format import records

    items = [str(p) for p in audio or []]
    stream = list_file == "-"
    if list_file is not None and not stream:
        try:
            items += [line.strip() for line in Path(list_file).read_text().splitlines() if line.strip()]
        except OSError as exc:
            fail(f"--list {list_file}: {exc.strerror or exc}")
    if not items and not stream:
        fail("no audio to score: give files or folders, or --list FILE (--list - reads paths from standard input)")
    missing = [p for p in items if not Path(p).exists()]
    if missing:
        fail(f"not found: {', '.join(missing)}")
    if encoder_variant is not None and encoder_variant not in VARIANTS:
        fail(f"--encoder-variant must be one of {', '.join(VARIANTS)}, not {encoder_variant!r}")
    resolved = resolve_model_option(model)
    failed = total = 0
    with exit_codes(FileNotFoundError):
        try:
            embedder = model_embedder(resolved)  # loaded once, however many requests follow
            if not as_json:
                typer.echo("\t".join(SCORE_FILE_COLUMNS))
            for batch in _requests(items, stream):
                table = score_files(batch, resolved, variant=encoder_variant, embedder=embedder)
                lines = [json.dumps(row) for row in records(table)] if as_json else score_table_lines(table)[1:]
                for line in lines:
                    typer.echo(line)
                sys.stdout.flush()  # a caller reading the pipe gets each row before sending the next request
                failed += int((table["status"] == ERROR).sum())
                total += len(table)
        except EncoderUnavailableError as exc:  # said from the model's side: the card names the encoder
            fail(f"{model} needs its encoder's weights, which are not on this machine: {exc}", EXIT_UNAVAILABLE)
    if failed:  # after every result is out: the good files' scores are not lost
        fail(f"{failed} of {total} file(s) could not be scored; see the rows with status {ERROR}")


def _requests(items: list[str], stream: bool) -> Iterator[list[str]]:
    """What `addgp score` scores, batch by batch: the paths given (one batch), then with ``--list -``
    each line of standard input as it arrives (a missing file there is an error row, not the end)."""
    if items:
        yield items
    if stream:
        for line in sys.stdin:
            if line.strip():
                yield [line.strip()]
