"""The scheduled deployments of a config, declared in one place.

- ``<name>-nightly``: the nightly loop (flows/nightly.py) at ``schedule.nightly_cron``.
- ``<name>-benchmark``: the full pipeline on ``benchmark_config`` (the eight-corpus
  cross-dataset evaluation) at ``schedule.benchmark_cron``.

Both run in ``schedule.timezone`` and with a deployment concurrency limit of one: a run
that comes due while the previous one is still going waits in the queue (ENQUEUE) instead
of overlapping it. ``addgp serve`` serves them from one process; for production the same
flows are deployed to a work pool (docs/operations.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict, cast

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from addgp.config import PipelineConfig
from flows.config import load_pipeline_config
from flows.nightly import nightly_flow
from flows.pipeline import pipeline_flow

# Entry points by module path (flows.nightly.nightly_flow), not file path: the flow is
# found wherever addgp is installed, whatever directory the serving process runs in.
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


class _DeploymentOptions(TypedDict):
    """The ``to_deployment`` arguments both deployments share."""

    concurrency_limit: ConcurrencyLimitConfig
    entrypoint_type: EntrypointType
    job_variables: dict[str, Any]


def deployment_names(config: PipelineConfig) -> dict[str, str]:
    return {"nightly": f"{config.name}-nightly", "benchmark": f"{config.name}-benchmark"}


def build_deployments(
    config_path: str | Path, *, job_variables: dict | None = None, check_paths: bool = True
) -> list[RunnerDeployment]:
    """Deployments for the config; the nightly one only when the config has a ``nightly:`` section.

    ``job_variables`` go to the work pool's job (e.g. a process pool's ``working_dir``);
    ``check_paths=False`` when registering from a machine that does not see the data
    (the worker checks them when the run starts).
    """
    path = str(Path(config_path).resolve())
    config = load_pipeline_config(path, check_paths=check_paths)
    names = deployment_names(config)
    common: _DeploymentOptions = {
        "concurrency_limit": ONE_AT_A_TIME,
        "entrypoint_type": EntrypointType.MODULE_PATH,
        "job_variables": job_variables or {},
    }
    # Prefect's async_dispatch types to_deployment as RunnerDeployment | Coroutine (the latter
    # in an event loop); called synchronously, as here, it returns the RunnerDeployment.
    deployments: list[RunnerDeployment] = []
    if config.nightly is not None:
        deployments.append(
            cast(
                RunnerDeployment,
                nightly_flow.to_deployment(
                    name=names["nightly"],
                    schedules=[Cron(config.schedule.nightly_cron, timezone=config.schedule.timezone)],
                    parameters={"config_path": path},
                    description="Absorb new inbox batches, challenge the champion, promote if better.",
                    tags=["addgp", "nightly"],
                    **common,
                ),
            )
        )
    benchmark = str(config.benchmark_config) if config.benchmark_config else path
    deployments.append(
        cast(
            RunnerDeployment,
            pipeline_flow.to_deployment(
                name=names["benchmark"],
                schedules=[Cron(config.schedule.benchmark_cron, timezone=config.schedule.timezone)],
                parameters={"config_path": benchmark},
                description="The full cross-dataset evaluation of the benchmark config.",
                tags=["addgp", "benchmark"],
                **common,
            ),
        )
    )
    return deployments
