"""Where the heavy stages run: an existing Dask scheduler, GPU workers, or a LocalCluster.

- ``cluster.address`` set → connect to that scheduler (a real cluster: compose, Kubernetes, SLURM).
- GPUs visible and dask-cuda installed → LocalCUDACluster, one worker per GPU.
- otherwise → LocalCluster of ``n_workers`` processes.

Workers of a local cluster advertise ``GPU=1`` when they own a GPU; the embed stage asks
for that resource per shard, so one GPU never runs two encoders at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import LocalCluster

from addgp.config import ClusterConfig

log = logging.getLogger(__name__)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


@contextmanager
def dask_cluster(config: ClusterConfig) -> Iterator[str]:
    """Yield a scheduler address for the run; a cluster started here is closed on exit."""
    if config.address:
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
        yield cluster.scheduler_address
