"""Prefect tasks of the nightly loop: open the night, build the challenger, compare, promote,
publish, close. Each is a thin wrapper over tasks/nightly and storage; flows/nightly.py
composes them.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from addgp.config import DriftConfig, GateConfig
from addgp.progress import progress_to_run_log
from addgp.runs import artifact_key, task_label
from storage import champions, nightly_records
from storage.manifests import find_rejects, read_manifest, read_manifests, read_rejects
from storage.models import EmbeddingSetting, save_model
from storage.paths import exists, join
from storage.reports import publish_report
from tasks.ingest.checks import describe, problems
from tasks.ingest.inbox import rows_of_batches
from tasks.nightly.challenger import build_challenger, derived_card, select_rows, split_new_rows, subset_rows
from tasks.nightly.compare import compare_champion_and_challenger, reevaluate_champion
from tasks.nightly.consolidation import CONSOLIDATE, RETRAIN, UPDATE, tonight_step
from tasks.nightly.drift import measure_drift, reference_embeddings
from tasks.nightly.intake import night_data_checks, without_excluded
from tasks.nightly.night import (
    baseline_step,
    close_night,
    configured_rows,
    night_chain,
    open_night,
    promote_after_decision,
    record_champion_evaluation,
    record_step,
)
from tasks.nightly.pool import pool_rows, row_keys, rows_of_keys, settled_pool
from tasks.nightly.rejects import rejects_by_reason
from tasks.report.nightly import NightlyOutcome, render_markdown, render_nightly_report
from tasks.train.detectors import load_detector


@task(name="open-night", task_run_name="open-night[{detector}]", cache_policy=NO_CACHE)
def open_night_task(state_dir: str, detector: str, reports_root: str, name: str, run_id: str | None) -> dict:
    return open_night(state_dir, detector, reports_root, name, run_id)


@task(name="record-baseline", task_run_name="record-baseline[{detector}]", cache_policy=NO_CACHE)
def record_baseline_task(state_dir: str, detector: str, night: dict, baseline: dict) -> dict:
    """The first night's baseline becomes the champion tonight's challenger is measured against."""
    champion = {
        "model_path": baseline["path"],
        "version": baseline["version"],
        "run_id": night["run_id"],
        "eer": None,
        **baseline_step(baseline["path"]),
    }
    return record_step(state_dir, detector, night, champion=champion)


def _new_rows_name(parameters: dict[str, Any]) -> str:
    return task_label("new-rows", parameters["batch_ids"])


def _compare_name(parameters: dict[str, Any]) -> str:
    return task_label("champion-vs-challenger", parameters["eval_datasets"])


# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="new-rows", task_run_name=_new_rows_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def new_rows_task(
    inbox_manifest: str, batch_ids: list[str], holdout_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The night's inbox rows: (rows to learn from, held-out rows to test on)."""
    return split_new_rows(rows_of_batches(read_manifest(inbox_manifest), batch_ids), holdout_fraction)


@task(name="night-data-checks", cache_policy=NO_CACHE)
def night_data_checks_task(
    manifest_paths: list[str],
    inbox: str,
    train_roles: list[tuple[str, str]],
    eval_roles: list[tuple[str, str]],
    learn_rows: pd.DataFrame,
    holdout_rows: pd.DataFrame,
) -> dict:
    """Tonight's new rows checked before the challenger learns them: ``{"learn", "holdout",
    "checks", "excluded"}``, rows with an eval file's audio taken out of both (tasks/nightly/intake.py)."""
    new_rows = pd.concat([learn_rows, holdout_rows], ignore_index=True)
    checks, excluded = night_data_checks(
        read_manifests(manifest_paths), new_rows, inbox=inbox, train=train_roles, evaluate=eval_roles
    )
    logger = get_run_logger()
    for finding in problems(checks, "warning").to_dict("records"):
        logger.warning("data check: %s", describe(finding))
    return {
        "learn": without_excluded(learn_rows, excluded),
        "holdout": without_excluded(holdout_rows, excluded),
        "checks": checks,
        "excluded": excluded,
    }


@task(name="challenger", task_run_name="challenger[{name}×{strategy}]", retries=1, cache_policy=NO_CACHE)
def challenger_task(
    state_dir: str,
    night: dict,
    strategy: str,
    manifest_paths: list[str],
    store: str,
    models_root: str,
    name: str,
    learn_rows: pd.DataFrame,
    replay_rows: int,
    inbox_manifest: str,
    consolidate_every_nights: int | None = None,
) -> dict:
    """Tonight's challenger, registered as the next version of ``name``; on a resumed night, the one already built.

    The step that makes it (tasks/nightly/consolidation.py): ``retrain`` under that strategy;
    under ``adapt``, ``update`` (the champion's own update on ``learn_rows``) or, when the
    schedule says so, ``consolidate``: a fresh fit on the configured training data plus every
    inbox row learnt so far. The challenger record carries the step and its cost (wall
    seconds of the build, inbox rows learnt), which a promotion copies into the champion chain.
    """
    built = night.get("challenger")
    if built is not None and exists(built["path"]):
        return night
    champion_path = night["champion"]["model_path"]
    champion, card = load_detector(champion_path)
    step = (
        RETRAIN
        if strategy == "retrain"
        else tonight_step(night_chain(state_dir, name, night), consolidate_every_nights)
    )
    learnt = nightly_records.record_learnt_rows(state_dir, name, row_keys(learn_rows))
    rows = rows_of_keys(read_manifest(inbox_manifest), learnt, learn_rows) if step == CONSOLIDATE else learn_rows
    started = time.perf_counter()
    with progress_to_run_log():  # a retrained GP's steps as lines of this task run's log
        challenger = build_challenger(
            champion,
            card,
            "adapt" if step == UPDATE else "retrain",
            read_manifests(manifest_paths),
            store,
            rows,
            replay_rows,
        )
    cost = {
        "wall_s": round(time.perf_counter() - started, 2),
        "rows_learnt": int(len(rows)) + (0 if step == UPDATE else configured_rows(card)),
        "inbox_rows": int(len(rows)),
    }
    provenance = {
        "nightly_strategy": strategy,
        "nightly_step": step,
        "parent_model": champion_path,
        "nightly_run_id": night["run_id"],
    }
    ref = save_model(models_root, name, challenger, derived_card(card, rows, provenance))
    record = {
        "name": name,
        "kind": card["model_type"],
        "path": str(ref.path),
        "version": ref.version,
        "step": step,
        "cost": cost,
    }
    return record_step(state_dir, name, night, challenger=record)


@task(
    name="champion-vs-challenger",
    task_run_name=_compare_name,  # type: ignore[arg-type]
    retries=1,
    cache_policy=NO_CACHE,
)
def compare_task(
    champion_path: str,
    challenger_path: str,
    manifest_paths: list[str],
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
    n_boot: int,
    eer_at_last_promotion: dict[str, float] | None,
    gate: GateConfig | None = None,
    nights_pooled: int = 1,
) -> dict:
    """Score both models on the eval sets and the held-out new fakes; decide through the gate; measure forgetting."""
    models = {"champion": load_detector(champion_path), "challenger": load_detector(challenger_path)}
    return compare_champion_and_challenger(
        models,
        read_manifests(manifest_paths),
        store,
        eval_datasets,
        eval_splits,
        holdout_rows,
        n_boot,
        eer_at_last_promotion,
        gate,
        nights_pooled,
    )


@task(name="drift", task_run_name="drift[{detector}]", cache_policy=NO_CACHE)
def drift_task(
    state_dir: str,
    detector: str,
    night: dict,
    manifest_paths: list[str],
    store: str,
    inbox_manifest: str,
    config: DriftConfig,
) -> list[dict]:
    """How far tonight's inbox rows lie from the champion's training data, measured before any
    label is read and recorded in the drift history; the history, tonight last."""
    model, card = load_detector(night["champion"]["model_path"])
    manifest = read_manifests(manifest_paths)
    reference, held, held_from = reference_embeddings(card, manifest, store)
    setting = EmbeddingSetting.of_card(card)
    rows = rows_of_batches(read_manifest(inbox_manifest), night["batch_ids"])
    tonight = subset_rows(select_rows(setting, manifest, store, sorted(rows["dataset"].unique()), None), rows)
    measured = measure_drift(
        model,
        card["model_type"],
        reference,
        held,
        tonight.X,
        max_rows=config.max_rows,
        n_permutations=config.n_permutations,
        alpha=config.alpha,
    )
    record = {
        "run_id": night["run_id"],
        "champion_version": night["champion"]["version"],
        "variance_reference": held_from,
        **measured,
    }
    return nightly_records.record_drift(state_dir, detector, record, config.history_nights)


@task(name="pool-evidence", task_run_name="pool-evidence[{detector}]", cache_policy=NO_CACHE)
def pool_evidence_task(
    state_dir: str,
    detector: str,
    night: dict,
    inbox_manifest: str,
    learn_rows: pd.DataFrame,
    holdout_rows: pd.DataFrame,
) -> tuple[dict, dict]:
    """(the night, tonight's rows joined to the pool of the champion's undecided nights:
    {"learn", "held_out" (manifest rows), "nights" (run ids, tonight last)}).

    The pool read is recorded in the night, so a resumed night tests on the rows the killed
    one did, even when the killed one had already settled the pool.
    """
    pool = night.get("evidence_pool")
    if pool is None:
        pool = nightly_records.read_evidence_pool(state_dir, detector, night["champion"]["model_path"])
        night = record_step(state_dir, detector, night, evidence_pool=pool)
    return night, pool_rows(pool, read_manifest(inbox_manifest), learn_rows, holdout_rows, night["run_id"])


@task(name="settle-evidence", task_run_name="settle-evidence[{detector}]", cache_policy=NO_CACHE)
def settle_evidence_task(state_dir: str, detector: str, night: dict, decision: dict, pooled: dict) -> None:
    """Keep the pooled rows for the next night when the gate could not decide; start over when it did."""
    pool = settled_pool(night["champion"]["model_path"], decision, pooled)
    if pool is None:
        nightly_records.clear_evidence_pool(state_dir, detector)
    else:
        nightly_records.save_evidence_pool(state_dir, detector, pool)


@task(name="promote", task_run_name="promote[{detector}]", cache_policy=NO_CACHE)
def promote_task(state_dir: str, detector: str, night: dict, comparison: dict) -> dict:
    """The champion record after tonight's decision (promotions written, at most once per model)."""
    return promote_after_decision(state_dir, detector, night, comparison, night["challenger"])


@task(name="reevaluate-champion", task_run_name="reevaluate-champion[{detector}]", retries=1, cache_policy=NO_CACHE)
def reevaluate_champion_task(
    state_dir: str,
    detector: str,
    run_id: str,
    champion: dict,
    manifest_paths: list[str],
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    n_boot: int,
) -> pd.DataFrame:
    """A night without new data: the champion on tonight's eval sets, recorded in its evaluations."""
    champions.require_champion_model(state_dir, detector, champion)
    table = reevaluate_champion(
        load_detector(champion["model_path"]),
        read_manifests(manifest_paths),
        store,
        eval_datasets,
        eval_splits,
        n_boot,
        champion.get("eer"),
    )
    record_champion_evaluation(state_dir, detector, run_id, champion, dict(zip(table["dataset"], table["eer"])))
    return table


@task(name="inbox-rejects", cache_policy=NO_CACHE)
def inbox_rejects_task(inbox_manifest: str) -> pd.DataFrame:
    """What the drop folder holds that ingest rejected, counted per reason with examples."""
    path = find_rejects(inbox_manifest)
    return rejects_by_reason(read_rejects(path) if path is not None else pd.DataFrame())


@task(name="publish-nightly-report", task_run_name="nightly-report[{outcome.run_id}]", cache_policy=NO_CACHE)
def publish_nightly_task(outcome: NightlyOutcome, reports_root: str, night: dict | None = None) -> str:
    """Publish the nightly report once: a resumed ``night`` whose report is out returns it; a
    published report is never replaced."""
    if night is not None and exists(join(reports_root, outcome.run_id)):
        return join(reports_root, outcome.run_id)  # this night's own report, published before a kill
    folder = publish_report(render_nightly_report(outcome), reports_root, outcome.run_id, replace=False)
    create_markdown_artifact(
        render_markdown(outcome), key=artifact_key(outcome.config_name, "nightly"), description="nightly decision"
    )
    return folder


@task(name="close-night", task_run_name="close-night[{detector}]", cache_policy=NO_CACHE)
def close_night_task(state_dir: str, detector: str, night: dict) -> None:
    close_night(state_dir, detector, night)
