"""Pipeline configuration: YAML in configs/, validated once into typed, frozen objects.

Every error names the file and the key (``configs/demo.yaml: encoder.poolng: unknown key``).
Relative paths are resolved against the directory the command runs in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoCorpusConfig(_Strict):
    """A synthetic corpus generated before ingest (see tasks/ingest/demo_corpus.py)."""

    root: Path
    seed: int = 0
    conditions: list[str] = Field(default_factory=lambda: ["studio", "phone", "far"], min_length=1)
    utterances_per_split: dict[str, int] = Field(default_factory=lambda: {"train": 60, "dev": 30, "eval": 60})
    sample_rate: int = 16000


class DatasetConfig(_Strict):
    name: str
    adapter: str
    root: Path
    options: dict[str, Any] = Field(default_factory=dict)


class EncoderConfig(_Strict):
    id: str = Field(description="random-weight preset name, Hugging Face hub id, or local checkpoint directory")
    revision: str | None = None
    layers: list[int] = Field(default_factory=lambda: [-1], min_length=1)
    pooling: Literal["mean", "mean+std"] = "mean"
    crop_seconds: float | None = Field(default=None, gt=0)
    batch_seconds: float = Field(default=64.0, gt=0, description="audio seconds per encoder batch")
    shard_seconds: float = Field(default=600.0, gt=0, description="audio seconds per store shard / Dask task")
    storage_dtype: Literal["float32", "float16"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ClusterConfig(_Strict):
    address: str | None = Field(default=None, description="existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    memory_limit: str = "6GiB"


class DetectorConfig(_Strict):
    name: str
    kind: str = Field(description="a key of tasks/train/detectors.py DETECTOR_CLASSES, e.g. logreg or dkl_gp")
    params: dict[str, Any] = Field(default_factory=dict, description="the detector class's __init__ parameters")

    @field_validator("params")
    @classmethod
    def _params_of_kind(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Imported here, not at the top: the registry pulls in torch and the detector modules,
        # and tasks/train/task.py imports this module — a cycle at import time.
        from tasks.train.detectors import check_params

        if "kind" not in info.data:  # kind itself failed validation; that error is reported
            return params
        # The converted values (e.g. a tuple where the YAML has a list) are what the detector gets.
        return check_params(info.data["kind"], params)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from tasks.train.detectors import detector_class

        detector_class(kind)
        return kind


class TrainConfig(_Strict):
    datasets: list[str] = Field(min_length=1)
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1)
    dev_splits: list[str] = Field(default_factory=lambda: ["dev"])
    layer: int = -1
    detectors: list[DetectorConfig] = Field(min_length=1)


class EvaluateConfig(_Strict):
    splits: list[str] = Field(default_factory=lambda: ["eval"], min_length=1)
    datasets: list[str] | None = Field(default=None, description="default: every configured dataset")
    n_boot: int = Field(default=1000, ge=10, description="bootstrap resamples for the 95 % confidence intervals")
    target_error: float = Field(default=0.05, gt=0, lt=0.5, description="error target of the selective-prediction coverage")


class ScheduleConfig(_Strict):
    """When the deployments of `addgp serve` run (cron, in ``timezone``)."""

    nightly_cron: str = "0 2 * * *"
    benchmark_cron: str = "0 4 * * 0"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/London)") from None
        return value

    @field_validator("nightly_cron", "benchmark_cron")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression (minute hour day month weekday)")
        return value


class NightlyConfig(_Strict):
    """The nightly loop: absorb new inbox batches, challenge the champion, promote if better."""

    inbox: str = Field(description="name of the dataset (adapter: inbox) that receives new fakes")
    detector: str = Field(description="which train.detectors entry is the champion/challenger")
    strategy: Literal["retrain", "adapt"] = "retrain"
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1, description="share of new rows kept to test on")
    replay_rows: int = Field(default=2000, ge=1, description="old training rows replayed when adapting")
    n_boot: int = Field(default=200, ge=10, description="bootstrap resamples for the promotion CI")
    wait_for_lock_s: float = Field(default=0.0, ge=0, description="how long a second nightly waits; 0 = exit at once")


class PipelineConfig(_Strict):
    name: str
    workdir: Path
    demo_corpus: DemoCorpusConfig | None = None
    datasets: list[DatasetConfig] = Field(min_length=1)
    encoder: EncoderConfig
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    train: TrainConfig
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    nightly: NightlyConfig | None = None
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    benchmark_config: Path | None = Field(default=None, description="config the weekly benchmark deployment runs")

    @field_validator("datasets")
    @classmethod
    def _unique_names(cls, datasets: list[DatasetConfig]) -> list[DatasetConfig]:
        names = [d.name for d in datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset name(s) {repeated} appear more than once")
        return datasets

    @model_validator(mode="after")
    def _references_resolve(self) -> "PipelineConfig":
        names = {d.name for d in self.datasets}
        for key, listed in (("train.datasets", self.train.datasets), ("evaluate.datasets", self.evaluate.datasets or [])):
            unknown = [n for n in listed if n not in names]
            if unknown:
                raise ValueError(f"{key} names {unknown}, which are not in datasets ({sorted(names)})")
        if self.train.layer not in self.encoder.layers:
            raise ValueError(f"train.layer {self.train.layer} is not among encoder.layers {self.encoder.layers}")
        detector_names = [d.name for d in self.train.detectors]
        if len(set(detector_names)) != len(detector_names):
            raise ValueError(f"train.detectors repeat a name: {detector_names}")
        if self.nightly is not None:
            if self.nightly.inbox not in names:
                raise ValueError(f"nightly.inbox names {self.nightly.inbox!r}, which is not in datasets ({sorted(names)})")
            if self.dataset(self.nightly.inbox).adapter != "inbox":
                raise ValueError(f"nightly.inbox: dataset {self.nightly.inbox!r} must use adapter 'inbox'")
            if self.nightly.detector not in detector_names:
                raise ValueError(f"nightly.detector names {self.nightly.detector!r}, not one of train.detectors {detector_names}")
        return self

    @property
    def eval_datasets(self) -> list[str]:
        return self.evaluate.datasets or [d.name for d in self.datasets]

    def dataset(self, name: str) -> DatasetConfig:
        return next(d for d in self.datasets if d.name == name)


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{path}: {key}: unknown key")
        elif item["type"] == "missing":
            lines.append(f"{path}: {key}: required key is missing")
        elif item["type"] == "value_error":  # a validator's own message, without pydantic's "Value error, " prefix
            lines.append(f"{path}: {key}: {item['ctx']['error']}")
        else:
            lines.append(f"{path}: {key}: {item['msg']}")
    return "\n".join(lines)


def _check_paths_exist(config: PipelineConfig, path: Path) -> None:
    """Dataset roots must exist, unless the demo corpus generator will create them."""
    generated = config.demo_corpus.root.resolve() if config.demo_corpus else None
    problems = []
    for index, dataset in enumerate(config.datasets):
        root = dataset.root.resolve()
        if generated is not None and (root == generated or generated in root.parents):
            continue
        if not root.exists():
            problems.append(f"{path}: datasets.{index}.root: path does not exist: {root}")
    if problems:
        raise ConfigError("\n".join(problems))


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Make relative paths absolute against ``base`` so later stages never depend on the cwd."""

    def absolute(value: str | None) -> str | None:
        if value is None or "://" in str(value):
            return value
        p = Path(os.path.expanduser(str(value)))
        return str(p if p.is_absolute() else base / p)

    raw = dict(raw)
    for key in ("workdir", "benchmark_config"):
        if isinstance(raw.get(key), str):
            raw[key] = absolute(raw[key])
    if isinstance(raw.get("demo_corpus"), dict) and isinstance(raw["demo_corpus"].get("root"), str):
        raw["demo_corpus"] = {**raw["demo_corpus"], "root": absolute(raw["demo_corpus"]["root"])}
    if isinstance(raw.get("datasets"), list):
        raw["datasets"] = [
            {**d, "root": absolute(d["root"])} if isinstance(d, dict) and isinstance(d.get("root"), str) else d
            for d in raw["datasets"]
        ]
    return raw


def load_config(path: str | os.PathLike, *, check_paths: bool = True) -> PipelineConfig:
    """Read and validate a pipeline config; raises ConfigError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(raw).__name__}")
    try:
        config = PipelineConfig.model_validate(_resolve_paths(raw, Path.cwd()))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    if check_paths:
        _check_paths_exist(config, path)
    return config
