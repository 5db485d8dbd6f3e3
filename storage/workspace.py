"""Where a pipeline's own data lives under its ``workdir``: the data catalog of addgp.

::

    WORKDIR/
      manifests/<dataset>.parquet            the manifests (a glob manifests/*.parquet takes them all)
      manifests/_rejects/<dataset>.rejects.parquet   what ingest could not use, and why
                                             (storage.manifests.rejects_path_for / find_rejects)
      manifests/<dataset>@<condition>.parquet  derived manifests of degraded copies (tasks/degrade)
      degraded/                              the degraded-audio cache (storage/degraded.py)
      embeddings/                            the embedding store (storage/embeddings.py)
      models/<detector>/v<N>/                the model registry (storage/models.py)
      reports/<run-id>/                      one report folder per run (storage/reports.py)
      reports/LATEST                         the run id of the newest published report
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storage.paths import join


@dataclass(frozen=True)
class Workspace:
    root: str

    @classmethod
    def at(cls, root: str | os.PathLike) -> Workspace:
        return cls(str(root))

    def manifest(self, dataset: str) -> str:
        """``manifests/<dataset>.parquet``; a name that would leave that folder is refused."""
        if not dataset or "/" in dataset or "\\" in dataset or dataset.startswith("."):
            raise ValueError(f"dataset name {dataset!r} cannot name a manifest file (no '/', '\\' or leading '.')")
        return join(self.root, "manifests", f"{dataset}.parquet")

    @property
    def embeddings(self) -> str:
        return join(self.root, "embeddings")

    @property
    def degraded(self) -> str:
        """The content-keyed cache of degraded audio (storage/degraded.py)."""
        return join(self.root, "degraded")

    @property
    def models(self) -> str:
        return join(self.root, "models")

    @property
    def reports(self) -> str:
        return join(self.root, "reports")

    def report(self, run_id: str) -> str:
        return join(self.reports, run_id)

    @property
    def state(self) -> str:
        """Small bookkeeping files: the inbox batch ledger, champion records, the night under way, locks."""
        return join(self.root, "state")
