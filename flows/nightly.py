"""The nightly loop: absorb new inbox batches, challenge the champion, promote only if better.

ingest inbox (a batch per delivery folder) → open the night (or resume an unfinished one) →
nothing new? re-evaluate the champion on the eval sets, publish a short report, stop → embed
only the new audio → data checks of the new rows (copies of eval files excluded) → drift of
tonight's inbox from the champion's training data (no label read; event ``addgp.run.drift``
past the threshold) → challenger (retrain or adapt) → champion and challenger on the same eval
sets + held-out new fakes (with the rows of earlier undecided nights) → the promotion gate:
promote, keep, or "not enough evidence yet" (rows pooled for the next night) → report (with
forgetting) → acknowledge the batches. Two nightly runs never overlap: the
second waits or stops with a message. The flow run is named ``<config>/<run id>`` as soon as
the run id is taken (under the lock); a promotion is announced as the Prefect event
``addgp.run.promotion`` and, when ``notify.on`` lists it, to ``notify.webhook_url``.
Composition only: the steps are tasks/nightly.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from addgp.config import ConfigError
from flows.cluster import dask_cluster
from flows.config import load_pipeline_config
from flows.runs import initial_flow_run_name, name_flow_run
from storage import champions
from storage.workspace import Workspace
from tasks.demo_corpus.task import demo_corpus_task
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, spec_from_config
from tasks.embed.task import embed_task
from tasks.ingest.checks import pipeline_roles
from tasks.ingest.task import ingest_task
from tasks.nightly.intake import inbox_folder
from tasks.nightly.night import champion_chain, champion_history
from tasks.nightly.task import (
    challenger_task,
    close_night_task,
    compare_task,
    drift_task,
    inbox_rejects_task,
    new_rows_task,
    night_data_checks_task,
    open_night_task,
    pool_evidence_task,
    promote_task,
    publish_nightly_task,
    record_baseline_task,
    reevaluate_champion_task,
    settle_evidence_task,
)
from tasks.report.nightly import NightlyOutcome
from tasks.report.task import drift_announce_task, promotion_task
from tasks.train.task import train_task


@flow(name="addgp-nightly", flow_run_name=initial_flow_run_name, log_prints=True)
def nightly_flow(config_path: str, run_id: str | None = None) -> dict:
    """One night; returns {report, promoted, nothing_new, champion, resumed} and, on a night with new
    batches, outcome (promoted / kept / not enough evidence yet) and drifted."""
    config = load_pipeline_config(config_path)
    if config.nightly is None:
        raise ConfigError(f"{config_path}: the nightly flow needs a `nightly:` section (inbox, detector, strategy)")
    logger = get_run_logger()
    workspace = Workspace.at(config.workdir)
    nightly = config.nightly
    detector = next(d for d in config.train.detectors if d.name == nightly.detector)
    # Each champion detector has its own reports folder (and its own acknowledged batches).
    state, reports_root = workspace.state, f"{workspace.reports}/nightly/{detector.name}"
    inbox_root = next(d.root for d in config.datasets if d.name == nightly.inbox)
    inbox_created = nightly.create_inbox and "://" not in str(inbox_root) and not Path(inbox_root).exists()
    warnings = [RANDOM_WEIGHT_WARNING] if spec_from_config(config.encoder).random_weights else []

    with champions.exclusive_run(state, "nightly", wait_s=nightly.wait_for_lock_s):
        if config.demo_corpus is not None:
            demo_corpus_task(config.demo_corpus)
        futures = {
            d.name: ingest_task.submit(
                d,
                workspace.manifest(d.name),
                extra_options={"state_dir": state, "create_missing": nightly.create_inbox},
            )
            if d.name == nightly.inbox
            else ingest_task.submit(d, workspace.manifest(d.name), reuse_existing=True)
            for d in config.datasets
        }
        manifests = [f.result()["manifest"] for f in futures.values()]
        inbox = inbox_folder(inbox_root, created=inbox_created)
        if inbox_created:
            logger.warning("created the missing inbox drop folder %s (nightly.create_inbox: true)", inbox["folder"])
        logger.info("inbox %s: %d file(s)", inbox["folder"], inbox["n_files"])
        # The run id is taken under the lock, so a queued night never reuses the previous one's.
        night = open_night_task(state, detector.name, reports_root, f"{config.name}-nightly", run_id)
        name_flow_run(config.name, night["run_id"])
        rejects = inbox_rejects_task(workspace.manifest(nightly.inbox))
        if not night["batches"]:
            champion = champions.current_champion(state, detector.name)
            reevaluation = None
            if champion is not None:
                # No new data: the champion is measured on tonight's eval sets all the same (their
                # embeddings are in the store), so its drift shows night after night.
                eval_manifests = [workspace.manifest(d) for d in config.eval_datasets]
                with dask_cluster(config.cluster) as scheduler:
                    embed_task(eval_manifests, config.encoder, workspace.embeddings, scheduler, config.embed)
                reevaluation = reevaluate_champion_task(
                    state,
                    detector.name,
                    night["run_id"],
                    champion,
                    eval_manifests,
                    workspace.embeddings,
                    config.eval_datasets,
                    config.evaluate.splits,
                    nightly.n_boot,
                )
            quiet = NightlyOutcome(
                config.name,
                night["run_id"],
                [],
                champion=champion,
                warnings=warnings,
                reevaluation=reevaluation,
                champion_history=champion_history(state, detector.name),
                chain=champion_chain(state, detector.name),
                rejects=rejects,
                detector=detector.name,
                inbox=inbox,
            )
            folder = publish_nightly_task(quiet, reports_root)
            logger.info("nothing new in the inbox; report at %s", folder)
            return {"report": folder, "promoted": False, "nothing_new": True, "champion": champion, "resumed": False}
        if night.get("resumed"):
            logger.warning("resuming the unfinished night %s (batches %s)", night["run_id"], night["batch_ids"])

        with dask_cluster(config.cluster, config.name) as scheduler:
            embed_task(manifests, config.encoder, workspace.embeddings, scheduler, config.embed)

        if night["champion"] is None:
            # First night: the configured training data gives the baseline champion.
            baseline = train_task(
                manifests, workspace.embeddings, workspace.models, config.encoder, config.train, detector
            )
            night = record_baseline_task(state, detector.name, night, baseline)

        # Before any label is read: how far tonight's inbox lies from the champion's training data.
        drift = drift_task(
            state,
            detector.name,
            night,
            manifests,
            workspace.embeddings,
            workspace.manifest(nightly.inbox),
            nightly.drift,
        )
        learn_rows, holdout_rows = new_rows_task(
            workspace.manifest(nightly.inbox), night["batch_ids"], nightly.holdout_fraction
        )
        # Before the challenger learns them: new rows with an eval file's audio are excluded.
        checked = night_data_checks_task(manifests, nightly.inbox, *pipeline_roles(config), learn_rows, holdout_rows)
        learn_rows, holdout_rows = checked["learn"], checked["holdout"]
        # Rows of earlier nights the gate could not decide on are learnt and tested on again tonight.
        night, pooled = pool_evidence_task(
            state, detector.name, night, workspace.manifest(nightly.inbox), learn_rows, holdout_rows
        )
        night = challenger_task(
            state,
            night,
            nightly.strategy,
            manifests,
            workspace.embeddings,
            workspace.models,
            detector.name,
            pooled["learn"],
            nightly.replay_rows,
            workspace.manifest(nightly.inbox),
            nightly.consolidate_every_nights,
        )
        comparison = compare_task(
            night["champion"]["model_path"],
            night["challenger"]["path"],
            manifests,
            workspace.embeddings,
            config.eval_datasets,
            config.evaluate.splits,
            pooled["held_out"],
            nightly.n_boot,
            night["champion"]["eer"],
            nightly.gate,
            len(pooled["nights"]),
        )
        champion = promote_task(state, detector.name, night, comparison)
        settle_evidence_task(state, detector.name, night, comparison["decision"], pooled)
        promoted = comparison["decision"]["promote"]
        outcome = NightlyOutcome(
            config.name,
            night["run_id"],
            night["batches"],
            comparison["decision"],
            comparison["eer"],
            comparison["forgetting"],
            champion,
            warnings,
            evidence=comparison["evidence"],
            champion_history=champion_history(state, detector.name),
            chain=champion_chain(state, detector.name),
            rejects=rejects,
            detector=detector.name,
            inbox=inbox,
            data_checks=checked["checks"],
            excluded=checked["excluded"],
            score_sources=comparison["score_sources"],
            challenger={
                "strategy": nightly.strategy,
                "new_rows": int(len(pooled["learn"])),
                "held_out_rows": int(len(pooled["held_out"])),
                "model": night["challenger"]["path"],
                **{k: night["challenger"].get(k) for k in ("step", "cost")},
            },
            gate=comparison["gate"],
            drift=drift,
        )
        folder = publish_nightly_task(outcome, reports_root, night)
        close_night_task(state, detector.name, night)
        if promoted:
            promotion_task(config.notify, config.name, night["run_id"], folder, champion)
        if drift[-1]["drifted"]:
            drift_announce_task(config.notify, config.name, night["run_id"], folder, detector.name, drift[-1])
        logger.info("%s; report at %s", "challenger promoted" if promoted else "champion kept", folder)
        return {
            "report": folder,
            "promoted": promoted,
            "nothing_new": False,
            "champion": champion,
            "resumed": bool(night.get("resumed")),
            "outcome": comparison["decision"]["outcome"],
            "drifted": drift[-1]["drifted"],
        }
