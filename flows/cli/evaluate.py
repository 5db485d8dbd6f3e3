"""`addgp evaluate`, `addgp report` and `addgp metrics`: scores, reports and metrics.

- ``addgp evaluate MANIFEST… --store DIR --model MODEL… -o SCORES.parquet`` scores every
  eval corpus with every model and prints the cross-dataset matrix (JSON).
- ``addgp report SCORES… --reports-root DIR`` evaluates score tables (bootstrap CIs,
  breakdowns, selective prediction), compares with the previous published report and
  publishes a report folder (index.html, report.md, metrics.json, scores.parquet, plots/).
- ``addgp metrics SCORES`` prints the metrics of one score file as JSON.

Exit codes as the rest of the CLI (flows/cli/common.py): 2 bad input (the message names the
file or option), 3 a model that is not on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_UNAVAILABLE,
    FAIL_ON_REGRESSION_HELP,
    app,
    exit_codes,
    exit_on_regressions,
    fail,
)


def _load_models(paths: list[str]) -> dict[str, tuple[object, dict]]:
    """name -> (detector, card) for every --model; a name given twice gets ``@vN``."""
    from storage.models import ModelNotFoundError, ModelRegistryError
    from storage.paths import exists
    from tasks.train.detectors import load_detector

    loaded: dict[str, tuple[object, dict]] = {}
    for path in paths:
        if not exists(path):
            fail(f"--model {path}: no such model folder on this machine", EXIT_UNAVAILABLE)
        try:
            detector, card = load_detector(path)
        except ModelRegistryError as exc:
            code = EXIT_UNAVAILABLE if isinstance(exc, ModelNotFoundError) else EXIT_BAD_INPUT
            fail(f"--model {path}: {exc}", code)
        name = str(card.get("name") or Path(path).name)
        if name in loaded:
            name = f"{name}@v{card.get('version')}"
        loaded[name] = (detector, card)
    return loaded


def _read_cards(paths: list[str]) -> dict[str, dict]:
    from storage.models import ModelRegistryError, read_card
    from storage.paths import exists

    cards = {}
    for path in paths:
        if not exists(path):
            fail(f"--model {path}: no such model folder on this machine", EXIT_UNAVAILABLE)
        try:
            card = read_card(path)
        except ModelRegistryError as exc:
            fail(f"--model {path}: {exc}")
        cards[str(card.get("name") or Path(path).name)] = card
    return cards


@app.command()
def evaluate(
    manifest: list[Path] = typer.Argument(..., help="Manifest(s) of the eval corpora (from `addgp ingest`)."),
    store: Path = typer.Option(..., help="Embedding store holding the manifests' embeddings."),
    model: list[str] = typer.Option(
        ..., "--model", help="Model version folder ROOT/NAME/vN, or ROOT/NAME for its latest (repeatable)."
    ),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Score table to write (Parquet): utt_id, dataset, detector, score, p_spoof, variance, …",
    ),
    dataset: list[str] = typer.Option(
        [], "--dataset", help="Eval corpus to score (repeatable); default: every dataset of the manifests."
    ),
    split: list[str] = typer.Option(["eval"], "--split", help="Split(s) to score (repeatable)."),
    n_boot: int = typer.Option(200, help="Bootstrap resamples for the CIs printed (0 = none)."),
) -> None:
    """Score every eval corpus with every model; print the cross-dataset EER matrix as JSON."""
    from addgp.metrics import MetricsError
    from storage.manifests import read_manifests
    from storage.reports import write_scores
    from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
    from tasks.evaluate.scoring import score_eval_sets
    from tasks.report.task import matrix_table

    if n_boot < 0:
        fail(f"--n-boot must be >= 0, got {n_boot}")
    detectors = _load_models(model)
    with exit_codes(FileNotFoundError, ValueError, MetricsError):
        frame = read_manifests(list(manifest))
        names = list(dataset) or [str(d) for d in frame["dataset"].unique()]
        unknown = sorted(set(names) - set(frame["dataset"].unique()))
        if unknown:
            fail(f"--dataset {unknown} not in the manifests (they hold {sorted(frame['dataset'].unique())})")
        scores = score_eval_sets(frame, str(store), detectors, names, list(split))
        evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=n_boot))
    write_scores(scores, output)
    cells = evaluation.headline_cells()
    result = {
        "scores": str(output),
        "rows": int(len(scores)),
        "matrix": matrix_table(evaluation),
        "cells": json.loads(cells.to_json(orient="records")),
    }
    typer.echo(json.dumps(result, indent=2))


@app.command()
def report(
    scores: list[Path] = typer.Argument(
        ..., help="Score table(s), Parquet or CSV (from `addgp evaluate` or a report's scores.parquet)."
    ),
    reports_root: Path = typer.Option(
        ..., "--reports-root", help="Folder of published reports; the new one goes to REPORTS_ROOT/RUN_ID."
    ),
    run_id: str | None = typer.Option(None, help="Report folder name (default: UTC time + '-report')."),
    title: str = typer.Option("addgp report", help="Report title."),
    model: list[str] = typer.Option(
        [], "--model", help="Model folder(s) whose cards give train settings, versions and warnings (repeatable)."
    ),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples per (detector, corpus) for the 95 % CIs (0 = none)."),
    target_error: float = typer.Option(0.05, help="Error rate for the selective-prediction coverage."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    artifacts: str | None = typer.Option(
        None,
        help="Also publish Prefect artifacts under keys addgp-NAME-*, inside a flow run (starts Prefect's local server if none is configured).",
    ),
    fail_on_regression: bool = typer.Option(True, help=FAIL_ON_REGRESSION_HELP),
) -> None:
    """Evaluate score tables and publish a report folder; prints where it is and what regressed."""
    import pandas as pd

    from addgp.metrics import MetricsError
    from storage.reports import complete_score_table, new_run_id, read_report_metrics, read_scores
    from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores, with_train_columns
    from tasks.report.from_cards import report_input_from_cards
    from tasks.report.task import publish_run_report

    cards = _read_cards(model)
    with exit_codes(FileNotFoundError, ValueError, MetricsError):
        frame = pd.concat([read_scores(path) for path in scores], ignore_index=True)
        frame = with_train_columns(complete_score_table(frame, ", ".join(map(str, scores))), cards)
        settings = EvaluationSettings(n_boot=n_boot, target_error=target_error, seed=seed)
        evaluation = evaluate_scores(frame, settings)
        detectors = [str(d) for d in pd.unique(frame["detector"])]
        report_input = report_input_from_cards(
            title,
            run_id or new_run_id(reports_root, "report"),
            detectors,
            cards,
            evaluation,
            notes={"scores": [Path(p).name for p in scores]},
        )
    with exit_codes(ValueError):
        if artifacts:
            from flows.cli.server import prefect_api
            from flows.pipeline import report_flow

            with prefect_api():
                folder = report_flow(report_input, frame, str(reports_root), artifacts)
            comparison = read_report_metrics(folder).get("comparison", {})
        else:
            published = publish_run_report(report_input, frame, str(reports_root))
            folder, comparison = published.folder, published.content.comparison.as_dict()
    typer.echo(
        json.dumps(
            {
                "report": str(folder),
                "html": f"{folder}/index.html",
                "status": comparison.get("status"),
                "previous_run_id": comparison.get("previous_run_id"),
                "regressions": comparison.get("regressions", []),
            },
            indent=2,
        )
    )
    exit_on_regressions(comparison.get("regressions", []), fail_on_regression)


@app.command()
def metrics(
    scores: Path = typer.Argument(..., help="CSV or Parquet with columns score, label (optional attack)."),
) -> None:
    """Print EER, minDCF, actDCF, Cllr, ECE, … of a score file as one JSON object."""
    from addgp.metrics import MetricsError, compute_metrics
    from storage.reports import read_scores

    with exit_codes(FileNotFoundError, MetricsError, ValueError, prefix=f"{scores}: "):
        frame = read_scores(scores)
        missing = [c for c in ("score", "label") if c not in frame.columns]
        if missing:
            fail(f"{scores} lacks column(s) {missing}; found {list(frame.columns)}")
        result = compute_metrics(frame["score"].to_numpy(dtype=float), frame["label"].astype(str).to_numpy())
    typer.echo(json.dumps(result))
