"""A nightly outcome with every section the gate and drift add: shared by the render test and
the headless-browser test."""

from __future__ import annotations

import pandas as pd

from addgp.config import GateConfig
from addgp.drift import DriftMeasurement, MmdTest, NightDrift, VarianceTest
from addgp.nightly import ChampionEvaluation, ChampionRecord, GatedDecision, InboxBatch
from tasks.nightly.compare import HELD_OUT, NEW_FAKES
from tasks.nightly.gate import KEPT, PROMOTED, apply_gate
from tasks.nightly.promotion import decide_promotion
from tasks.report.nightly import NightlyOutcome

EVIL = "<script>alert(1)</script>"


def decided(promote: bool, reason: str) -> GatedDecision:
    """A decided night's verdict and reason (the figures the point rule adds left empty)."""
    return GatedDecision(
        promote=promote,
        reason=reason,
        champion_average_eer=None,
        challenger_average_eer=0.0,
        average_ci_half_width=None,
        champion_new_fakes_eer=None,
        challenger_new_fakes_eer=None,
        outcome=PROMOTED if promote else KEPT,
        decided=True,
    )


def evaluation(run_id: str, version: int, average_eer: float) -> ChampionEvaluation:
    """One night's measurement of the champion (version ``version``) on one eval corpus."""
    return ChampionEvaluation(
        run_id, f"{run_id}T03:00:00+00:00", version, f"/secret/models/lr/v{version}", {"demo": average_eer}, average_eer
    )


def inbox_batch(batch_id: str, n_bonafide: int = 0, n_spoof: int = 0) -> InboxBatch:
    """A batch of the inbox ledger with these counts (delivered at the drop folder's top)."""
    return InboxBatch(batch_id, None, "2026-12-01T02:00:00+00:00", n_bonafide + n_spoof, n_bonafide, n_spoof, 0.01)


def drift_record(run_id: str, mmd2: float, drifted: bool, version: int = 1) -> NightDrift:
    mmd = MmdTest(
        n_reference=80,
        n_tonight=46,
        alpha=0.01,
        mmd2=mmd2,
        threshold=0.012,
        p_value=0.005 if drifted else 0.4,
        bandwidth=3.2,
        drifted=drifted,
    )
    variance = VarianceTest(
        reference_median=0.11,
        tonight_median=0.34 if drifted else 0.12,
        reference_q95=0.3,
        share_above_q95=0.52 if drifted else 0.04,
        expected_share=0.05,
        p_value=1e-9 if drifted else 0.6,
        alpha=0.01,
        drifted=drifted,
    )
    return NightDrift(run_id, version, "dev split of demo_studio", DriftMeasurement(46, mmd, variance))


def undecided_night() -> NightlyOutcome:
    """Night 3 of a season: 3 held-out spoofs (the issue's night), the gate says wait; the inbox drifted."""
    new_fakes = {
        "dataset": NEW_FAKES,
        "n_bonafide": 12,
        "n_spoof": 3,
        "champion_eer": 0.33,
        "challenger_eer": 0.2,
        "difference": 0.13,
        "difference_ci_low": -0.04,
        "difference_ci_high": 0.33,
        "bonafide_from": HELD_OUT,
    }
    point = decide_promotion({"demo_studio": 0.1}, {"demo_studio": 0.1}, 0.02, 0.33, 0.2)
    decision, gate = apply_gate(point, new_fakes, 1, GateConfig())
    return NightlyOutcome(
        "night",
        "night-3",
        [inbox_batch(EVIL, n_bonafide=2, n_spoof=8)],
        decision=decision,
        eer=pd.DataFrame({"champion": [0.1, 0.33], "challenger": [0.1, 0.2]}, index=["demo_studio", NEW_FAKES]),
        evidence=pd.DataFrame([new_fakes]),
        champion=ChampionRecord("models/gp/v1", version=1, eer={"demo_studio": 0.1}),
        gate=gate,
        drift=[
            drift_record("night-1", 0.001, False),
            drift_record("night-2", 0.002, False),
            drift_record("night-3", 0.05, True),
        ],
    )
