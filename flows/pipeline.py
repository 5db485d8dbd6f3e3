"""The whole pipeline for one config: (demo corpus →) ingest → embed → train → evaluate → report
→ regressions against the previous report (logged, a Prefect event, ``notify.webhook_url``).

The flow run is named ``<config>/<run id>``, the run id being the report folder's name."""

from __future__ import annotations

from prefect import flow, get_run_logger

from addgp.config import PipelineConfig
from flows.cluster import dask_cluster
from flows.config import load_pipeline_config
from flows.runs import initial_flow_run_name, name_flow_run
from storage.reports import new_run_id
from storage.workspace import Workspace
from tasks.degrade.plan import augmented_train_datasets
from tasks.degrade.task import degrade_task
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, resolve_layer, spec_from_config
from tasks.embed.task import embed_task
from tasks.evaluate.task import cross_dataset_task, evaluate_task
from tasks.ingest.losses import plan_corpora
from tasks.ingest.task import data_checks_task, demo_corpus_task, ingest_task, near_duplicate_task
from tasks.report.build import ReportInput
from tasks.report.task import regressions_task, report_task
from tasks.train.task import train_task


@flow(name="addgp-run", flow_run_name=initial_flow_run_name, log_prints=True)
def pipeline_flow(config_path: str, run_id: str | None = None) -> str:
    """Run the pipeline of ``config_path``; returns the published report folder."""
    config: PipelineConfig = load_pipeline_config(config_path)
    logger = get_run_logger()
    workspace = Workspace.at(config.workdir)
    run_id = run_id or new_run_id(workspace.reports, config.name)
    name_flow_run(config.name, run_id)

    if config.demo_corpus is not None:
        demo_corpus_task(config.demo_corpus)
    # An inbox keeps its batch ledger in the workspace, never in the drop folder itself; a
    # missing drop folder is an error unless the config's nightly section says to create it.
    create_inbox = config.nightly is not None and config.nightly.create_inbox
    ingest_futures = {
        d.name: ingest_task.submit(
            d,
            workspace.manifest(d.name),
            extra_options={"state_dir": workspace.state, "create_missing": create_inbox}
            if d.adapter == "inbox"
            else None,
        )
        for d in config.datasets
    }
    ingests = {name: future.result() for name, future in ingest_futures.items()}
    # A corpus that lost a split or too many rows at ingest is left out (of the role that needs
    # the split); the run publishes what the rest allows and `addgp run` exits 7.
    plan = plan_corpora(config, ingests)
    for record in plan.left_out:
        logger.warning("left out of the run: dataset %s (%s): %s", record["dataset"], record["role"], record["reason"])
    config = plan.applied_to(config)
    manifests = [summary["manifest"] for name, summary in ingests.items() if plan.uses(name)]
    # Before any training: duplicate audio, train/eval overlap (an error here stops the run).
    data_checks = data_checks_task(manifests, config, config_path)

    degraded = None
    with dask_cluster(config.cluster, config.name) as scheduler:
        if config.conditions:
            # Degraded copies are datasets of their own (<dataset>@<condition>): embedded, trained on and scored like the rest.
            degraded = degrade_task(manifests, config, str(workspace.root), scheduler)
            manifests = manifests + degraded["manifests"]
        embed = embed_task(manifests, config.encoder, workspace.embeddings, scheduler, config.embed)
    logger.info(
        "embedded %d utterances (%d rejects) at %.1f audio-s/s",
        embed["utterances_embedded"],
        embed["rejects"],
        embed["audio_seconds_per_second"],
    )
    spec = spec_from_config(config.encoder)
    if config.data_checks.near_duplicate_cosine is not None:
        layer = resolve_layer(spec, config.train.layer)
        data_checks = near_duplicate_task(data_checks, manifests, workspace.embeddings, config, spec.name, layer)

    train = config.train.model_copy(update={"datasets": augmented_train_datasets(config)})
    models = [
        train_task(manifests, workspace.embeddings, workspace.models, config.encoder, train, detector)
        for detector in config.train.detectors
    ]
    scores = evaluate_task(
        manifests,
        workspace.embeddings,
        {m["name"]: m["path"] for m in models},
        config.eval_datasets,
        config.evaluate.splits,
        config.evaluate.conditions,
    )
    # One table for both analyses: the cross-dataset matrix of the clean rows, the robustness section of the condition column.
    evaluation = cross_dataset_task(
        scores,
        n_boot=config.evaluate.n_boot,
        target_error=config.evaluate.target_error,
        training_overlap=config.evaluate.training_overlap,
    )
    report = ReportInput(
        title=f"addgp report: {config.name}",
        run_id=run_id,
        models=models,
        encoder=spec.name,
        warnings=[RANDOM_WEIGHT_WARNING] if spec.random_weights else [],
        notes={"ingest": ingests, "embed": embed, **({"degrade": degraded["summaries"]} if degraded else {})},
        evaluation=evaluation,
        data_checks=data_checks,
        left_out=plan.left_out,
    )
    # report_task compares with the previous published report (LATEST) and the earlier ones (trends).
    folder = report_task(report, scores, workspace.reports, config.name)
    logger.info("report published at %s", folder)
    regressions_task(config.notify, config.name, run_id, folder)
    return folder


@flow(name="addgp-report")
def report_flow(report: ReportInput, scores, reports_root: str, artifact_name: str) -> str:
    """Publish a report of existing score tables, with Prefect artifacts (``addgp report --artifacts``)."""
    return report_task(report, scores, reports_root, artifact_name)
