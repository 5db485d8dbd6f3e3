"""A Dask cluster of SLURM GPU jobs for addgp (dask-jobqueue), and its scheduler address.

The scheduler runs in this process, on the node that runs this script (a login node, or the
node of an sbatch job — see nightly.sbatch). Each worker is one SLURM job that holds one GPU
(`--gres=gpu:1`) and advertises the Dask resource GPU=1, so every embed shard (which asks for
GPU=1) has a GPU to itself. Jobs that SLURM preempts or kills are replaced at the next
scale-up; their shards are re-run (retries=3), and the store keeps every row exactly once.

Needs `pip install dask-jobqueue` in the environment that runs addgp, and the same
environment (shared filesystem) on the compute nodes: --python / --prologue say how a
worker job starts it.

    # keep a cluster up; put the printed address in the config (cluster.address) or use --write-config
    python infra/slurm/dask_cluster.py --gpus 4 --partition gpu --account myproj --walltime 08:00:00

    # or: start the cluster, run one command against it, stop the cluster (what nightly.sbatch does).
    # {config} in the command is replaced by a copy of --config whose cluster.address points here.
    python infra/slurm/dask_cluster.py --gpus 4 --partition gpu --config configs/nightly.yaml \\
        -- addgp nightly {config}

    # see the worker job script without submitting anything
    python infra/slurm/dask_cluster.py --gpus 1 --partition gpu --dry-run
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml


def make_cluster(args: argparse.Namespace):
    from dask_jobqueue import SLURMCluster

    prologue = list(args.prologue) or [f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}"]
    return SLURMCluster(
        # one SLURM job = one worker process with one task thread = one GPU; the job still gets
        # --cpus-per-task cores for the shard's audio-decoding threads
        cores=1,
        job_cpu=args.cpus_per_gpu,
        processes=1,
        memory=args.memory,
        queue=args.partition,
        account=args.account,
        walltime=args.walltime,
        job_name="addgp-dask",
        job_extra_directives=[f"--gres=gpu:{args.gpu_type + ':' if args.gpu_type else ''}1", *args.sbatch_option],
        # GPU=1: the embed stage claims it per shard, so a GPU never runs two encoders at once.
        worker_extra_args=["--resources", "GPU=1"],
        job_script_prologue=prologue + ["export HF_HUB_OFFLINE=1 DO_NOT_TRACK=1"],
        python=args.python or sys.executable,
        interface=args.interface,
        local_directory=args.local_directory,
        log_directory=args.log_directory,
        death_timeout=300,
        scheduler_options={"dashboard_address": f":{args.dashboard_port}"},
    )


def config_with_address(config: str, address: str) -> str:
    """A copy of the pipeline config with `cluster.address` set; relative paths keep resolving against the cwd."""
    raw = yaml.safe_load(Path(config).read_text())
    raw["cluster"] = {**(raw.get("cluster") or {}), "address": address}
    with tempfile.NamedTemporaryFile("w", prefix="addgp-slurm-", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(raw, handle, sort_keys=False)
    return handle.name


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpus", type=int, default=2, help="GPU worker jobs to request")
    parser.add_argument("--partition", default=None, help="SLURM partition (queue) with GPUs")
    parser.add_argument("--account", default=None, help="SLURM account/project")
    parser.add_argument("--walltime", default="08:00:00", help="wall time per worker job")
    parser.add_argument("--cpus-per-gpu", type=int, default=8, help="CPU cores per worker job (audio decoding)")
    parser.add_argument("--memory", default="48GB", help="host memory per worker job")
    parser.add_argument("--gpu-type", default=None, help="GRES type, e.g. a100 → --gres=gpu:a100:1")
    parser.add_argument(
        "--sbatch-option", action="append", default=[], help="extra #SBATCH line, e.g. --constraint=h100 (repeatable)"
    )
    parser.add_argument(
        "--prologue",
        action="append",
        default=[],
        help="shell line run before the worker starts (repeatable; default: activate this venv)",
    )
    parser.add_argument("--python", default=None, help="python on the compute nodes (default: this one)")
    parser.add_argument(
        "--interface", default=None, help="network interface the scheduler and workers bind to, e.g. ib0"
    )
    parser.add_argument("--local-directory", default=None, help="node-local scratch for workers, e.g. $TMPDIR")
    parser.add_argument("--log-directory", default="runs/slurm-logs", help="where worker job logs go")
    parser.add_argument("--dashboard-port", type=int, default=8787)
    parser.add_argument("--address-file", default=None, help="also write the scheduler address here")
    parser.add_argument(
        "--config",
        default=None,
        help="pipeline config; {config} in the command becomes a copy with cluster.address set",
    )
    parser.add_argument(
        "--wait-workers", type=int, default=1, help="with a command: start it once this many workers joined"
    )
    parser.add_argument("--wait-timeout", type=float, default=3600, help="seconds to wait for --wait-workers")
    parser.add_argument("--dry-run", action="store_true", help="print the worker job script and exit")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND…: run it against the cluster, then stop")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    Path(args.log_directory).mkdir(parents=True, exist_ok=True)
    cluster = make_cluster(args)
    try:
        if args.dry_run:
            print(cluster.job_script())
            return 0
        address = cluster.scheduler_address
        print(f"scheduler address: {address}", flush=True)
        print(f"dashboard: {cluster.dashboard_link}", flush=True)
        if args.address_file:
            Path(args.address_file).write_text(address + "\n")
        config = config_with_address(args.config, address) if args.config else None
        if config:
            print(f"config with cluster.address: {config}", flush=True)
        cluster.scale(jobs=args.gpus)

        if not command:
            print(f"put it in the pipeline config:  cluster: {{address: {address}}}", flush=True)
            print("Ctrl-C (or scancel this job) stops the cluster and its worker jobs.", flush=True)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(60):
                    pass
            except KeyboardInterrupt:
                pass
            return 0

        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(args.wait_workers, timeout=args.wait_timeout)
        argv = [part.replace("{config}", config) if config else part for part in command]
        print("running:", shlex.join(argv), flush=True)
        return subprocess.call(argv)
    finally:
        cluster.close()
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
