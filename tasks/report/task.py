"""The report stage's I/O: read the earlier reports, render, publish; and its Prefect task (+ artifacts).

:func:`publish_run_report` is the plain-Python entry (used by ``addgp report`` and the
tests); :func:`report_task` wraps it for flows and publishes three Prefect artifacts under
stable keys, so the Prefect UI keeps their history per key:

- ``addgp-<config>-summary`` (markdown): regressions, headline, cross-dataset matrix;
- ``addgp-<config>-eer-matrix`` (table): EER per (detector, train setting) and eval corpus,
  with the unweighted average and the pooled EER;
- ``addgp-<config>-html`` (link): the report's ``index.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from addgp.config import NotifyConfig
from addgp.drift import NightDrift
from addgp.nightly import ChampionRecord
from addgp.progress import run_logger
from addgp.runs import artifact_key
from storage.night_state import champion_to_json
from storage.nightly_records import night_drift_to_json
from storage.paths import join
from storage.reports import previous_report, publish_report, read_report_metrics, report_history
from tasks.evaluate.crossdataset import Evaluation
from tasks.report.build import TREND_RUNS, ReportContent, ReportInput, build_content, render_report, summary_markdown
from tasks.report.notify import drift_payload, promotion_payload, regression_payload, send


@dataclass
class PublishedReport:
    folder: str
    content: ReportContent

    @property
    def html(self) -> str:
        return join(self.folder, "index.html")


def publish_run_report(
    report: ReportInput, scores: pd.DataFrame | None, reports_root: str, trend_runs: int = TREND_RUNS
) -> PublishedReport:
    """Compare with the previous published report, render, and publish ``reports_root/<run_id>``.

    The previous report is the one LATEST names (read before this one replaces it); the
    trends read up to ``trend_runs - 1`` earlier reports.
    """
    history = report_history(reports_root, exclude=report.run_id, limit=max(trend_runs - 1, 0))
    previous_dir = previous_report(reports_root, report.run_id)
    previous = None
    if previous_dir is not None:
        try:
            previous = {**read_report_metrics(previous_dir), "run_id": previous_dir.rstrip("/").rsplit("/", 1)[-1]}
        except (OSError, ValueError):  # an unreadable previous report: compare with the newest readable one
            previous = None
        if previous is None or not isinstance(previous.get("metrics"), list):
            # unreadable, or not an evaluation report (another kind published into this root)
            comparable = [d for d in history if isinstance(d.get("metrics"), list)]
            previous = comparable[-1] if comparable else None
    report = replace(report, scores=scores if scores is not None else report.scores, previous=previous, history=history)
    content = build_content(report)
    folder = publish_report(render_report(content), reports_root, report.run_id, scores=report.scores)
    return PublishedReport(folder=folder, content=content)


def matrix_table(evaluation: Evaluation) -> list[dict]:
    """The cross-dataset EER matrix as table-artifact rows (fractions, rounded; None = not evaluated)."""
    matrix = evaluation.matrix("eer")
    summary = evaluation.summary.set_index("detector")
    rows = []
    for (detector, setting), row in matrix.iterrows():
        record: dict[str, str | float | None] = {"detector": str(detector), "train setting": str(setting)}
        record.update({f"eval: {dataset}": (None if pd.isna(v) else round(float(v), 4)) for dataset, v in row.items()})
        average = summary.loc[detector, "average_eer"]
        record["average over corpora (unweighted)"] = None if pd.isna(average) else round(float(average), 4)
        pooled = summary.loc[detector, "pooled_eer"]
        record["pooled"] = None if pd.isna(pooled) else round(float(pooled), 4)
        rows.append(record)
    return rows


def report_link(folder: str) -> str:
    """The URL of a published report's ``index.html`` (``file://`` for a local folder)."""
    target = join(folder, "index.html")
    return target if "://" in target else f"file://{target}"


@task(name="report", task_run_name="report[{config_name}/{report.run_id}]", cache_policy=NO_CACHE)
def report_task(report: ReportInput, scores: pd.DataFrame, reports_root: str, config_name: str) -> str:
    """Publish the run's report folder and its Prefect artifacts; returns the folder."""
    published = publish_run_report(report, scores, reports_root)
    content = published.content
    create_markdown_artifact(
        summary_markdown(content), key=artifact_key(config_name, "summary"), description=report.title
    )
    create_table_artifact(
        matrix_table(content.evaluation),
        key=artifact_key(config_name, "eer-matrix"),
        description="EER per detector/train setting (rows) and eval corpus (columns), fractions; last columns: unweighted average and pooled",
    )
    create_link_artifact(
        report_link(published.folder), link_text=f"HTML report {report.run_id}", key=artifact_key(config_name, "html")
    )
    logger = run_logger()
    if logger is not None:  # outside a run (``.fn`` called directly) the caller has the folder
        logger.info("report published at %s", published.folder)
    return published.folder


def _announce(payload: dict, notify: NotifyConfig) -> None:
    """A Prefect event (for automations) and the webhook POST (for everyone else) of ``payload``."""
    from prefect.events import emit_event

    emit_event(
        event=f"addgp.run.{payload['event']}",
        resource={"prefect.resource.id": f"addgp.run.{payload['run_id']}", "prefect.resource.name": payload["run_id"]},
        payload=payload,
    )
    send(notify, payload, get_run_logger())


@task(name="check-regressions", task_run_name="check-regressions[{config_name}/{run_id}]", cache_policy=NO_CACHE)
def regressions_task(notify: NotifyConfig, config_name: str, run_id: str, folder: str) -> list[dict]:
    """The published report's regressions against the previous report, logged, emitted as the
    Prefect event ``addgp.run.regressions`` and POSTed to ``notify.webhook_url``."""
    comparison = read_report_metrics(folder).get("comparison", {})
    payload = regression_payload(config_name, run_id, report_link(folder), comparison)
    if payload is None:
        return []
    get_run_logger().warning(
        "%d regression(s) against %s: %s",
        len(payload["regressions"]),
        payload["previous_run_id"],
        "; ".join(
            f"{r['metric']} of {r['detector']} on {r['dataset']} {r['old']:.4f} → {r['new']:.4f}"
            for r in payload["regressions"]
        ),
    )
    _announce(payload, notify)
    return payload["regressions"]


@task(name="announce-drift", task_run_name="announce-drift[{config_name}/{run_id}]", cache_policy=NO_CACHE)
def drift_announce_task(
    notify: NotifyConfig, config_name: str, run_id: str, folder: str, detector: str, drift: NightDrift
) -> None:
    """Tonight's inbox drifted from the champion's training data: the Prefect event ``addgp.run.drift`` and the webhook POST."""
    record = night_drift_to_json(drift)
    get_run_logger().warning("tonight's inbox drifted from the training data of %s's champion: %s", detector, record)
    _announce(drift_payload(config_name, run_id, report_link(folder), detector, record), notify)


@task(name="announce-promotion", task_run_name="announce-promotion[{config_name}/{run_id}]", cache_policy=NO_CACHE)
def promotion_task(notify: NotifyConfig, config_name: str, run_id: str, folder: str, champion: ChampionRecord) -> None:
    """A night promoted its challenger: the Prefect event ``addgp.run.promotion`` and the webhook POST
    (the new champion as its champion file records it)."""
    _announce(promotion_payload(config_name, run_id, report_link(folder), champion_to_json(champion)), notify)
