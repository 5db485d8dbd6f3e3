"""Prefect task of the report stage: write the report folder and publish it as artifacts."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from addgp.storage.reports import publish_report
from addgp.tasks.report.build import ReportInput, eer_matrix, render_markdown, render_report


def artifact_key(name: str, what: str) -> str:
    """Stable artifact keys (lowercase letters, digits, dashes), so the Prefect UI shows history per key."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return f"addgp-{slug}-{what}"


@task(name="report", cache_policy=NO_CACHE)
def report_task(report: ReportInput, scores: pd.DataFrame, reports_root: str, config_name: str) -> str:
    folder = publish_report(render_report(report), reports_root, report.run_id, scores=scores)
    create_markdown_artifact(render_markdown(report), key=artifact_key(config_name, "summary"), description=report.title)
    table = eer_matrix(report.metrics).reset_index()
    create_table_artifact(
        table.round(4).astype(object).where(table.notna(), None).to_dict("records"),
        key=artifact_key(config_name, "eer-matrix"),
        description="EER per detector (rows) and dataset (columns), fractions",
    )
    create_link_artifact(f"file://{folder}/index.html", link_text="HTML report", key=artifact_key(config_name, "html"))
    return folder
