"""What the nightly loop's steps hand each other and keep between runs: the champion in
service and its nightly measurements, tonight's challenger, the night under way with the inbox
batches it absorbs and the evidence pool it tests on, the drop folder read and the promotion
gate's decision and record.

Plain frozen values, shared by the steps (``tasks/nightly/``), the nightly report (an earlier
stage than the steps, so the values it reads live here) and the state files that persist
them (``storage/night_state.py``, ``storage/nightly_records.py`` and
``storage/inbox_ledger.py`` read and write them; JSON layouts there and in
``storage/champions.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class StepCost:
    """What building a model of the champion chain cost: wall seconds (None: not measured, as for
    a baseline ``addgp nightly`` may reuse), rows it learnt in all, of which inbox rows."""

    wall_s: float | None
    rows_learnt: int
    inbox_rows: int


@dataclass(frozen=True)
class ChampionRecord:
    """A model in service (or that was): its version folder, the night that made it, the EERs it
    was promoted with (per eval corpus; None until the first decision measures the baseline),
    when it was promoted and on which batches. Hand-written records may name only the model."""

    model_path: str
    version: int | None = None
    run_id: str | None = None
    eer: dict[str, float] | None = None
    promoted_at: str | None = None  # the run id of the night that promoted it
    promoted_on: str | None = None  # ISO time
    batches: list[str] | None = None  # the inbox batches the promoting night absorbed
    # the step that made it (fit / update / retrain / consolidate: tasks/nightly/consolidation.py) and its cost;
    # None on records written before steps were recorded
    step: str | None = None
    cost: StepCost | None = None


@dataclass(frozen=True)
class ChallengerRecord:
    """Tonight's challenger, registered as the next version of the champion's name."""

    name: str
    kind: str
    path: str
    version: int
    step: str | None = None  # None on a night record written before steps were recorded
    cost: StepCost | None = None


@dataclass(frozen=True)
class ChallengerSummary:
    """How tonight's challenger was made, as the nightly report states it: the configured
    strategy, the rows it learnt from (with those of undecided nights) and held out, its model
    folder, the step that built it and that step's cost (None on a night record written before
    steps were recorded)."""

    strategy: str
    new_rows: int
    held_out_rows: int
    model: str
    step: str | None
    cost: StepCost | None


@dataclass(frozen=True)
class ChampionEvaluation:
    """One night's measurement of the model in service: when, which version (None on a
    hand-written record), its EER per eval corpus and their average (None: no corpus)."""

    run_id: str
    evaluated_at: str
    version: int | None
    model_path: str
    eer: dict[str, float]
    average_eer: float | None


@dataclass(frozen=True)
class InboxBatch:
    """A batch of the inbox ledger (``storage/inbox_ledger.py``): its id, the delivery folder it came
    from (None: files at the drop folder's top), when it was first seen (ISO time), its files,
    bona fide and spoof counts and hours of audio. Its manifest rows carry its ``batch_id``."""

    batch_id: str
    folder: str | None
    created_at: str
    n_files: int
    n_bonafide: int
    n_spoof: int
    hours: float


@dataclass(frozen=True)
class EvidencePool:
    """The held-out evidence of undecided nights, kept for the champion it was gathered against
    (``tasks/nightly/pool.py``): the nights (run ids) and the keys ``[dataset, utt_id]`` of their
    held-out and learn rows (the rows stay in the inbox manifest and the embedding store)."""

    champion: str | None
    nights: list[str] = field(default_factory=list)
    held_out: list[list[str]] = field(default_factory=list)
    learn: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Night:
    """One night: its run id, the inbox batches it absorbs (none: a quiet night), the champion it
    started from and each step done, so a night killed part-way is resumed, not redone
    (``tasks/nightly/night.py``)."""

    run_id: str
    batch_ids: list[str] = field(default_factory=list)
    batches: list[InboxBatch] = field(default_factory=list)
    started_at: str | None = None
    champion: ChampionRecord | None = None
    challenger: ChallengerRecord | None = None
    # the evidence pool read for tonight, so a resumed night tests on the same rows
    evidence_pool: EvidencePool | None = None
    resumed: int = 0  # how often this night was resumed after a kill

    @property
    def nothing_new(self) -> bool:
        return not self.batches


@dataclass(frozen=True)
class InboxFolder:
    """The drop folder as resolved, how many files (audio and sidecars; hidden files left out)
    it holds now, and whether it was created tonight."""

    folder: str
    n_files: int
    created: bool


@dataclass(frozen=True)
class PromotionDecision:
    """The point rule's verdict (``tasks/nightly/promotion.py``) and the figures it compared."""

    promote: bool
    reason: str
    champion_average_eer: float | None
    challenger_average_eer: float
    average_ci_half_width: float | None
    champion_new_fakes_eer: float | None
    challenger_new_fakes_eer: float | None


@dataclass(frozen=True)
class GatedDecision(PromotionDecision):
    """The night's decision: the point rule's figures, the verdict after the gate, its reason,
    the outcome (promoted / kept / not enough evidence yet), and ``decided`` (False: not enough
    evidence yet, the rows are pooled for the next night)."""

    outcome: str
    decided: bool

    def as_dict(self) -> dict:
        """The decision as the nightly report's metrics.json holds it."""
        return asdict(self)


@dataclass(frozen=True)
class GateRecord:
    """What the gate saw and said: its rule in words, the held-out counts and their minimums, the
    CI of champion − challenger EER on the new fakes, the nights pooled, the outcome and why."""

    rule: str
    n_spoof: int
    n_bonafide: int
    min_spoof: int
    min_bonafide: int
    ci_level: float | None
    difference_ci_low: float | None
    difference_ci_high: float | None
    nights_pooled: int
    max_nights: int
    outcome: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        """The record as the nightly report's metrics.json holds it."""
        return asdict(self)
