"""Registry names of ARCHITECTURE.md → ingest adapters.

Each adapter is ``ingest(root, dataset=NAME, *, workers=..., progress=..., **options) -> IngestResult``.
"""

from __future__ import annotations

import os
from typing import Callable

from addgp.tasks.ingest import asvspoof2019
from addgp.tasks.ingest.common import IngestResult

Adapter = Callable[..., IngestResult]

ADAPTERS: dict[str, Adapter] = {
    "asvspoof2019_la": asvspoof2019.ingest,
}


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown dataset adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def ingest_dataset(adapter: str, root: str | os.PathLike, dataset: str | None = None, **options) -> IngestResult:
    """Run the adapter registered as ``adapter`` on ROOT; ``dataset`` names the rows (default: the adapter name)."""
    return get_adapter(adapter)(root, dataset=dataset or adapter, **options)
