"""Pipeline configuration: YAML in configs/, validated once into typed, frozen objects.

Every error names the file and the key (``configs/demo.yaml: encoder.poolng: unknown key``).
Relative paths are resolved against the directory the command runs in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from addgp.contracts import looks_like_path


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class UnavailableError(ConfigError):
    """The config names an encoder (local checkpoint folder) that is not on this machine (CLI exit code 3)."""


def path_safe_name(value: str) -> str:
    """A name that becomes a file or folder name (dataset → manifests/<name>.parquet, detector →
    models/<name>/, config name → report and deployment names): one path component, never
    ``..`` or hidden, so nothing is ever written outside the workspace. Any other character
    (spaces, brackets, non-ASCII) is fine."""
    problems = []
    if not value or not value.strip():
        problems.append("is empty")
    if "/" in value or "\\" in value:
        problems.append("contains '/' or '\\' (it names a file or folder)")
    if value.startswith("."):
        problems.append("starts with '.' (hidden or a parent folder)")
    if any(ord(ch) < 32 for ch in value):
        problems.append("contains a control character")
    if problems:
        raise ValueError(f"name {value!r} {' and '.join(problems)}; use one plain file name such as my_corpus")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoCorpusConfig(_Strict):
    """A synthetic corpus generated before ingest (see tasks/demo_corpus/)."""

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

    @field_validator("name")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        return path_safe_name(value)


class EncoderConfig(_Strict):
    id: str = Field(description="random-weight preset name, Hugging Face hub id, or local checkpoint directory")
    revision: str | None = None
    layers: list[int] = Field(default_factory=lambda: [-1], min_length=1)
    pooling: Literal["mean", "mean+std"] = "mean"
    crop_seconds: float | None = Field(default=None, gt=0)
    variant: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="fp32, or int8: dynamically quantised linear layers (CPU only; a separate encoder identity)",
    )
    batch_seconds: float | None = Field(
        default=None,
        gt=0,
        description="padded audio seconds per encoder batch; default: measured per device (CPU 16, CUDA 64)",
    )
    shard_seconds: float = Field(default=600.0, gt=0, description="audio seconds per store shard / Dask task")
    storage_dtype: Literal["float32", "float16"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _int8_on_cpu(self) -> EncoderConfig:
        # Dynamic int8 has no GPU kernels ("auto" resolves to the CPU for it).
        if self.variant == "int8" and self.device == "cuda":
            raise ValueError(
                "variant int8 runs on CPU only: set encoder.device to cpu or auto, or use variant fp32 on the GPU"
            )
        return self


class EmbedConfig(_Strict):
    """Limits of the embed stage that protect a run from hostile audio (not encoder settings)."""

    max_seconds: float | None = Field(
        default=1800.0,
        gt=0,
        description="longest audio a header may declare for a file embedded whole; longer files are rejected "
        "(a crop bounds decoding instead); null = no limit",
    )
    max_reject_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="largest share of a dataset's rows that may end up not embedded (rejected) before the run fails "
        "(exit code 7) after writing everything it could; 1 = never fail on rejects",
    )


class ClusterConfig(_Strict):
    address: str | None = Field(default=None, description="existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    memory_limit: str = Field(default="6GiB", description="per worker: bytes with a unit (6GiB, 4000MB) or auto")

    @field_validator("memory_limit")
    @classmethod
    def _bytes_or_auto(cls, value: str) -> str:
        from dask.utils import parse_bytes

        if value == "auto":
            return value
        try:
            parse_bytes(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"{value!r} is not an amount of memory: use a number with a unit (6GiB, 4000MB) or auto"
            ) from None
        return value


class DetectorConfig(_Strict):
    name: str
    # Checked against tasks/train/kinds.py DETECTOR_KINDS (kind; params' names, types and limits)
    # by flows/config.py when the config loads: the core imports no stage.
    kind: str = Field(description="a key of tasks/train/kinds.py DETECTOR_KINDS, e.g. logreg or dkl_gp")
    params: dict[str, Any] = Field(default_factory=dict, description="the detector class's __init__ parameters")


def _unique_conditions(names: list[str]) -> list[str]:
    # Whether each name is a registered condition is checked against tasks/degrade/registry.py
    # by flows/config.py: the core imports no stage.
    if len(set(names)) != len(names):
        raise ValueError(f"conditions repeat a name: {names}")
    return names


class AugmentConfig(_Strict):
    """Quality-agnostic training: degraded copies of training utterances mixed into the training set."""

    conditions: list[str] = Field(min_length=1, description="conditions a training copy is drawn from (uniformly)")
    fraction: float = Field(
        default=0.5, gt=0, le=1, description="share of training utterances that get one degraded copy"
    )

    @field_validator("conditions")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        return _unique_conditions(names)


class TrainConfig(_Strict):
    datasets: list[str] = Field(min_length=1)
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1)
    dev_splits: list[str] = Field(default_factory=lambda: ["dev"])
    layer: int = -1
    detectors: list[DetectorConfig] = Field(min_length=1)
    augment: AugmentConfig | None = None


class EvaluateConfig(_Strict):
    splits: list[str] = Field(default_factory=lambda: ["eval"], min_length=1)
    datasets: list[str] | None = Field(default=None, description="default: every configured dataset")
    n_boot: int = Field(default=1000, ge=10, description="bootstrap resamples for the 95 % confidence intervals")
    target_error: float = Field(
        default=0.05, gt=0, lt=0.5, description="error target of the selective-prediction coverage"
    )
    conditions: list[str] = Field(
        default_factory=list, description="degradation conditions every eval set is also scored under (clean always is)"
    )
    training_overlap: Literal["exclude", "mark"] = Field(
        default="exclude",
        description="eval sets a detector trained on (its model card's sets or content digests): left out of its "
        "headline average (exclude, as the Speech Anti-Spoofing Arena) or kept and marked (mark)",
    )

    @field_validator("conditions")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        return _unique_conditions(names)


class DegradeConfig(_Strict):
    """How the degrade stage makes its copies (tasks/degrade, docs/degradation.md)."""

    seed: int = 0
    sample_rate: int = Field(default=16000, gt=0, description="working rate of the degraded copies")
    noise_dir: Path | None = Field(
        default=None, description="folder of noise recordings for the noisefolder_* conditions"
    )
    threads: int = Field(
        default=2, ge=1, description="files degraded at once in-process; on a Dask cluster each task takes 64"
    )


class DataChecksConfig(_Strict):
    """What the checks on the manifests (tasks/ingest/checks.py) do before training."""

    train_eval_overlap: Literal["warning", "error"] = Field(
        default="warning",
        description="the same audio (sha256) in a training split and an eval split: report it (warning) or stop the run (error)",
    )
    near_duplicate_cosine: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="after embedding, also report eval clips whose embedding has a training clip at this cosine "
        "similarity or above (near-duplicates: re-encoded, trimmed copies); unset = not checked",
    )


NotifyEvent = Literal["regressions", "promotion", "drift"]


class NotifyConfig(_Strict):
    """Who hears about a finished run that needs a person: a webhook that receives a small JSON POST."""

    webhook_url: str | None = Field(default=None, description="http(s) URL that receives the JSON POST")
    on: list[NotifyEvent] = Field(
        default_factory=lambda: list[NotifyEvent](["regressions"]),
        description="when to POST: a run report with regressions, a nightly that promotes its challenger, "
        "a nightly whose inbox drifted from the champion's training data",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="how long one POST may take before it is given up")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host, e.g. https://hooks.example.org/addgp")
        return value


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


class GateConfig(_Strict):
    """When the held-out rows may decide a promotion (docs/operations.md, "The promotion gate").

    Below the counts, or with a CI of champion − challenger on the new fakes that straddles 0,
    the night ends "not enough evidence yet": the champion is kept and the night's rows are
    pooled with the next nights' until the gate can decide.
    """

    # 50 spoof rows put the new-fakes EER on a grid of 2 points; fewer cannot resolve the
    # differences a promotion is about (a 3-spoof slice moved in steps of 33 points).
    min_spoof: int = Field(default=50, ge=0, description="held-out spoof rows needed before the gate decides")
    min_bonafide: int = Field(
        default=50,
        ge=0,
        description="bona fide rows of the new-fakes slice needed; with fewer held out, the eval corpora's join them",
    )
    ci_level: float | None = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="the paired bootstrap CI of champion − challenger EER on the new fakes must exclude 0 "
        "at this level; null = the counts alone gate",
    )
    max_nights: int = Field(
        default=14,
        ge=1,
        description="nights of pooled evidence after which a CI that still straddles 0 keeps the champion "
        "(no difference shown) and the pool starts over",
    )

    @property
    def enabled(self) -> bool:
        return self.min_spoof > 0 or self.min_bonafide > 0 or self.ci_level is not None


class DriftConfig(_Strict):
    """Tonight's inbox against the champion's training data, before any label is used
    (tasks/nightly/drift.py; docs/operations.md, "Drift")."""

    max_rows: int = Field(
        default=500, ge=20, description="rows drawn from each side for the MMD test (its cost grows with the square)"
    )
    n_permutations: int = Field(default=200, ge=20, description="permutations of the MMD threshold")
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="false-alarm rate of each drift test on a night without drift (MMD permutation, variance excess)",
    )
    history_nights: int = Field(default=90, ge=1, description="nights of drift scores kept for the report's trend")


class NightlyConfig(_Strict):
    """The nightly loop: absorb new inbox batches, challenge the champion, promote if better."""

    inbox: str = Field(description="name of the dataset (adapter: inbox) that receives new fakes")
    detector: str = Field(description="which train.detectors entry is the champion/challenger")
    # `adapt` = the champion's own update (the GP's streaming update of q(u): flat cost; LR: a
    # replay refit); on the season benchmark it learns new families as well as `retrain` at ~1 %
    # of the cost, and forgets more, which a periodic `retrain` consolidates (docs/detectors.md).
    strategy: Literal["retrain", "adapt"] = "adapt"
    # Scheduled consolidation (tasks/nightly/consolidation.py): every Nth night since the champion
    # chain's last full fit, the challenger is a fresh fit on the training data plus every inbox
    # row learnt so far instead of an update; the nights between update. None = update every night.
    consolidate_every_nights: int | None = Field(
        default=None,
        ge=1,
        description="with strategy adapt: make every Nth night since the last full fit a full refit on the "
        "training data plus all inbox rows learnt so far (1 = every night); null = never",
    )
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1, description="share of new rows kept to test on")
    replay_rows: int = Field(default=2000, ge=1, description="old training rows replayed when adapting")
    n_boot: int = Field(default=200, ge=10, description="bootstrap resamples for the promotion CI")
    wait_for_lock_s: float = Field(default=0.0, ge=0, description="how long a second nightly waits; 0 = exit at once")
    # A drop folder that does not exist is an error (a typo or an unmounted share would read as
    # "nothing new" forever) unless this says to create it, as the demo's first run does.
    create_inbox: bool = Field(default=False, description="create the inbox drop folder when it does not exist")
    gate: GateConfig = Field(default_factory=GateConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @model_validator(mode="after")
    def _consolidation_needs_updates(self) -> NightlyConfig:
        if self.consolidate_every_nights is not None and self.strategy != "adapt":
            raise ValueError(
                f"consolidate_every_nights: {self.consolidate_every_nights} schedules full refits between "
                f"update nights, but strategy is {self.strategy!r}, which refits every night; "
                "set strategy: adapt, or remove consolidate_every_nights"
            )
        return self


class PipelineConfig(_Strict):
    name: str
    workdir: Path
    demo_corpus: DemoCorpusConfig | None = None
    datasets: list[DatasetConfig] = Field(min_length=1)
    encoder: EncoderConfig
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    train: TrainConfig
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    degrade: DegradeConfig = Field(default_factory=DegradeConfig)
    nightly: NightlyConfig | None = None
    data_checks: DataChecksConfig = Field(default_factory=DataChecksConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    benchmark_config: Path | None = Field(default=None, description="config the weekly benchmark deployment runs")

    @field_validator("name")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        return path_safe_name(value)

    @field_validator("datasets")
    @classmethod
    def _unique_names(cls, datasets: list[DatasetConfig]) -> list[DatasetConfig]:
        names = [d.name for d in datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset name(s) {repeated} appear more than once")
        return datasets

    @model_validator(mode="after")
    def _references_resolve(self) -> PipelineConfig:
        names = {d.name for d in self.datasets}
        for key, listed in (
            ("train.datasets", self.train.datasets),
            ("evaluate.datasets", self.evaluate.datasets or []),
        ):
            unknown = [n for n in listed if n not in names]
            if unknown:
                raise ValueError(f"{key} names {unknown}, which are not in datasets ({sorted(names)})")
        if self.train.layer not in self.encoder.layers:
            raise ValueError(f"train.layer {self.train.layer} is not among encoder.layers {self.encoder.layers}")
        uses_folder = [c for c in self.conditions if "noisefolder_" in c]
        if uses_folder and self.degrade.noise_dir is None:
            raise ValueError(
                f"condition(s) {uses_folder} mix in a noise folder; set degrade.noise_dir to a folder of audio files"
            )
        detector_names = [d.name for d in self.train.detectors]
        for index, name in enumerate(detector_names):
            try:
                path_safe_name(name)
            except ValueError as exc:
                raise ValueError(f"train.detectors.{index}.name: {exc}") from None
        if len(set(detector_names)) != len(detector_names):
            raise ValueError(f"train.detectors repeat a name: {detector_names}")
        if self.nightly is not None:
            if self.nightly.inbox not in names:
                raise ValueError(
                    f"nightly.inbox names {self.nightly.inbox!r}, which is not in datasets ({sorted(names)})"
                )
            if self.dataset(self.nightly.inbox).adapter != "inbox":
                raise ValueError(f"nightly.inbox: dataset {self.nightly.inbox!r} must use adapter 'inbox'")
            if self.nightly.detector not in detector_names:
                raise ValueError(
                    f"nightly.detector names {self.nightly.detector!r}, not one of train.detectors {detector_names}"
                )
        return self

    @property
    def conditions(self) -> list[str]:
        """Every degradation condition the run needs: scored at evaluation or mixed into training."""
        augment = self.train.augment.conditions if self.train.augment else []
        return list(dict.fromkeys([*self.evaluate.conditions, *augment]))

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
    """Dataset roots must exist, unless the demo corpus generator will create them, or they are
    an inbox drop folder (the inbox ingest creates a missing one, empty: nothing new yet)."""
    generated = config.demo_corpus.root.resolve() if config.demo_corpus else None
    problems = []
    for index, dataset in enumerate(config.datasets):
        root = dataset.root.resolve()
        if generated is not None and (root == generated or generated in root.parents):
            continue
        if dataset.adapter == "inbox":
            continue
        if not root.exists():
            problems.append(f"{path}: datasets.{index}.root: path does not exist: {root}")
    if config.degrade.noise_dir is not None and not config.degrade.noise_dir.is_dir():
        problems.append(f"{path}: degrade.noise_dir: not a folder: {config.degrade.noise_dir}")
    if problems:
        raise ConfigError("\n".join(problems))
    _check_local_encoder(config, path)


def _check_local_encoder(config: PipelineConfig, path: Path) -> None:
    """An ``encoder.id`` written as a path (``/…``, ``./…``, ``../…``, ``~…``, or an existing
    folder) must be a Hugging Face checkpoint folder on this machine; a hub id
    (``facebook/wav2vec2-xls-r-300m``) or a random preset is checked when the encoder loads."""
    encoder_id = config.encoder.id
    local = Path(os.path.expanduser(encoder_id))
    looks_local = looks_like_path(encoder_id) or local.is_dir()
    if not looks_local:
        return
    if not local.is_dir():
        raise UnavailableError(
            f"{path}: encoder.id: no checkpoint folder {local} on this machine. Copy the checkpoint there "
            "(`hf download facebook/wav2vec2-xls-r-300m --local-dir DIR` where there is network), "
            "or point encoder.id at the folder that holds it"
        )
    if not (local / "config.json").is_file():
        raise UnavailableError(
            f"{path}: encoder.id: {local} has no config.json; it should hold a Hugging Face checkpoint (config.json + model.safetensors)"
        )


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
    if isinstance(raw.get("degrade"), dict) and isinstance(raw["degrade"].get("noise_dir"), str):
        raw["degrade"] = {**raw["degrade"], "noise_dir": absolute(raw["degrade"]["noise_dir"])}
    if isinstance(raw.get("demo_corpus"), dict) and isinstance(raw["demo_corpus"].get("root"), str):
        raw["demo_corpus"] = {**raw["demo_corpus"], "root": absolute(raw["demo_corpus"]["root"])}
    if isinstance(raw.get("datasets"), list):
        raw["datasets"] = [
            {**d, "root": absolute(d["root"])} if isinstance(d, dict) and isinstance(d.get("root"), str) else d
            for d in raw["datasets"]
        ]
    return raw


def read_yaml_mapping(path: Path, kind: str, error: type[ValueError]) -> dict:
    """The YAML mapping at ``path``; ``error`` names the file when it is missing, not YAML or not a mapping."""
    if not path.is_file():
        raise error(f"{path}: {kind} file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level, found {type(raw).__name__}")
    return raw


def load_config(path: str | os.PathLike, *, check_paths: bool = True) -> PipelineConfig:
    """Read and validate a pipeline config; raises ConfigError naming the file and key."""
    path = Path(path)
    raw = read_yaml_mapping(path, "config", ConfigError)
    try:
        config = PipelineConfig.model_validate(_resolve_paths(raw, Path.cwd()))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    if check_paths:
        _check_paths_exist(config, path)
    return config
