"""The ``addgp evaluate`` and ``addgp report`` verbs; ``register(app)`` adds them to the ``addgp`` CLI.

- ``addgp evaluate MANIFEST… --store DIR --model MODEL… -o SCORES.parquet`` scores every
  eval corpus with every model and prints the cross-dataset matrix (JSON).
- ``addgp report SCORES… --reports-root DIR`` evaluates score tables (bootstrap CIs,
  breakdowns, selective prediction), compares with the previous published report and
  publishes a report folder (index.html, report.md, metrics.json, scores.parquet, plots/).

Exit codes as the rest of the CLI: 2 bad input (the message names the file or option),
3 a model that is not on this machine.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load_models(paths: list[str]) -> dict[str, tuple[object, dict]]:
    """name -> (detector, card) for every --model; a name given twice gets ``@vN``."""
    from storage.models import ModelNotFoundError, ModelRegistryError
    from storage.paths import exists
    from tasks.train.detectors import load_detector

    loaded: dict[str, tuple[object, dict]] = {}
    for path in paths:
        if not exists(path):
            _fail(f"--model {path}: no such model folder on this machine", EXIT_UNAVAILABLE)
        try:
            detector, card = load_detector(path)
        except ModelRegistryError as exc:
            code = EXIT_UNAVAILABLE if isinstance(exc, ModelNotFoundError) else EXIT_BAD_INPUT
            _fail(f"--model {path}: {exc}", code)
        name = str(card.get("name") or Path(path).name)
        if name in loaded:
            name = f"{name}@v{card.get('version')}"
        loaded[name] = (detector, card)
    return loaded


def _read_cards(paths: list[str]) -> dict[str, dict]:
    from storage.models import ModelNotFoundError, ModelRegistryError, read_card
    from storage.paths import exists

    cards = {}
    for path in paths:
        if not exists(path):
            _fail(f"--model {path}: no such model folder on this machine", EXIT_UNAVAILABLE)
        try:
            card = read_card(path)
        except ModelRegistryError as exc:
            _fail(f"--model {path}: {exc}", EXIT_UNAVAILABLE if isinstance(exc, ModelNotFoundError) else EXIT_BAD_INPUT)
        cards[str(card.get("name") or Path(path).name)] = card
    return cards


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``report`` to ``app``."""

    @app.command()
    def evaluate(
        manifest: list[Path] = typer.Argument(..., help="Manifest(s) of the eval corpora (from `addgp ingest`)."),
        store: Path = typer.Option(..., help="Embedding store holding the manifests' embeddings."),
        model: list[str] = typer.Option(..., "--model", help="Model version folder ROOT/NAME/vN, or ROOT/NAME for its latest (repeatable)."),
        output: Path = typer.Option(..., "-o", "--output", help="Score table to write (Parquet): utt_id, dataset, detector, score, p_spoof, variance, …"),
        dataset: list[str] = typer.Option([], "--dataset", help="Eval corpus to score (repeatable); default: every dataset of the manifests."),
        split: list[str] = typer.Option(["eval"], "--split", help="Split(s) to score (repeatable)."),
        n_boot: int = typer.Option(200, help="Bootstrap resamples for the CIs printed (0 = none)."),
    ) -> None:
        """Score every eval corpus with every model; print the cross-dataset EER matrix as JSON."""
        from storage.manifests import read_manifests
        from storage.reports import write_scores
        from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
        from addgp.metrics import MetricsError
        from tasks.evaluate.scoring import score_eval_sets
        from tasks.report.task import matrix_table

        if n_boot < 0:
            _fail(f"--n-boot must be >= 0, got {n_boot}")
        detectors = _load_models(model)
        try:
            frame = read_manifests(list(manifest))
            names = list(dataset) or [str(d) for d in frame["dataset"].unique()]
            unknown = sorted(set(names) - set(frame["dataset"].unique()))
            if unknown:
                _fail(f"--dataset {unknown} not in the manifests (they hold {sorted(frame['dataset'].unique())})")
            scores = score_eval_sets(frame, str(store), detectors, names, list(split))
            evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=n_boot))
        except (FileNotFoundError, ValueError, MetricsError) as exc:
            _fail(str(exc))
        write_scores(scores, output)
        cells = evaluation.cells[["detector", "dataset", "eer", "eer_ci_low", "eer_ci_high", "min_dcf", "act_dcf", "cllr", "n_bonafide", "n_spoof", "note"]]
        result = {
            "scores": str(output),
            "rows": int(len(scores)),
            "matrix": matrix_table(evaluation),
            "cells": json.loads(cells.to_json(orient="records")),
        }
        typer.echo(json.dumps(result, indent=2))

    @app.command()
    def report(
        scores: list[Path] = typer.Argument(..., help="Score table(s), Parquet or CSV (from `addgp evaluate` or a report's scores.parquet)."),
        reports_root: Path = typer.Option(..., "--reports-root", help="Folder of published reports; the new one goes to REPORTS_ROOT/RUN_ID."),
        run_id: Optional[str] = typer.Option(None, help="Report folder name (default: UTC time + '-report')."),
        title: str = typer.Option("addgp report", help="Report title."),
        model: list[str] = typer.Option([], "--model", help="Model folder(s) whose cards give train settings, versions and warnings (repeatable)."),
        n_boot: int = typer.Option(1000, help="Bootstrap resamples per (detector, corpus) for the 95 % CIs (0 = none)."),
        target_error: float = typer.Option(0.05, help="Error rate for the selective-prediction coverage."),
        seed: int = typer.Option(0, help="Bootstrap seed."),
        artifacts: Optional[str] = typer.Option(
            None, help="Also publish Prefect artifacts under keys addgp-NAME-*, inside a flow run (starts Prefect's local server if none is configured)."
        ),
    ) -> None:
        """Evaluate score tables and publish a report folder; prints where it is and what regressed."""
        import pandas as pd

        from storage.models import RANDOM_ENCODER_WARNING
        from storage.reports import read_scores
        from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores, with_train_columns
        from addgp.metrics import MetricsError
        from tasks.report.build import ReportInput
        from tasks.report.task import publish_run_report

        cards = _read_cards(model)
        try:
            frames = [read_scores(path) for path in scores]
            frame = pd.concat(frames, ignore_index=True)
            missing = [c for c in ("detector", "dataset", "score", "label") if c not in frame.columns]
            if missing:
                _fail(f"{', '.join(map(str, scores))} lack column(s) {missing}; found {list(frame.columns)}")
            if "p_spoof" not in frame.columns:
                from addgp.contracts import p_spoof_from_score

                frame["p_spoof"] = p_spoof_from_score(frame["score"].to_numpy(dtype=float))
            for column in ("utt_id", "split", "attack"):
                if column not in frame.columns:
                    frame[column] = None if column != "utt_id" else [str(i) for i in range(len(frame))]
            if "variance" not in frame.columns:
                frame["variance"] = float("nan")
            frame = with_train_columns(frame, cards)
            settings = EvaluationSettings(n_boot=n_boot, target_error=target_error, seed=seed)
            evaluation = evaluate_scores(frame, settings)
        except (FileNotFoundError, ValueError, MetricsError) as exc:
            _fail(str(exc))
        detectors = [str(d) for d in pd.unique(frame["detector"])]
        models = [
            {"name": d, "kind": (cards.get(d) or {}).get("model_type"), "version": (cards.get(d) or {}).get("version"),
             "dev_metrics": (cards.get(d) or {}).get("dev_metrics")}
            for d in detectors
        ]  # fmt: skip
        encoders = sorted({str(c.get("encoder")) for c in cards.values() if c.get("encoder")})
        warnings = [RANDOM_ENCODER_WARNING] if any(c.get("random_weight_encoder") for c in cards.values()) else []
        run = run_id or f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-report"
        report_input = ReportInput(
            title=title, run_id=run, models=models, encoder=", ".join(encoders) or "not recorded",
            warnings=warnings, notes={"scores": [Path(p).name for p in scores]}, evaluation=evaluation,
        )  # fmt: skip
        try:
            if artifacts:
                from prefect import flow

                from tasks.report.task import report_task

                @flow(name="addgp-report")
                def report_flow() -> str:
                    return report_task(report_input, frame, str(reports_root), artifacts)

                folder = report_flow()
                from storage.reports import read_report_metrics

                comparison = read_report_metrics(folder).get("comparison", {})
            else:
                published = publish_run_report(report_input, frame, str(reports_root))
                folder, comparison = published.folder, published.content.comparison.as_dict()
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(json.dumps({
            "report": str(folder), "html": f"{folder}/index.html", "status": comparison.get("status"),
            "previous_run_id": comparison.get("previous_run_id"), "regressions": comparison.get("regressions", []),
        }, indent=2))  # fmt: skip
