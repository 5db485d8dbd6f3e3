"""Loading a pipeline config for a flow or a CLI verb: ``addgp.config.load_config`` plus the
checks that need the stages' registries (adapter names and options, detector kinds and their
parameters and their declared limits, degradation conditions),
so every config error stops the command at load, before a server, a cluster or an ingest
starts. They live here because the core (``addgp/``) imports no stage.
"""

from __future__ import annotations

import os

from addgp.config import ConfigError, PipelineConfig, load_config
from tasks.degrade.registry import CLEAN, known_names, unknown_parts
from tasks.ingest.registry import check_options
from tasks.train.kinds import DETECTOR_KINDS, detector_class, unknown_kind_message


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
    for index, detector in enumerate(config.train.detectors):
        where = f"{path}: train.detectors.{index}"
        if detector.kind not in DETECTOR_KINDS:
            problems.append(f"{where}.kind: {unknown_kind_message(detector.kind)}")
            continue
        # Imported only for a known kind of a config that parsed: a detector class pulls in
        # torch, which a config with a typo should not wait for.
        from tasks.train.detectors import check_params

        try:
            check_params(detector.kind, detector.params)  # names, types and the kind's param_limits
        except ValueError as exc:
            problems.append(f"{where}.params: {exc}")
        problems += _frame_detector_problems(where, config, detector.name, detector.kind)
    problems += _condition_problems(path, config)
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _frame_detector_problems(where: str, config: PipelineConfig, name: str, kind: str) -> list[str]:
    """A detector reading frames (tasks/train/base.py FRAMES_INPUT): a transformer layer, and not the
    nightly champion (the nightly loop adapts and retrains on pooled embeddings)."""
    from tasks.train.base import FRAMES_INPUT

    if detector_class(kind).input != FRAMES_INPUT:
        return []
    problems = []
    if config.train.layer == 0:
        problems.append(
            f"{where}.kind: {kind} fine-tunes the encoder layer train.layer, but train.layer is 0 (the CNN output); "
            "use a transformer layer, e.g. -1 for the last"
        )
    if config.nightly is not None and config.nightly.detector == name:
        problems.append(
            f"{where}.kind: nightly.detector {name!r} is a {kind}, but the nightly loop works on pooled embeddings; "
            "name a dkl_gp or logreg detector as the nightly champion"
        )
    return problems


def _condition_problems(path: str | os.PathLike, config: PipelineConfig) -> list[str]:
    """Every condition name a registered degradation, preset or ``+`` chain of them (tasks/degrade/registry.py)."""
    augment = config.train.augment.conditions if config.train.augment else []
    problems = []
    for key, names in (("evaluate.conditions", config.evaluate.conditions), ("train.augment.conditions", augment)):
        if CLEAN in names:
            problems.append(f"{path}: {key}: '{CLEAN}' (the audio as shipped) is always scored; list only degradations")
        unknown = [name for name in names if unknown_parts(name)]
        if unknown:
            problems.append(
                f"{path}: {key}: unknown condition(s) {unknown}; known conditions and presets: {', '.join(known_names())}"
            )
    return problems
