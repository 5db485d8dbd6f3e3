"""What every step of a night shares (the context) and what a night ends with (the result).

One ``NightContext`` per run, made from the config before the lock is taken: the workspace,
the nightly options, the champion detector, where its state, reports and inbox live. Steps
take it instead of a dozen positional arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from addgp.config import ConfigError, DetectorConfig, NightlyConfig, PipelineConfig
from addgp.nightly import ChampionRecord
from storage.workspace import Workspace
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, spec_from_config


@dataclass(frozen=True)
class NightContext:
    config: PipelineConfig
    nightly: NightlyConfig
    workspace: Workspace
    detector: DetectorConfig  # the champion detector (nightly.detector)
    inbox_root: str  # the drop folder
    inbox_created: bool  # it was missing and nightly.create_inbox creates it tonight
    warnings: list[str]  # for every report of the night (the random-weight encoder banner)

    @classmethod
    def of(cls, config: PipelineConfig, config_path: str) -> NightContext:
        """The context of ``config``'s nightly loop; ConfigError when it has no ``nightly:`` section."""
        if config.nightly is None:
            raise ConfigError(f"{config_path}: the nightly flow needs a `nightly:` section (inbox, detector, strategy)")
        nightly = config.nightly
        inbox_root = str(next(d.root for d in config.datasets if d.name == nightly.inbox))
        return cls(
            config=config,
            nightly=nightly,
            workspace=Workspace.at(config.workdir),
            detector=next(d for d in config.train.detectors if d.name == nightly.detector),
            inbox_root=inbox_root,
            inbox_created=nightly.create_inbox and "://" not in inbox_root and not Path(inbox_root).exists(),
            warnings=[RANDOM_WEIGHT_WARNING] if spec_from_config(config.encoder).random_weights else [],
        )

    @property
    def name(self) -> str:
        """The champion detector's name: its state files, reports folder and ledger consumer."""
        return self.detector.name

    @property
    def state(self) -> str:
        return self.workspace.state

    @property
    def reports_root(self) -> str:
        """Each champion detector has its own reports folder (and its own acknowledged batches)."""
        return f"{self.workspace.reports}/nightly/{self.name}"

    @property
    def inbox_manifest(self) -> str:
        return self.workspace.manifest(self.nightly.inbox)

    @property
    def eval_manifests(self) -> list[str]:
        return [self.workspace.manifest(d) for d in self.config.eval_datasets]


@dataclass(frozen=True)
class NightResult:
    """What a night did: its report folder, whether the challenger was promoted, whether the
    inbox held nothing new, the champion after tonight (None before the first), whether it
    resumed a night killed part-way; on a night with new batches, the gate's outcome
    (promoted / kept / not enough evidence yet) and whether tonight's inbox drifted."""

    report: str
    promoted: bool
    nothing_new: bool
    champion: ChampionRecord | None
    resumed: bool
    outcome: str | None = None
    drifted: bool | None = None
