"""Prefect tasks of the nightly loop: open the night, build the challenger, compare, promote,
publish, close. Each is a thin wrapper over tasks/nightly and storage taking the night's
``NightContext``; flows/nightly.py composes them. Around them, the plain steps the flow calls
between tasks: ``night_intake`` (the drop folder), ``night_outcome`` / ``quiet_outcome`` (the
nightly report's input from the typed values) and ``announce_night`` (events, the result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from addgp.drift import NightDrift
from addgp.nightly import ChallengerRecord, ChallengerSummary, ChampionRecord, InboxFolder, Night, StepCost
from addgp.progress import progress_to_run_log
from addgp.runs import artifact_key, task_label
from storage import night_state, nightly_records
from storage.manifests import find_rejects, read_manifest, read_manifests, read_rejects
from storage.models import EmbeddingSetting, save_model
from storage.paths import exists, join
from storage.reports import publish_report
from tasks.ingest.checks import describe, pipeline_roles, problems
from tasks.ingest.inbox import rows_of_batches
from tasks.nightly.challenger import build_challenger, derived_card, rows_embeddings, split_new_rows
from tasks.nightly.compare import Comparison, compare_champion_and_challenger, reevaluate_champion
from tasks.nightly.consolidation import CONSOLIDATE, RETRAIN, UPDATE, tonight_step
from tasks.nightly.context import NightContext, NightResult
from tasks.nightly.drift import measure_drift, reference_embeddings
from tasks.nightly.intake import inbox_folder, night_data_checks, without_excluded
from tasks.nightly.night import (
    baseline_champion,
    champion_chain,
    champion_history,
    close_night,
    configured_rows,
    night_chain,
    open_night,
    promote_after_decision,
    record_champion_evaluation,
    record_step,
)
from tasks.nightly.pool import PooledRows, pool_rows, row_keys, rows_of_keys, settled_pool
from tasks.nightly.rejects import rejects_by_reason
from tasks.report.nightly import NightlyOutcome, render_markdown, render_nightly_report
from tasks.report.task import drift_announce_task, promotion_task
from tasks.train.detectors import load_detector
from tasks.train.trained import TrainedModel


@task(name="open-night", task_run_name="open-night[{ctx.name}]", cache_policy=NO_CACHE)
def open_night_task(ctx: NightContext, run_id: str | None) -> Night:
    """Tonight's record (tasks/nightly/night.py), its run id taken under the lock: a queued
    night never reuses the previous one's."""
    return open_night(ctx.state, ctx.name, ctx.reports_root, f"{ctx.config.name}-nightly", run_id)


@task(name="record-baseline", task_run_name="record-baseline[{ctx.name}]", cache_policy=NO_CACHE)
def record_baseline_task(ctx: NightContext, night: Night, baseline: TrainedModel) -> Night:
    """The first night's baseline becomes the champion tonight's challenger is measured against."""
    champion = baseline_champion(baseline.path, baseline.version, night.run_id)
    return record_step(ctx.state, ctx.name, replace(night, champion=champion))


def _new_rows_name(parameters: dict[str, Any]) -> str:
    return task_label("new-rows", parameters["night"].batch_ids)


def _compare_name(parameters: dict[str, Any]) -> str:
    return task_label("champion-vs-challenger", parameters["ctx"].config.eval_datasets)


@dataclass(frozen=True)
class NightRows:
    """Tonight's new inbox rows after the night's data checks: rows to learn from, held-out rows to
    test on (rows with an eval file's audio taken out of both), the checks and the rows excluded."""

    learn: pd.DataFrame
    holdout: pd.DataFrame
    checks: pd.DataFrame
    excluded: pd.DataFrame


# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="new-rows", task_run_name=_new_rows_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def new_rows_task(ctx: NightContext, night: Night) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The night's inbox rows: (rows to learn from, held-out rows to test on)."""
    rows = rows_of_batches(read_manifest(ctx.inbox_manifest), night.batch_ids)
    return split_new_rows(rows, ctx.nightly.holdout_fraction)


@task(name="night-data-checks", cache_policy=NO_CACHE)
def night_data_checks_task(
    ctx: NightContext, manifest_paths: list[str], learn_rows: pd.DataFrame, holdout_rows: pd.DataFrame
) -> NightRows:
    """Tonight's new rows checked before the challenger learns them (tasks/nightly/intake.py)."""
    new_rows = pd.concat([learn_rows, holdout_rows], ignore_index=True)
    train, evaluate = pipeline_roles(ctx.config)
    checks, excluded = night_data_checks(
        read_manifests(manifest_paths), new_rows, inbox=ctx.nightly.inbox, train=train, evaluate=evaluate
    )
    logger = get_run_logger()
    for finding in problems(checks, "warning").to_dict("records"):
        logger.warning("data check: %s", describe(finding))
    return NightRows(
        learn=without_excluded(learn_rows, excluded),
        holdout=without_excluded(holdout_rows, excluded),
        checks=checks,
        excluded=excluded,
    )


@task(
    name="challenger", task_run_name="challenger[{ctx.name}×{ctx.nightly.strategy}]", retries=1, cache_policy=NO_CACHE
)
def challenger_task(ctx: NightContext, night: Night, manifest_paths: list[str], pooled: PooledRows) -> Night:
    """Tonight's challenger (learning the pooled rows), registered as the next version of the
    detector; on a resumed night, the one already built.

    The step that makes it (tasks/nightly/consolidation.py): ``retrain`` under that strategy;
    under ``adapt``, ``update`` (the champion's own update on the pooled rows) or, when the
    schedule (``nightly.consolidate_every_nights``) says so, ``consolidate``: a fresh fit on the
    configured training data plus every inbox row learnt so far. The challenger record carries
    the step and its cost (wall seconds of the build, inbox rows learnt), which a promotion
    copies into the champion chain.
    """
    if night.challenger is not None and exists(night.challenger.path):
        return night
    champion_path = _champion(night).model_path
    champion, card = load_detector(champion_path)
    strategy = ctx.nightly.strategy
    step = (
        RETRAIN
        if strategy == "retrain"
        else tonight_step(
            [r.step for r in night_chain(ctx.state, ctx.name, night)], ctx.nightly.consolidate_every_nights
        )
    )
    learnt = nightly_records.record_learnt_rows(ctx.state, ctx.name, row_keys(pooled.learn))
    rows = (
        rows_of_keys(read_manifest(ctx.inbox_manifest), learnt, pooled.learn) if step == CONSOLIDATE else pooled.learn
    )
    started = time.perf_counter()
    with progress_to_run_log():  # a retrained GP's steps as lines of this task run's log
        challenger = build_challenger(
            champion,
            card,
            "adapt" if step == UPDATE else "retrain",
            read_manifests(manifest_paths),
            ctx.workspace.embeddings,
            rows,
            ctx.nightly.replay_rows,
        )
    cost = StepCost(
        wall_s=round(time.perf_counter() - started, 2),
        rows_learnt=int(len(rows)) + (0 if step == UPDATE else configured_rows(card)),
        inbox_rows=int(len(rows)),
    )
    provenance = {
        "nightly_strategy": strategy,
        "nightly_step": step,
        "parent_model": champion_path,
        "nightly_run_id": night.run_id,
    }
    ref = save_model(ctx.workspace.models, ctx.name, challenger, derived_card(card, rows, provenance))
    record = ChallengerRecord(
        name=ctx.name, kind=card["model_type"], path=str(ref.path), version=ref.version, step=step, cost=cost
    )
    return record_step(ctx.state, ctx.name, replace(night, challenger=record))


@task(
    name="champion-vs-challenger",
    task_run_name=_compare_name,  # type: ignore[arg-type]
    retries=1,
    cache_policy=NO_CACHE,
)
def compare_task(ctx: NightContext, night: Night, manifest_paths: list[str], pooled: PooledRows) -> Comparison:
    """Score both models on the eval sets and the held-out new fakes (with the pooled nights'); decide
    through the gate; measure forgetting since the champion's promotion."""
    champion, challenger = _champion(night), _challenger(night)
    models = {"champion": load_detector(champion.model_path), "challenger": load_detector(challenger.path)}
    return compare_champion_and_challenger(
        models,
        read_manifests(manifest_paths),
        ctx.workspace.embeddings,
        ctx.config.eval_datasets,
        ctx.config.evaluate.splits,
        pooled.held_out,
        ctx.nightly.n_boot,
        champion.eer,
        ctx.nightly.gate,
        len(pooled.nights),
    )


@dataclass(frozen=True)
class DriftHistory:
    """The drift records of recent nights, tonight last."""

    nights: list[NightDrift]

    @property
    def tonight(self) -> NightDrift:
        return self.nights[-1]

    @property
    def drifted(self) -> bool:
        """Tonight's inbox crossed a drift threshold (nightly.drift)."""
        return self.tonight.drifted


@task(name="drift", task_run_name="drift[{ctx.name}]", cache_policy=NO_CACHE)
def drift_task(ctx: NightContext, night: Night, manifest_paths: list[str]) -> DriftHistory:
    """How far tonight's inbox rows lie from the champion's training data, measured before any
    label is read and recorded in the drift history; the history."""
    config = ctx.nightly.drift
    champion = _champion(night)
    model, card = load_detector(champion.model_path)
    manifest = read_manifests(manifest_paths)
    store = ctx.workspace.embeddings
    reference, held, held_from = reference_embeddings(card, manifest, store)
    setting = EmbeddingSetting.of_card(card)
    rows = rows_of_batches(read_manifest(ctx.inbox_manifest), night.batch_ids)
    tonight = rows_embeddings(setting, manifest, store, rows)
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
    record = NightDrift(night.run_id, champion.version, held_from, measured)
    return DriftHistory(nightly_records.record_drift(ctx.state, ctx.name, record, config.history_nights))


@task(name="pool-evidence", task_run_name="pool-evidence[{ctx.name}]", cache_policy=NO_CACHE)
def pool_evidence_task(ctx: NightContext, night: Night, rows: NightRows) -> tuple[Night, PooledRows]:
    """(the night, tonight's rows joined to the pool of the champion's undecided nights).

    The pool read is recorded in the night, so a resumed night tests on the rows the killed
    one did, even when the killed one had already settled the pool.
    """
    pool = night.evidence_pool
    if pool is None:
        pool = nightly_records.read_evidence_pool(ctx.state, ctx.name, _champion(night).model_path)
        night = record_step(ctx.state, ctx.name, replace(night, evidence_pool=pool))
    return night, pool_rows(pool, read_manifest(ctx.inbox_manifest), rows.learn, rows.holdout, night.run_id)


@task(name="settle-evidence", task_run_name="settle-evidence[{ctx.name}]", cache_policy=NO_CACHE)
def settle_evidence_task(ctx: NightContext, night: Night, comparison: Comparison, pooled: PooledRows) -> None:
    """Keep the pooled rows for the next night when the gate could not decide; start over when it did."""
    pool = settled_pool(_champion(night).model_path, comparison.decision.decided, pooled)
    if pool is None:
        nightly_records.clear_evidence_pool(ctx.state, ctx.name)
    else:
        nightly_records.save_evidence_pool(ctx.state, ctx.name, pool)


@task(name="promote", task_run_name="promote[{ctx.name}]", cache_policy=NO_CACHE)
def promote_task(ctx: NightContext, night: Night, comparison: Comparison) -> ChampionRecord:
    """The champion record after tonight's decision (promotions written, at most once per model)."""
    return promote_after_decision(ctx.state, ctx.name, night, comparison, _challenger(night))


@task(name="reevaluate-champion", task_run_name="reevaluate-champion[{ctx.name}]", retries=1, cache_policy=NO_CACHE)
def reevaluate_champion_task(ctx: NightContext, night: Night, champion: ChampionRecord) -> pd.DataFrame:
    """A night without new data: the champion on tonight's eval sets, recorded in its evaluations."""
    night_state.require_champion_model(ctx.state, ctx.name, champion)
    table = reevaluate_champion(
        load_detector(champion.model_path),
        read_manifests(ctx.eval_manifests),
        ctx.workspace.embeddings,
        ctx.config.eval_datasets,
        ctx.config.evaluate.splits,
        ctx.nightly.n_boot,
        champion.eer,
    )
    record_champion_evaluation(ctx.state, ctx.name, night.run_id, champion, dict(zip(table["dataset"], table["eer"])))
    return table


@task(name="inbox-rejects", cache_policy=NO_CACHE)
def inbox_rejects_task(inbox_manifest: str) -> pd.DataFrame:
    """What the drop folder holds that ingest rejected, counted per reason with examples."""
    path = find_rejects(inbox_manifest)
    return rejects_by_reason(read_rejects(path) if path is not None else pd.DataFrame())


@task(name="publish-nightly-report", task_run_name="nightly-report[{outcome.run_id}]", cache_policy=NO_CACHE)
def publish_nightly_task(outcome: NightlyOutcome, reports_root: str, night: Night | None = None) -> str:
    """Publish the nightly report once: a resumed ``night`` whose report is out returns it; a
    published report is never replaced."""
    if night is not None and exists(join(reports_root, outcome.run_id)):
        return join(reports_root, outcome.run_id)  # this night's own report, published before a kill
    folder = publish_report(render_nightly_report(outcome), reports_root, outcome.run_id, replace=False)
    # keyed by detector too, like the reports folder: two champions' nights keep apart histories
    owner = outcome.config_name if outcome.detector is None else f"{outcome.config_name}-{outcome.detector}"
    create_markdown_artifact(
        render_markdown(outcome), key=artifact_key(owner, "nightly"), description="nightly decision"
    )
    return folder


@task(name="close-night", task_run_name="close-night[{ctx.name}]", cache_policy=NO_CACHE)
def close_night_task(ctx: NightContext, night: Night) -> None:
    close_night(ctx.state, ctx.name, night)


def _champion(night: Night) -> ChampionRecord:
    if night.champion is None:
        raise ValueError(f"night {night.run_id}: no champion recorded (the first night records its baseline first)")
    return night.champion


def _challenger(night: Night) -> ChallengerRecord:
    if night.challenger is None:
        raise ValueError(f"night {night.run_id}: no challenger recorded (the challenger step comes first)")
    return night.challenger


@dataclass(frozen=True)
class NightIntake:
    """What the drop folder held tonight: the folder itself, and what ingest rejected of it per reason."""

    inbox: InboxFolder
    rejects: pd.DataFrame


def night_intake(ctx: NightContext) -> NightIntake:
    """The drop folder (logged: its files, and that it was created when it was) and its rejects."""
    inbox = inbox_folder(ctx.inbox_root, created=ctx.inbox_created)
    logger = get_run_logger()
    if ctx.inbox_created:
        logger.warning("created the missing inbox drop folder %s (nightly.create_inbox: true)", inbox.folder)
    logger.info("inbox %s: %d file(s)", inbox.folder, inbox.n_files)
    return NightIntake(inbox, inbox_rejects_task(ctx.inbox_manifest))


def quiet_outcome(
    ctx: NightContext,
    night: Night,
    intake: NightIntake,
    champion: ChampionRecord | None,
    reevaluation: pd.DataFrame | None,
) -> NightlyOutcome:
    """The report of a night without new batches: the champion re-measured (None before the first)."""
    return NightlyOutcome(
        ctx.config.name,
        night.run_id,
        [],
        champion=champion,
        warnings=ctx.warnings,
        reevaluation=reevaluation,
        champion_history=champion_history(ctx.state, ctx.name),
        chain=champion_chain(ctx.state, ctx.name),
        rejects=intake.rejects,
        detector=ctx.name,
        inbox=intake.inbox,
    )


def night_outcome(
    ctx: NightContext,
    night: Night,
    intake: NightIntake,
    rows: NightRows,
    pooled: PooledRows,
    comparison: Comparison,
    champion: ChampionRecord,
    drift: DriftHistory,
) -> NightlyOutcome:
    """The report of a night with new batches (each argument of its own type: none can be swapped)."""
    challenger = _challenger(night)
    return NightlyOutcome(
        ctx.config.name,
        night.run_id,
        night.batches,
        comparison.decision,
        comparison.eer,
        comparison.forgetting,
        champion,
        ctx.warnings,
        evidence=comparison.evidence,
        champion_history=champion_history(ctx.state, ctx.name),
        chain=champion_chain(ctx.state, ctx.name),
        rejects=intake.rejects,
        detector=ctx.name,
        inbox=intake.inbox,
        data_checks=rows.checks,
        excluded=rows.excluded,
        score_sources=comparison.score_sources,
        challenger=ChallengerSummary(
            strategy=ctx.nightly.strategy,
            new_rows=int(len(pooled.learn)),
            held_out_rows=int(len(pooled.held_out)),
            model=challenger.path,
            step=challenger.step,
            cost=challenger.cost,
        ),
        gate=comparison.gate,
        drift=drift.nights,
    )


def announce_night(
    ctx: NightContext, night: Night, folder: str, champion: ChampionRecord, comparison: Comparison, drift: DriftHistory
) -> NightResult:
    """A promotion and a drifted inbox announced (Prefect events, ``notify``); the night's result."""
    if comparison.decision.promote:
        promotion_task(ctx.config.notify, ctx.config.name, night.run_id, folder, champion)
    if drift.drifted:
        drift_announce_task(ctx.config.notify, ctx.config.name, night.run_id, folder, ctx.name, drift.tonight)
    get_run_logger().info(
        "%s; report at %s", "challenger promoted" if comparison.decision.promote else "champion kept", folder
    )
    return NightResult(
        report=folder,
        promoted=comparison.decision.promote,
        nothing_new=False,
        champion=champion,
        resumed=bool(night.resumed),
        outcome=comparison.decision.outcome,
        drifted=drift.drifted,
    )
