"""Flow run names a person can match with the reports: ``<config>/<run id>``.

A flow run starts under ``<config file stem>`` (plus ``/<run id>`` when one was asked for);
the flow renames it once the run id is settled - ``pipeline_flow`` at its start, the nightly
flow under its lock, where a resumed night keeps its own id - so the name in the Prefect
UI is always the report folder's name.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from addgp.runs import flow_label


def initial_flow_run_name() -> str:
    """``flow_run_name`` of the addgp flows, before the run id is known."""
    parameters = flow_run.parameters
    stem = Path(str(parameters.get("config_path", "addgp"))).stem
    run_id = parameters.get("run_id")
    return flow_label(stem, run_id) if run_id else stem


def name_flow_run(config_name: str, run_id: str) -> str:
    """Rename the current flow run ``<config>/<run id>`` (in the API and in this run's context)."""
    name = flow_label(config_name, run_id)
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.name == name:
        return name
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)
    get_run_logger().info("flow run %r is now %r (the report's run id)", context.flow_run.name, name)
    context.flow_run.name = name
    return name
