"""Loading a pipeline config for a flow or a CLI verb: ``addgp.config.load_config`` plus the
checks that need the stages' registries (adapter names and options), so every config error
stops the command at load, before a server, a cluster or an ingest starts.
"""

from __future__ import annotations

import os

from addgp.config import ConfigError, PipelineConfig, load_config
from tasks.ingest.registry import check_options


def load_pipeline_config(path: str | os.PathLike, *, check_paths: bool = True) -> PipelineConfig:
    """The validated config; ConfigError naming the file and key (UnavailableError for a missing encoder folder)."""
    config = load_config(path, check_paths=check_paths)
    problems = []
    for index, dataset in enumerate(config.datasets):
        try:
            check_options(dataset.adapter, dataset.options)
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, KeyError):  # str() of a KeyError is the repr of its message
                problems.append(f"{path}: datasets.{index}.adapter: {exc.args[0]}")
            else:
                problems.append(f"{path}: datasets.{index}.options: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return config
