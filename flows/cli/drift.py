"""`addgp drift`: how far unlabelled audio lies from a model's training data (no label is read)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from addgp.config import DriftConfig
from addgp.drift import DriftMeasurement, VarianceTest
from flows.cli.common import EXIT_DRIFT, EXIT_UNAVAILABLE, app, exit_codes, fail
from flows.cli.models import resolve_model_option

_DEFAULTS = DriftConfig()


@app.command()
def drift(
    audio: list[Path] = typer.Argument(
        None, help="Audio files or folders (searched recursively) of unlabelled traffic; or use --manifest."
    ),
    model: Path = typer.Option(
        ..., help="Registered model version MODELS/NAME/vN, or MODELS/NAME: the champion in service, else the latest."
    ),
    store: Path = typer.Option(..., help="Embedding store holding the model's training rows."),
    training_manifest: list[Path] = typer.Option(
        ..., "--training-manifest", help="Manifest(s) of the model's training data (the reference sample)."
    ),
    manifest: list[Path] = typer.Option(
        [],
        "--manifest",
        help="Instead of audio: manifest(s) of rows already embedded in --store (labels are not read).",
    ),
    max_rows: int = typer.Option(_DEFAULTS.max_rows, help="Rows drawn from each side for the MMD test."),
    n_permutations: int = typer.Option(_DEFAULTS.n_permutations, help="Permutations of the MMD threshold."),
    alpha: float = typer.Option(_DEFAULTS.alpha, help="False-alarm rate of each test on traffic without drift."),
    as_json: bool = typer.Option(False, "--json", help="The drift record as one JSON object."),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help=f"Exit with code {EXIT_DRIFT} when either test finds drift."
    ),
) -> None:
    """Drift before labels: the MMD permutation test of the new rows' embeddings against the model's
    training rows, and (GP models) their predictive variance against held-out training-corpus rows
    (docs/operations.md, "Drift"). The same measurement the nightly report makes of each night's inbox."""
    from storage.manifests import read_manifests
    from storage.models import EmbeddingSetting
    from storage.nightly_records import drift_measurement_to_json
    from tasks.embed.encoder import EncoderUnavailableError
    from tasks.embed.run import embed_paths
    from tasks.evaluate.score_files import encoder_spec_of_card, expand_audio_paths
    from tasks.nightly.challenger import select_rows
    from tasks.nightly.drift import measure_drift, reference_embeddings
    from tasks.train.detectors import load_detector

    if bool(audio) == bool(manifest):
        fail("give audio files/folders or --manifest (one of the two)")
    missing = [str(p) for p in [*(audio or []), *manifest, *training_manifest] if not p.exists()]
    if missing:
        fail(f"not found: {', '.join(missing)}")
    try:
        settings = DriftConfig(max_rows=max_rows, n_permutations=n_permutations, alpha=alpha)
    except ValueError as exc:
        fail(f"drift settings: {exc}")
    resolved = resolve_model_option(model)
    with exit_codes(FileNotFoundError, ValueError):
        detector, card = load_detector(resolved)
        reference, held, held_from = reference_embeddings(card, read_manifests(list(training_manifest)), str(store))
        if manifest:
            rows = read_manifests(list(manifest))
            setting = EmbeddingSetting.of_card(card)
            X = select_rows(setting, rows, str(store), sorted(rows["dataset"].unique()), None).X
            failures: dict[str, str] = {}
        else:
            paths, empty = expand_audio_paths([str(p) for p in audio])
            if empty:
                fail(f"no audio files under {', '.join(empty)}")
            try:
                _kept, X, failures = embed_paths(paths, encoder_spec_of_card(card))
            except EncoderUnavailableError as exc:
                fail(f"{model} needs its encoder's weights, which are not on this machine: {exc}", EXIT_UNAVAILABLE)
        measured = measure_drift(
            detector,
            card["model_type"],
            reference,
            held,
            X,
            max_rows=settings.max_rows,
            n_permutations=settings.n_permutations,
            alpha=settings.alpha,
        )
    if as_json:
        record = {
            "model": resolved,
            "variance_reference": held_from,
            **drift_measurement_to_json(measured),
            "unreadable_files": failures,
        }
        typer.echo(json.dumps(record, default=str))
    else:
        for line in drift_lines(measured, held_from, len(failures)):
            typer.echo(line)
    if measured.drifted and fail_on_drift:
        raise typer.Exit(EXIT_DRIFT)


def drift_lines(measured: DriftMeasurement, variance_reference: str, n_unreadable: int) -> list[str]:
    """The drift tests in a few lines of text."""
    mmd, variance = measured.mmd, measured.variance
    lines = [f"rows tested: {measured.n_rows} (unreadable files: {n_unreadable})"]
    if mmd.mmd2 is None:
        lines.append(f"MMD: too few rows to test ({mmd.n_tonight} new, {mmd.n_reference} reference)")
    else:
        lines.append(
            f"MMD²: {mmd.mmd2:.4g}, threshold {mmd.threshold:.4g} at alpha {mmd.alpha:g} "
            f"(p = {mmd.p_value:.3g}; {mmd.n_tonight} new vs {mmd.n_reference} training rows)"
        )
    if isinstance(variance, VarianceTest):
        lines.append(
            f"predictive variance: {variance.share_above_q95:.1%} of the new rows above the 95th percentile of the "
            f"{variance_reference} (about 5 % without drift; p = {variance.p_value:.3g})"
        )
    else:
        lines.append(f"predictive variance: not measured ({variance.why})")
    lines.append("drift: " + ("YES" if measured.drifted else "no"))
    return lines
