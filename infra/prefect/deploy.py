"""Register the scheduled addgp deployments of CONFIG on a Prefect server, on a work pool.

`addgp serve CONFIG` runs these deployments from one long-lived process (one machine). This
script is the production variant: the deployments live on the Prefect server and whichever
worker polls POOL runs them — a process worker (infra/compose.yaml), or a Kubernetes worker
whose job pods use the addgp image (infra/kubernetes/).

    export PREFECT_API_URL=http://prefect-server:4200/api
    prefect work-pool create addgp --type process        # or --type kubernetes
    python infra/prefect/deploy.py /app/infra/configs/cluster.yaml --pool addgp [--image REGISTRY/addgp:cuda]

The deployments are the ones `addgp serve` builds (flows/deployments.py): `<name>-nightly`
(only when the config has a `nightly:` section) at `schedule.nightly_cron` and
`<name>-benchmark` at `schedule.benchmark_cron`, both in `schedule.timezone`, each with a
concurrency limit of one (a run that comes due while the previous one still runs waits).

Flows are referenced by module path (`flows.nightly.nightly_flow`), so the machine or
pod that runs them needs addgp installed (the addgp image) but no source checkout and no code
upload. CONFIG is stored in the deployment as an absolute path: it must be the path the
*worker* sees (in the images, /app/infra/configs/… or a mounted /configs/…).

A process worker starts each flow run in a fresh temporary directory unless the deployment
sets `working_dir`; relative paths in a config (`workdir: runs/demo`) would then land there
and vanish. For process pools this script therefore sets `working_dir` to --working-dir
(default: the directory it is run from, as `addgp serve` would). Configs with absolute paths
(infra/configs/*.yaml) do not depend on it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prefect import deploy
from prefect.client.orchestration import get_client

from flows.deployments import build_deployments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="pipeline config, as the worker sees it")
    parser.add_argument("--pool", default="addgp", help="work pool name (create it first: prefect work-pool create)")
    parser.add_argument("--image", default=None, help="image for docker/kubernetes pools (already built and pushed)")
    parser.add_argument(
        "--working-dir", default=None, help="process pools: where flow runs start (default: the current directory)"
    )
    args = parser.parse_args()
    with get_client(sync_client=True) as client:
        pool_type = client.read_work_pool(args.pool).type
    job_variables = (
        {"working_dir": str(Path(args.working_dir or os.getcwd()).resolve())} if pool_type == "process" else {}
    )
    deployments = build_deployments(args.config, job_variables=job_variables, check_paths=False)
    if args.image:
        ids = deploy(*deployments, work_pool_name=args.pool, image=args.image, build=False, push=False)
    else:
        ids = deploy(*deployments, work_pool_name=args.pool, ignore_warnings=True)
    for deployment, deployment_id in zip(deployments, ids):
        print(f"{deployment.flow_name}/{deployment.name}\t{deployment_id}")


if __name__ == "__main__":
    main()
