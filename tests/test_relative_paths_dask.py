"""A corpus ingested from a relative ROOT, embedded on an external Dask cluster whose workers
run in another directory: every row must be embedded (issue 16, point 2).

The operator's case: `addgp ingest asvspoof2019_la corpus/demo_studio -o manifests/x.parquet`
and `addgp embed manifests/x.parquet --store store --scheduler tcp://…`, both from the
operator's directory, while `dask worker` processes were started elsewhere. A path or store
that only means something relative to the operator's directory rejects every row on the
workers and caches the rejects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from tasks.demo_corpus import generate_demo_corpus

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def addgp(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


def test_relative_root_manifest_embeds_every_row_on_external_workers(tmp_path, cli_cluster):
    operator = tmp_path / "operator"  # the workers' cwd is tmp_path: relative paths mean other files there
    operator.mkdir()
    generate_demo_corpus(
        operator / "corpus", conditions=("studio",), utterances_per_split={"train": 6, "dev": 2, "eval": 4}
    )

    ingested = addgp(operator, "ingest", "asvspoof2019_la", "corpus/demo_studio", "-o", "manifests/studio.parquet")
    assert ingested.returncode == 0, ingested.stderr
    manifest = pd.read_parquet(operator / "manifests" / "studio.parquet")
    assert all(os.path.isabs(p) for p in manifest["path"]), "ingest must store paths a worker anywhere can open"

    embedded = addgp(
        operator,
        *("embed", "manifests/studio.parquet", "--encoder", "tiny-random", "--store", "store"),
        *("--scheduler", cli_cluster["address"], "--shard-seconds", "4"),
    )
    assert embedded.returncode == 0, embedded.stderr
    summary = json.loads(embedded.stdout)
    print(summary)
    assert summary["rejects"] == 0, summary
    assert summary["utterances_embedded"] == len(manifest)
    # The store is the operator's, not one under the workers' directory.
    assert not (tmp_path / "store").exists()
    table = ds.dataset(str(operator / "store")).to_table(columns=["utt_id"]).to_pandas()
    assert sorted(table["utt_id"]) == sorted(manifest["utt_id"])
