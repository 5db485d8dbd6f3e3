"""The nightly loop: absorb new inbox batches, challenge the champion, promote only if better.

ingest inbox (new dated batch) → nothing new? publish a short report, stop
→ embed only the new audio → challenger (retrain or adapt) → champion and challenger on the
same eval sets + held-out new fakes → promote or keep → report (with forgetting) → mark the
batches as used. Two nightly runs never overlap: the second waits or stops with a message.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from addgp.config import ConfigError, load_config
from flows.cluster import dask_cluster
from flows.pipeline import new_run_id
from storage import champions
from storage.manifests import read_manifest
from storage.reports import publish_report
from storage.workspace import Workspace
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, spec_from_config
from tasks.embed.task import embed_task
from tasks.evaluate.nightly_task import compare_task
from tasks.ingest.inbox import acknowledge_inbox_batches, new_inbox_batches, rows_of_batches
from tasks.ingest.task import demo_corpus_task, ingest_task
from tasks.report.nightly import NightlyOutcome, render_markdown, render_nightly_report
from tasks.report.task import artifact_key
from tasks.train.challenge import split_new_rows
from tasks.train.task import challenger_task, train_task

CONSUMER = "nightly"


@task(name="new-inbox-batches", cache_policy=NO_CACHE)
def new_batches_task(state_dir: str) -> list[dict]:
    return new_inbox_batches(state_dir, consumer=CONSUMER)


@task(name="publish-nightly-report", cache_policy=NO_CACHE)
def publish_nightly_task(outcome: NightlyOutcome, reports_root: str) -> str:
    folder = publish_report(render_nightly_report(outcome), reports_root, outcome.run_id)
    create_markdown_artifact(render_markdown(outcome), key=artifact_key(outcome.config_name, "nightly"), description="nightly decision")
    return folder


@flow(name="addgp-nightly", log_prints=True)
def nightly_flow(config_path: str, run_id: str | None = None) -> dict:
    """One night; returns {report, promoted, nothing_new, champion}."""
    config = load_config(config_path)
    if config.nightly is None:
        raise ConfigError(f"{config_path}: the nightly flow needs a `nightly:` section (inbox, detector, strategy)")
    logger = get_run_logger()
    workspace = Workspace.at(config.workdir)
    nightly = config.nightly
    run_id = run_id or new_run_id(f"{config.name}-nightly")
    detector = next(d for d in config.train.detectors if d.name == nightly.detector)
    reports_root = f"{workspace.reports}/nightly"
    warnings = [RANDOM_WEIGHT_WARNING] if spec_from_config(config.encoder).random_weights else []

    with champions.exclusive_run(workspace.state, "nightly", wait_s=nightly.wait_for_lock_s):
        if config.demo_corpus is not None:
            demo_corpus_task(config.demo_corpus)
        futures = {
            d.name: ingest_task.submit(d, workspace.manifest(d.name), extra_options={"state_dir": workspace.state})
            if d.name == nightly.inbox
            else ingest_task.submit(d, workspace.manifest(d.name), reuse_existing=True)
            for d in config.datasets
        }
        manifests = [f.result()["manifest"] for f in futures.values()]
        batches = new_batches_task(workspace.state)
        if not batches:
            folder = publish_nightly_task(NightlyOutcome(config.name, run_id, [], warnings=warnings), reports_root)
            logger.info("nothing new in the inbox; report at %s", folder)
            return {"report": folder, "promoted": False, "nothing_new": True, "champion": champions.current_champion(workspace.state, detector.name)}

        with dask_cluster(config.cluster) as scheduler:
            embed_task(manifests, config.encoder, workspace.embeddings, scheduler, config.embed)

        champion = champions.current_champion(workspace.state, detector.name)
        if champion is None:
            # First night: the configured training data gives the baseline champion.
            baseline = train_task(manifests, workspace.embeddings, workspace.models, config.encoder, config.train, detector)
            champion = {"model_path": baseline["path"], "version": baseline["version"], "run_id": run_id, "eer": None}

        new_rows = rows_of_batches(read_manifest(workspace.manifest(nightly.inbox)), [b["batch_id"] for b in batches])
        learn_rows, holdout_rows = split_new_rows(new_rows, nightly.holdout_fraction)
        challenger = challenger_task(
            champion["model_path"], nightly.strategy, manifests, workspace.embeddings, workspace.models, detector.name,
            learn_rows, nightly.replay_rows,
        )
        comparison = compare_task(
            champion["model_path"], challenger["path"], manifests, workspace.embeddings, config.eval_datasets,
            config.evaluate.splits, holdout_rows, nightly.n_boot, champion["eer"],
        )
        if champion["eer"] is None:
            champion = {**champion, "eer": comparison["champion_eer"], "promoted_at": run_id}
            champions.promote(workspace.state, detector.name, champion)
        promoted = comparison["decision"]["promote"]
        if promoted:
            champion = {
                "model_path": challenger["path"], "version": challenger["version"], "run_id": run_id,
                "promoted_at": run_id, "eer": comparison["challenger_eer"], "batches": [b["batch_id"] for b in batches],
            }
            champions.promote(workspace.state, detector.name, champion)
        outcome = NightlyOutcome(
            config.name, run_id, batches, comparison["decision"], comparison["eer"], comparison["forgetting"], champion, warnings
        )
        folder = publish_nightly_task(outcome, reports_root)
        acknowledge_inbox_batches(workspace.state, [b["batch_id"] for b in batches], consumer=CONSUMER)
        logger.info("%s; report at %s", "challenger promoted" if promoted else "champion kept", folder)
        return {"report": folder, "promoted": promoted, "nothing_new": False, "champion": champion}
