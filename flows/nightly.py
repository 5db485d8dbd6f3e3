"""The nightly loop: absorb new inbox batches, challenge the champion, promote only if better.

ingest inbox (a batch per delivery folder) → open the night (or resume an unfinished one) →
nothing new? re-evaluate the champion on the eval sets, publish a short report, stop → embed
only the new audio → (first night: train the baseline champion) → drift of tonight's inbox
from the champion's training data (no label read; event ``addgp.run.drift`` past the
threshold) → data checks of the new rows (copies of eval files excluded) → challenger
(retrain or adapt) → champion and challenger on the same eval
sets + held-out new fakes (with the rows of earlier undecided nights) → the promotion gate:
promote, keep, or "not enough evidence yet" (rows pooled for the next night) → report (with
forgetting) → acknowledge the batches. Two nightly runs never overlap: the
second waits or stops with a message. The flow run is named ``<config>/<run id>`` as soon as
the run id is taken (under the lock); a promotion is announced as the Prefect event
``addgp.run.promotion`` and, when ``notify.on`` lists it, to ``notify.webhook_url``.
Composition only: the steps are tasks/nightly, sharing one ``NightContext``; the quiet night's
branch is ``quiet_night`` here (it starts a Dask cluster, which only flows do).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from addgp.nightly import Night
from flows.cluster import dask_cluster
from flows.config import load_pipeline_config
from flows.runs import initial_flow_run_name, name_flow_run
from storage import champions, night_state
from tasks.demo_corpus.task import demo_corpus_task
from tasks.embed.task import embed_task
from tasks.ingest.task import ingest_datasets
from tasks.nightly.context import NightContext, NightResult
from tasks.nightly.task import (
    NightIntake,
    announce_night,
    challenger_task,
    close_night_task,
    compare_task,
    drift_task,
    new_rows_task,
    night_data_checks_task,
    night_intake,
    night_outcome,
    open_night_task,
    pool_evidence_task,
    promote_task,
    publish_nightly_task,
    quiet_outcome,
    record_baseline_task,
    reevaluate_champion_task,
    settle_evidence_task,
)
from tasks.train.task import train_task


@flow(name="addgp-nightly", flow_run_name=initial_flow_run_name, log_prints=True)
def nightly_flow(config_path: str, run_id: str | None = None) -> NightResult:
    """One night; returns what it did (``NightResult``: report, promoted, nothing_new, champion,
    resumed and, on a night with new batches, the gate's outcome and whether the inbox drifted)."""
    ctx = NightContext.of(load_pipeline_config(config_path), config_path)
    config, workspace = ctx.config, ctx.workspace
    with champions.exclusive_run(ctx.state, "nightly", wait_s=ctx.nightly.wait_for_lock_s):
        if config.demo_corpus is not None:
            demo_corpus_task(config.demo_corpus)
        manifests = [i.manifest for i in ingest_datasets(config, workspace, nightly_inbox=ctx.nightly.inbox).values()]
        intake = night_intake(ctx)
        night = open_night_task(ctx, run_id)  # the run id is taken under the lock
        name_flow_run(config.name, night.run_id)
        if night.nothing_new:
            return quiet_night(ctx, night, intake)
        if night.resumed:
            get_run_logger().warning("resuming the unfinished night %s (batches %s)", night.run_id, night.batch_ids)
        with dask_cluster(config.cluster, config.name) as scheduler:
            embed_task(manifests, config.encoder, workspace.embeddings, scheduler, config.embed)
        if night.champion is None:  # first night: the configured training data gives the baseline champion
            baseline = train_task(
                manifests, workspace.embeddings, workspace.models, config.encoder, config.train, ctx.detector
            )
            night = record_baseline_task(ctx, night, baseline)
        # Before any label is read: how far tonight's inbox lies from the champion's training data.
        drift = drift_task(ctx, night, manifests)
        # Before the challenger learns them: new rows with an eval file's audio are excluded.
        rows = night_data_checks_task(ctx, manifests, *new_rows_task(ctx, night))
        # Rows of earlier nights the gate could not decide on are learnt and tested on again tonight.
        night, pooled = pool_evidence_task(ctx, night, rows)
        night = challenger_task(ctx, night, manifests, pooled)
        comparison = compare_task(ctx, night, manifests, pooled)
        champion = promote_task(ctx, night, comparison)
        settle_evidence_task(ctx, night, comparison, pooled)
        outcome = night_outcome(ctx, night, intake, rows, pooled, comparison, champion, drift)
        folder = publish_nightly_task(outcome, ctx.reports_root, night)
        close_night_task(ctx, night)
        return announce_night(ctx, night, folder, champion, comparison, drift)


def quiet_night(ctx: NightContext, night: Night, intake: NightIntake) -> NightResult:
    """Nothing new in the inbox: the champion is measured on tonight's eval sets all the same (their
    embeddings are in the store, so its drift shows night after night), a short report published."""
    champion = night_state.current_champion(ctx.state, ctx.name)
    reevaluation = None
    if champion is not None:
        with dask_cluster(ctx.config.cluster) as scheduler:
            embed_task(ctx.eval_manifests, ctx.config.encoder, ctx.workspace.embeddings, scheduler, ctx.config.embed)
        reevaluation = reevaluate_champion_task(ctx, night, champion)
    folder = publish_nightly_task(quiet_outcome(ctx, night, intake, champion, reevaluation), ctx.reports_root)
    get_run_logger().info("nothing new in the inbox; report at %s", folder)
    return NightResult(report=folder, promoted=False, nothing_new=True, champion=champion, resumed=False)
