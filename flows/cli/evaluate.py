"""`addgp evaluate`, `addgp report` and `addgp metrics`: scores, reports and metrics.

- ``addgp evaluate MANIFEST… --store DIR --model MODEL… -o SCORES.parquet`` scores every
  eval corpus with every model and prints the cross-dataset matrix (JSON).
- ``addgp report SCORES… --reports-root DIR`` evaluates score tables (bootstrap CIs,
  breakdowns, selective prediction), compares with the previous published report and
  publishes a report folder (index.html, report.md, metrics.json, scores.parquet, plots/).
- ``addgp metrics SCORES`` prints the metrics of a score file as JSON: per (detector, dataset,
  condition), never pooled unless ``--pool``; ``--by attack`` breaks them down; ``--key KEYS``
  reads an ASVspoof 5 / WeDefense score file with its key file.
- ``addgp export-scores SCORES… -o DIR`` writes ASVspoof 5 / WeDefense score and key files,
  or (``--format df-arena``) the Speech DF Arena toolkit's score files and protocol CSVs.

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
    LIST_HELP,
    app,
    exit_codes,
    exit_on_regressions,
    fail,
    split_values,
)


def _load_models(paths: list[str]) -> dict[str, tuple[object, dict]]:
    """name -> (detector, card) for every --model; a name given twice gets ``@vN``."""
    from flows.cli.models import resolve_model_option
    from storage.models import ModelNotFoundError, ModelRegistryError
    from tasks.train.detectors import load_detector

    loaded: dict[str, tuple[object, dict]] = {}
    for option in paths:
        path = resolve_model_option(option)  # a missing model or version exits 3 naming what there is
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
    from flows.cli.models import resolve_model_option
    from storage.models import ModelRegistryError, read_card

    cards = {}
    for option in paths:
        path = resolve_model_option(option)  # a missing model or version exits 3 naming what there is
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
        ...,
        "--model",
        help="Model version folder ROOT/NAME/vN, or ROOT/NAME: the champion in service, else the latest (repeatable).",
    ),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Score table to write (Parquet): utt_id, dataset, detector, score, p_spoof, variance, …",
    ),
    dataset: list[str] = typer.Option(
        [], "--dataset", help=f"Eval corpora to score ({LIST_HELP}); default: every dataset of the manifests."
    ),
    split: list[str] = typer.Option(["eval"], "--split", help=f"Splits to score ({LIST_HELP})."),
    n_boot: int = typer.Option(200, help="Bootstrap resamples for the CIs printed (0 = none)."),
    score_cache: bool = typer.Option(
        True,
        help="Read and keep scores in the store's score cache (STORE/_scores): a model already scored on an "
        "unchanged corpus is not scored again; --no-score-cache scores everything and writes nothing to the store.",
    ),
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
        names = split_values(dataset) or [str(d) for d in frame["dataset"].unique()]
        unknown = sorted(set(names) - set(frame["dataset"].unique()))
        if unknown:
            fail(f"--dataset {unknown} not in the manifests (they hold {sorted(frame['dataset'].unique())})")
        scores = score_eval_sets(frame, str(store), detectors, names, split_values(split), cache=score_cache)
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
        [],
        "--model",
        help="Model folder(s) whose cards give train settings, versions and warnings (repeatable); "
        "without it they come from the score files' provenance columns.",
    ),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples per (detector, corpus) for the 95 % CIs (0 = none)."),
    target_error: float = typer.Option(0.05, help="Error rate for the selective-prediction coverage."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    training_overlap: str = typer.Option(
        "exclude",
        "--training-overlap",
        help="exclude: a detector's headline average leaves out the eval sets it trained on (named on its "
        "model card by set or content digest), as the Speech Anti-Spoofing Arena does; mark: keep them, marked.",
    ),
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
    from tasks.evaluate.overlap import with_card_overlap_columns
    from tasks.evaluate.trials import check_unique_trials
    from tasks.report.from_cards import report_input_from_cards
    from tasks.report.task import publish_run_report

    cards = _read_cards(model)
    with exit_codes(FileNotFoundError, ValueError, MetricsError):
        tables = [(str(path), read_scores(path)) for path in scores]
        check_unique_trials(tables)
        frame = pd.concat([table for _, table in tables], ignore_index=True)
        frame = with_train_columns(complete_score_table(frame, ", ".join(map(str, scores))), cards)
        frame = with_card_overlap_columns(frame, cards)
        settings = EvaluationSettings(
            n_boot=n_boot, target_error=target_error, seed=seed, training_overlap=training_overlap
        )
        evaluation = evaluate_scores(frame, settings)
        detectors = [str(d) for d in pd.unique(frame["detector"])]
        report_input = report_input_from_cards(
            title,
            run_id or new_run_id(reports_root, "report"),
            detectors,
            cards,
            evaluation,
            score_files=[Path(p).name for p in scores],
            scores=frame,
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
    scores: Path = typer.Argument(
        ...,
        help="CSV or Parquet with columns score, label (optional detector, dataset, condition, attack); "
        "or, with --key, an ASVspoof 5 / WeDefense score file (filename<TAB>cm-score).",
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="Key file of an ASVspoof 5 / WeDefense score file: filename<TAB>cm-label (optional attack column), "
        "or an ASVspoof 5 protocol file (ASVspoof5.eval.track_1.tsv).",
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="Also break every score set down by this column: attack (each attack's spoofs against all "
        "bona fide rows, as ASVspoof) or a condition both classes carry (codec, language, …).",
    ),
    pool: bool = typer.Option(
        False, "--pool", help="Also give the metrics of all rows pooled into one set (never done silently)."
    ),
) -> None:
    """Print EER, minDCF, actDCF, Cllr, ECE, … as JSON: one flat object for one score set; one entry per
    (detector, dataset, condition) under "groups" when the file holds several, or with --by / --pool."""
    from addgp.metrics import MetricsError
    from storage.interchange import read_key_file, read_score_file
    from storage.reports import read_scores
    from tasks.evaluate.interchange import key_table, table_from_files
    from tasks.evaluate.score_metrics import metrics_summary
    from tasks.evaluate.trials import check_unique_trials
    from tasks.report.format import jsonable

    with exit_codes(FileNotFoundError, MetricsError, ValueError, prefix=f"{scores}: "):
        if key is not None:
            raw, has_header = read_key_file(key)
            frame = table_from_files(read_score_file(scores), key_table(raw, has_header, str(key)), f"{scores} + {key}")
        else:
            frame = read_scores(scores)
        check_unique_trials([(str(scores), frame)])
        missing = [c for c in ("score", "label") if c not in frame.columns]
        if missing:
            hint = (
                " (an ASVspoof 5 / WeDefense score file needs its key file: --key KEYS)" if "cm-score" in frame else ""
            )
            fail(f"{scores} lacks column(s) {missing}; found {list(frame.columns)}{hint}")
        result = metrics_summary(frame, by=by, pool=pool)
    typer.echo(json.dumps(jsonable(result)))


@app.command("export-scores")
def export_scores(
    scores: list[Path] = typer.Argument(
        ..., help="Score table(s), Parquet or CSV (from `addgp evaluate` or a report's scores.parquet)."
    ),
    out: Path = typer.Option(
        ...,
        "-o",
        "--output",
        "--out",  # its first name, kept so that scripts written for it still run
        help="Folder for DETECTOR/DATASET/cm-scores.tsv and cm-keys.tsv (a CONDITION folder below DATASET when the "
        "table has a condition column); for df-arena: scores/DETECTOR/DATASET.txt and protocol_files/DATASET.csv.",
    ),
    format_: str = typer.Option(
        "asvspoof5",
        "--format",
        help="asvspoof5 or wedefense (the same files: both tools read them), or df-arena (the Speech DF Arena "
        "toolkit's per-corpus score file and protocol CSV).",
    ),
    manifests: list[Path] = typer.Option(
        [],
        "--manifest",
        help="df-arena: manifest(s) the scored datasets were ingested into, so each row is named by its path as "
        "the corpus' protocol writes it (protocol_path, else path); without, by utt_id. Repeatable.",
    ),
) -> None:
    """Write score tables as ASVspoof 5 / WeDefense score and key files, one pair per (detector, dataset),
    or as Speech DF Arena files, one score file per (detector, corpus) and one protocol CSV per corpus,
    for the official evaluation tools; prints what was written as JSON."""
    import pandas as pd

    from storage.interchange import write_arena_protocol, write_arena_scores, write_key_file, write_score_file
    from storage.manifests import read_manifests
    from storage.paths import join
    from storage.reports import read_scores
    from tasks.evaluate.interchange import (
        ARENA_FORMAT,
        EXPORT_FORMATS,
        KEYS_FILE,
        SCORES_FILE,
        arena_groups,
        export_groups,
        file_names_of,
    )
    from tasks.evaluate.trials import check_unique_trials

    if format_ not in EXPORT_FORMATS:
        fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {format_!r}")
    if manifests and format_ != ARENA_FORMAT:
        fail(f"--manifest names the files of the {ARENA_FORMAT} format only; drop it for {format_}")
    written = []
    with exit_codes(FileNotFoundError, ValueError):
        tables = [(str(path), read_scores(path)) for path in scores]
        check_unique_trials(tables)  # here, where the files can be named; export_groups checks the table too
        frame = pd.concat([table for _, table in tables], ignore_index=True)
        if format_ == ARENA_FORMAT:
            names = file_names_of(read_manifests([str(m) for m in manifests])) if manifests else None
            protocols: dict[str, pd.DataFrame] = {}
            for arena in arena_groups(frame, names):
                condition = arena.group.get("condition")
                protocol_dir = join(out, "protocol_files", condition) if condition else join(out, "protocol_files")
                protocol_path = join(protocol_dir, f"{arena.protocol_name}.csv")
                sorted_protocol = arena.protocol.sort_values("file_name", ignore_index=True)
                if protocol_path in protocols and not protocols[protocol_path].equals(sorted_protocol):
                    raise ValueError(
                        f"dataset {arena.protocol_name!r}: the detectors were scored on different files, so one "
                        "protocol CSV cannot serve them all; export them one detector at a time"
                    )
                protocols[protocol_path] = sorted_protocol
                written.append(
                    {
                        **arena.group,
                        "rows": int(len(arena.scores)),
                        "scores": write_arena_scores(
                            arena.scores, join(out, "scores", arena.detector_folder, f"{arena.protocol_name}.txt")
                        ),
                        "protocol": write_arena_protocol(arena.protocol, protocol_path),
                    }
                )
        else:
            for group in export_groups(frame):
                folder = join(out, group.folder) if group.folder else str(out)
                written.append(
                    {
                        **group.group,
                        "rows": int(len(group.scores)),
                        "scores": write_score_file(group.scores, join(folder, SCORES_FILE)),
                        "keys": write_key_file(group.keys, join(folder, KEYS_FILE)),
                    }
                )
    typer.echo(json.dumps({"format": format_, "files": written}, indent=2))
