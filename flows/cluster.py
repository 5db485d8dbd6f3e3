"""Where the heavy stages run: an existing Dask scheduler, GPU workers, or a LocalCluster.

- ``cluster.address`` set → connect to that scheduler (a real cluster: compose, Kubernetes, SLURM).
- GPUs visible and dask-cuda installed → LocalCUDACluster, one worker per GPU.
- otherwise → LocalCluster of ``n_workers`` processes.

Workers of a local cluster advertise ``GPU=1`` when they own a GPU; the embed stage asks
for that resource per shard, so one GPU never runs two encoders at once.

The scheduler's dashboard link goes to the flow run's logs and to a Prefect link artifact
(key ``addgp-<config>-dask-dashboard``), so the Prefect UI leads to the Dask dashboard of
the run. Its plots need ``bokeh`` where the scheduler runs; without it the page says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster
from prefect.artifacts import create_link_artifact
from prefect.context import FlowRunContext

from addgp.config import ClusterConfig
from addgp.progress import run_logger
from addgp.runs import artifact_key

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30


def external_dashboard_link(address: str) -> str | None:
    """The dashboard link an existing scheduler advertises; None when it runs without one or cannot be reached."""
    try:
        with Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT_S) as client:
            return client.dashboard_link
    except (OSError, KeyError) as exc:  # unreachable (the embed stage then fails with the reason), or no dashboard
        log.debug("no dashboard link from %s: %s", address, exc)
        return None


def announce_dashboard(link: str | None, scheduler: str, name: str | None) -> None:
    """Log the Dask dashboard link; inside a flow run also as the link artifact ``addgp-<name>-dask-dashboard``."""
    logger = run_logger() or log
    if not link:
        logger.info("no Dask dashboard link for scheduler %s (it runs without one, or did not answer)", scheduler)
        return
    logger.info("Dask dashboard: %s (scheduler %s)", link, scheduler)
    if name is not None and FlowRunContext.get() is not None:
        create_link_artifact(link, link_text=f"Dask dashboard ({scheduler})", key=artifact_key(name, "dask-dashboard"))


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


@contextmanager
def dask_cluster(config: ClusterConfig, name: str | None = None) -> Iterator[str]:
    """Yield a scheduler address for the run; a cluster started here is closed on exit.

    ``name`` (the pipeline config's) keys the dashboard's Prefect artifact.
    """
    if config.address:
        announce_dashboard(external_dashboard_link(config.address), config.address, name)
        yield config.address
        return
    gpus = _gpu_count()
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            log.warning(
                "%d GPU(s) visible but dask-cuda is not installed (pip install 'addgp[gpu]'); using LocalCluster", gpus
            )
        else:
            with LocalCUDACluster(
                threads_per_worker=config.threads_per_worker, resources={"GPU": 1}, dashboard_address=None
            ) as cluster:
                announce_dashboard(cluster.dashboard_link, cluster.scheduler_address, name)
                yield cluster.scheduler_address
            return
    with LocalCluster(
        n_workers=config.n_workers,
        threads_per_worker=config.threads_per_worker,
        processes=True,
        memory_limit=config.memory_limit,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        announce_dashboard(cluster.dashboard_link, cluster.scheduler_address, name)
        yield cluster.scheduler_address
