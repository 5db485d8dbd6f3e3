"""What the drift tests before labels measure (``tasks/nightly/drift.py`` computes them): the MMD
permutation test, the predictive-variance test, both on one set of rows, and a night's record.

Plain frozen values shared by the nightly loop, ``addgp drift``, the nightly report and the
drift history, which ``storage/nightly_records.py`` reads and writes (JSON layout there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class MmdTest:
    """The MMD permutation test: the rows used per side, alpha, MMD², its permutation threshold at
    1 − alpha, p-value and RBF bandwidth (all None: fewer rows than the test needs, so no test)."""

    n_reference: int
    n_tonight: int
    alpha: float
    mmd2: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    bandwidth: float | None = None
    drifted: bool = False


@dataclass(frozen=True)
class VarianceTest:
    """The predictive-variance test: median variance of the reference and new rows, the reference's
    95th percentile, the share of new rows above it (about ``expected_share`` without drift), and
    the one-sided binomial test's p-value at ``alpha``."""

    available: ClassVar[bool] = True
    reference_median: float
    tonight_median: float
    reference_q95: float
    share_above_q95: float
    expected_share: float
    p_value: float
    alpha: float
    drifted: bool


@dataclass(frozen=True)
class VarianceUnmeasured:
    """No variance test, and why (a model without a predictive variance, too few rows)."""

    available: ClassVar[bool] = False
    drifted: ClassVar[bool] = False
    why: str


@dataclass(frozen=True)
class DriftMeasurement:
    """Both tests on ``n_rows`` new rows; drifted when either fired."""

    n_rows: int
    mmd: MmdTest
    variance: VarianceTest | VarianceUnmeasured

    @property
    def drifted(self) -> bool:
        return self.mmd.drifted or self.variance.drifted


@dataclass(frozen=True)
class NightDrift:
    """One night's drift record: its run id, the champion version measured against (None on a
    hand-written champion record), where the variance test's reference rows came from, the tests."""

    run_id: str
    champion_version: int | None
    variance_reference: str
    measured: DriftMeasurement

    @property
    def drifted(self) -> bool:
        return self.measured.drifted
