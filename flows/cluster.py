"""Where the heavy stages run: an existing Dask scheduler, GPU workers, or a LocalCluster.

- ``cluster.address`` set → connect to that scheduler (a real cluster: compose, Kubernetes, SLURM).
- GPUs visible and dask-cuda installed → LocalCUDACluster, one worker per GPU.
- otherwise → LocalCluster of ``n_workers`` processes.

Workers of a local cluster advertise ``GPU=1`` when they own a GPU; the embed stage asks
for that resource per shard, so one GPU never runs two encoders at once.

The Dask dashboard's link is published only while a dashboard answers behind it: its pages
need ``bokeh`` where the scheduler runs, which the lock does not install (``pip install
bokeh`` adds it). A scheduler whose ``/status`` page answers gets its link into the flow run's
logs and a Prefect link artifact (key ``addgp-<config>-dask-dashboard``), so the Prefect UI
leads to the run's dashboard; when a cluster started here stops, the artifact is replaced by
a note that it has closed. Without bokeh one log line says there is no dashboard and why.
A local cluster's dashboard takes a free port (``:0``), so two runs on one machine never
collide on 8787.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
from distributed import Client, LocalCluster
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.context import FlowRunContext

from addgp.config import ClusterConfig
from addgp.progress import run_logger
from addgp.runs import artifact_key

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 5
NO_BOKEH = "its pages need bokeh where the scheduler runs, which is not installed (pip install bokeh)"


def external_dashboard_link(address: str) -> str | None:
    """The dashboard link an existing scheduler advertises; None when it runs without one or cannot be reached."""
    try:
        with Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT_S) as client:
            return client.dashboard_link
    except (OSError, KeyError) as exc:  # unreachable (the embed stage then fails with the reason), or no dashboard
        log.debug("no dashboard link from %s: %s", address, exc)
        return None


def dashboard_answers(link: str) -> bool:
    """Whether a dashboard is served behind ``link``: a scheduler without bokeh answers its pages
    with Dask's "Dask needs bokeh" note (``/status``) or 404 (the plots)."""
    try:
        page = httpx.get(link, timeout=PROBE_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError:
        return False
    return page.status_code == 200 and "needs bokeh" not in page.text


def announce_dashboard(link: str | None, scheduler: str, name: str | None) -> bool:
    """Log the Dask dashboard link, and inside a flow run publish it as the link artifact
    ``addgp-<name>-dask-dashboard`` - only when a dashboard answers there. Returns whether it was published."""
    logger = run_logger() or log
    if not link:
        logger.info("no Dask dashboard link for scheduler %s (it runs without one, or did not answer)", scheduler)
        return False
    if not dashboard_answers(link):
        logger.info("no Dask dashboard for scheduler %s: %s", scheduler, NO_BOKEH)
        return False
    logger.info("Dask dashboard: %s (scheduler %s)", link, scheduler)
    if name is not None and FlowRunContext.get() is not None:
        create_link_artifact(link, link_text=f"Dask dashboard ({scheduler})", key=artifact_key(name, "dask-dashboard"))
        return True
    return False


def retire_dashboard(name: str | None, scheduler: str) -> None:
    """Replace the dashboard artifact of a cluster that has stopped: its link no longer leads anywhere."""
    if name is None or FlowRunContext.get() is None:
        return
    closed = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    create_markdown_artifact(
        f"The Dask dashboard of scheduler {scheduler} closed with its cluster at {closed}.",
        key=artifact_key(name, "dask-dashboard"),
    )


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
            with (
                LocalCUDACluster(
                    threads_per_worker=config.threads_per_worker, resources={"GPU": 1}, dashboard_address=":0"
                ) as cluster,
                _dashboard_while_alive(cluster, name),
            ):
                yield cluster.scheduler_address
            return
    with (
        LocalCluster(
            n_workers=config.n_workers,
            threads_per_worker=config.threads_per_worker,
            processes=True,
            memory_limit=config.memory_limit,
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        _dashboard_while_alive(cluster, name),
    ):
        yield cluster.scheduler_address


@contextmanager
def _dashboard_while_alive(cluster: LocalCluster, name: str | None) -> Iterator[None]:
    """The dashboard of a cluster started here: announced when it answers, retired when the cluster stops."""
    published = announce_dashboard(cluster.dashboard_link, cluster.scheduler_address, name)
    try:
        yield
    finally:
        if published:
            retire_dashboard(name, cluster.scheduler_address)
