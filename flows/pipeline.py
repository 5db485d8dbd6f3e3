"""The whole pipeline for one config: (demo corpus →) ingest → embed → train → evaluate → report."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow, get_run_logger

from addgp.config import PipelineConfig, load_config
from flows.cluster import dask_cluster
from storage.workspace import Workspace
from tasks.degrade.plan import augmented_train_datasets
from tasks.degrade.task import degrade_task
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, spec_from_config
from tasks.embed.task import embed_task
from tasks.evaluate.task import cross_dataset_task, evaluate_task
from tasks.ingest.task import demo_corpus_task, ingest_task
from tasks.report.build import ReportInput
from tasks.report.task import report_task
from tasks.train.task import train_task


def new_run_id(name: str) -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{name}"


@flow(name="addgp-run", log_prints=True)
def pipeline_flow(config_path: str, run_id: str | None = None) -> str:
    """Run the pipeline of ``config_path``; returns the published report folder."""
    config: PipelineConfig = load_config(config_path)
    logger = get_run_logger()
    workspace = Workspace.at(config.workdir)
    run_id = run_id or new_run_id(config.name)

    if config.demo_corpus is not None:
        demo_corpus_task(config.demo_corpus)
    # An inbox keeps its batch ledger in the workspace, never in the drop folder itself.
    ingest_futures = {
        d.name: ingest_task.submit(d, workspace.manifest(d.name), extra_options={"state_dir": workspace.state} if d.adapter == "inbox" else None)
        for d in config.datasets
    }
    ingests = {name: future.result() for name, future in ingest_futures.items()}
    manifests = [summary["manifest"] for summary in ingests.values()]
    degraded = None
    with dask_cluster(config.cluster) as scheduler:
        if config.conditions:
            # Degraded copies are datasets of their own (<dataset>@<condition>): embedded, trained on and scored like the rest.
            degraded = degrade_task(manifests, config, str(workspace.root), scheduler)
            manifests = manifests + degraded["manifests"]
        embed = embed_task(manifests, config.encoder, workspace.embeddings, scheduler)
    logger.info("embedded %d utterances (%d rejects) at %.1f audio-s/s", embed["utterances_embedded"], embed["rejects"], embed["audio_seconds_per_second"])

    train = config.train.model_copy(update={"datasets": augmented_train_datasets(config)})
    models = [
        train_task(manifests, workspace.embeddings, workspace.models, config.encoder, train, detector)
        for detector in config.train.detectors
    ]
    scores = evaluate_task(
        manifests, workspace.embeddings, {m["name"]: m["path"] for m in models}, config.eval_datasets, config.evaluate.splits,
        config.evaluate.conditions,
    )
    # One table for both analyses: the cross-dataset matrix of the clean rows, the robustness section of the condition column.
    evaluation = cross_dataset_task(
        scores,
        n_boot=config.evaluate.n_boot,
        target_error=config.evaluate.target_error,
    )
    spec = spec_from_config(config.encoder)
    report = ReportInput(
        title=f"addgp report: {config.name}",
        run_id=run_id,
        models=models,
        encoder=spec.name,
        warnings=[RANDOM_WEIGHT_WARNING] if spec.random_weights else [],
        notes={"ingest": ingests, "embed": embed, **({"degrade": degraded["summaries"]} if degraded else {})},
        evaluation=evaluation,
    )
    # report_task compares with the previous published report (LATEST) and the earlier ones (trends).
    folder = report_task(report, scores, workspace.reports, config.name)
    logger.info("report published at %s", folder)
    return folder
