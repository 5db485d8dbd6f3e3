"""The names a person reads in the Prefect UI: ``stage[what]`` for task runs
(``ingest[asvspoof2019_la]``, ``train[lr]``, ``evaluate[lr×demo_eval]``) and
``<config>/<run id>`` for flow runs, the run id being the report folder's name, and
``addgp-<config>-<what>`` for artifacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

MAX_LISTED = 4  # more names than this are shortened to the first ones and a count


def listing(names: Iterable[object]) -> str:
    """``a,b,c``; a long list keeps its first names and says how many more (``a,b,c,+5``)."""
    shown = [str(n) for n in names]
    if len(shown) > MAX_LISTED:
        shown = shown[: MAX_LISTED - 1] + [f"+{len(shown) - MAX_LISTED + 1}"]
    return ",".join(shown)


def task_label(stage: str, *parts: str | Iterable[object]) -> str:
    """``stage[part×part]``; a part that is a list of names is listed with :func:`listing`."""
    shown = [p if isinstance(p, str) else listing(p) for p in parts]
    return f"{stage}[{'×'.join(s for s in shown if s)}]"


def manifest_datasets(manifest_paths: Iterable[str]) -> list[str]:
    """The dataset names of workspace manifests (``manifests/<dataset>.parquet``, local or ``s3://``)."""
    return [PurePosixPath(str(p).replace("\\", "/")).stem for p in manifest_paths]


def flow_label(config_name: str, run_id: str) -> str:
    """The flow run's name: the config and the run id of the report it publishes."""
    return f"{config_name}/{run_id}"


def artifact_key(name: str, what: str) -> str:
    """Stable artifact keys (lowercase letters, digits, dashes), so the Prefect UI shows history per key."""
    slug = "".join(ch if ch.isalnum() and ch.isascii() else "-" for ch in name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"addgp-{slug or 'run'}-{what}"
