"""The whole pipeline for one config: (demo corpus →) ingest → the run's corpora (a corpus that
lost rows left out) → data checks → (degrade →) embed → (near-duplicate check →) train →
evaluate → report → regressions against the previous report (logged, a Prefect event,
``notify.webhook_url``).

The flow run is named ``<config>/<run id>``, the run id being the report folder's name."""

from __future__ import annotations

from prefect import flow

from flows.cluster import dask_cluster
from flows.config import load_pipeline_config
from flows.runs import initial_flow_run_name, name_flow_run
from storage.reports import new_run_id
from storage.workspace import Workspace
from tasks.degrade.plan import augmented_train_datasets
from tasks.degrade.task import degrade_task
from tasks.demo_corpus.task import demo_corpus_task
from tasks.embed.encoder import resolve_layer, spec_from_config
from tasks.embed.task import embed_task
from tasks.evaluate.task import cross_dataset_task, evaluate_task
from tasks.ingest.task import data_checks_task, ingest_datasets, near_duplicate_task, plan_run
from tasks.report.build import ReportInput
from tasks.report.run_input import RunStages, run_report_input
from tasks.report.task import regressions_task, report_task
from tasks.train.task import train_task


@flow(name="addgp-run", flow_run_name=initial_flow_run_name, log_prints=True)
def pipeline_flow(config_path: str, run_id: str | None = None) -> str:
    """Run the pipeline of ``config_path``; returns the published report folder."""
    config = load_pipeline_config(config_path)
    workspace = Workspace.at(config.workdir)
    run_id = run_id or new_run_id(workspace.reports, config.name)
    name_flow_run(config.name, run_id)
    if config.demo_corpus is not None:
        demo_corpus_task(config.demo_corpus)
    ingests = ingest_datasets(config, workspace)
    # A corpus that lost a split or too many rows at ingest is left out (of the role that needs it).
    plan = plan_run(config, ingests)
    config, manifests = plan.applied_to(config), plan.manifests(ingests)
    # Before any training: duplicate audio, train/eval overlap (an error here stops the run).
    data_checks = data_checks_task(manifests, config, config_path)
    with dask_cluster(config.cluster, config.name) as scheduler:
        # Degraded copies are datasets of their own (<dataset>@<condition>): embedded, trained on and scored like the rest.
        degraded = degrade_task(manifests, config, str(workspace.root), scheduler) if config.conditions else None
        manifests = [*manifests, *(degraded.manifests if degraded else [])]
        embed = embed_task(manifests, config.encoder, workspace.embeddings, scheduler, config.embed)
    spec = spec_from_config(config.encoder)
    if config.data_checks.near_duplicate_cosine is not None:
        layer = resolve_layer(spec, config.train.layer)
        data_checks = near_duplicate_task(data_checks, manifests, workspace.embeddings, config, spec.name, layer)
    train = config.train.model_copy(update={"datasets": augmented_train_datasets(config)})
    models = [
        train_task(manifests, workspace.embeddings, workspace.models, config.encoder, train, detector)
        for detector in config.train.detectors
    ]
    scores = evaluate_task(manifests, workspace.embeddings, models, config)
    # One table for both analyses: the cross-dataset matrix of the clean rows, the robustness section of the condition column.
    evaluation = cross_dataset_task(scores, config.evaluate)
    stages = RunStages(ingests, embed, degraded, models, data_checks, plan.left_out)
    report = run_report_input(config.name, run_id, stages, evaluation)
    # report_task compares with the previous published report (LATEST) and the earlier ones (trends).
    folder = report_task(report, scores, workspace.reports, config.name)
    regressions_task(config.notify, config.name, run_id, folder)
    return folder


@flow(name="addgp-report")
def report_flow(report: ReportInput, scores, reports_root: str, artifact_name: str) -> str:
    """Publish a report of existing score tables, with Prefect artifacts (``addgp report --artifacts``)."""
    return report_task(report, scores, reports_root, artifact_name)
