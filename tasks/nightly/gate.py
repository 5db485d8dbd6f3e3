"""The promotion gate: a night decides only on enough held-out evidence (issue 20, item 4).

``decide_promotion`` (tasks/nightly/promotion.py) compares point estimates; the gate says
whether the held-out new fakes are enough to act on, in this order:

1. the challenger is worse on the eval average beyond the champion's CI → keep: the eval
   corpora are large and decide on their own (no new-fakes evidence is needed to refuse);
2. fewer held-out spoof rows than ``min_spoof``, or fewer bona fide rows in the new-fakes
   slice than ``min_bonafide`` (held out, or borrowed from the eval corpora when the inbox
   sent none) → **not enough evidence yet**, until the pool spans ``max_nights`` nights:
   then keep (the pool's rows are never enough; it starts over, so it stays bounded);
3. with ``ci_level`` set: the paired bootstrap CI of champion − challenger EER on the new
   fakes above 0 → promote (the challenger is better beyond chance); below 0 → keep (worse);
   straddling 0 → not enough evidence yet, until the pool spans ``max_nights`` nights: then
   keep (no difference shown; the challenger is not swapped in on a coin toss);
4. without ``ci_level``: the point rule of ``decide_promotion`` stands.

"Not enough evidence yet" keeps the champion and carries the night's rows (held out and
learnt) into the next night's pool (storage.nightly_records), so the evidence grows until
the gate can decide. A decided night — either way — starts a new pool.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from addgp.config import GateConfig
from addgp.nightly import GatedDecision, GateRecord, PromotionDecision

PROMOTED, KEPT, NOT_ENOUGH_EVIDENCE = "promoted", "kept", "not enough evidence yet"


def gate_rule(gate: GateConfig) -> str:
    """The configured rule in words, as the report prints it."""
    if not gate.enabled:
        return "gate off: the point rule decides on any number of held-out rows"
    parts = [f"at least {gate.min_spoof} held-out spoof and {gate.min_bonafide} bona fide rows"]
    if gate.ci_level is not None:
        parts.append(
            f"a {gate.ci_level:.0%} paired bootstrap CI of champion − challenger EER on the new fakes that excludes 0 "
            f"(still straddling 0 after {gate.max_nights} nights of pooled evidence: keep the champion)"
        )
    return "; ".join(parts)


def apply_gate(
    decision: PromotionDecision, new_fakes: dict | None, nights_pooled: int, gate: GateConfig
) -> tuple[GatedDecision, GateRecord]:
    """(the decision after the gate, the gate's record) for the point rule's ``decision``.

    ``new_fakes``: the new-fakes row of ``held_out_evidence`` (n_bonafide, n_spoof,
    difference, difference_ci_low/high), None when no held-out spoof was scored;
    ``nights_pooled``: the nights whose held-out rows it holds, tonight included.
    """
    n_spoof = int(new_fakes["n_spoof"]) if new_fakes else 0
    n_bonafide = int(new_fakes["n_bonafide"]) if new_fakes else 0
    ci = (new_fakes["difference_ci_low"], new_fakes["difference_ci_high"]) if new_fakes else (None, None)
    record = GateRecord(
        rule=gate_rule(gate),
        n_spoof=n_spoof,
        n_bonafide=n_bonafide,
        min_spoof=gate.min_spoof,
        min_bonafide=gate.min_bonafide,
        ci_level=gate.ci_level,
        difference_ci_low=ci[0],
        difference_ci_high=ci[1],
        nights_pooled=nights_pooled,
        max_nights=gate.max_nights,
    )

    def verdict(promote: bool, outcome: str, reason: str, decided: bool = True) -> tuple[GatedDecision, GateRecord]:
        gated = GatedDecision(
            **{**asdict(decision), "promote": promote, "reason": reason}, outcome=outcome, decided=decided
        )
        return gated, replace(record, outcome=outcome, reason=reason)

    half = decision.average_ci_half_width or 0.0
    champion_avg = decision.champion_average_eer
    if champion_avg is None:  # no champion to compare with: nothing to gate
        return verdict(decision.promote, PROMOTED if decision.promote else KEPT, decision.reason)
    if decision.challenger_average_eer > champion_avg + half:
        return verdict(False, KEPT, decision.reason)
    if not gate.enabled:
        return verdict(decision.promote, PROMOTED if decision.promote else KEPT, decision.reason)
    if new_fakes is None or n_spoof < gate.min_spoof or n_bonafide < gate.min_bonafide:
        counts = (
            f"{n_spoof} held-out spoof and {n_bonafide} bona fide rows over {nights_pooled} night(s), "
            f"the gate needs {gate.min_spoof} and {gate.min_bonafide}"
        )
        if nights_pooled >= gate.max_nights:
            return verdict(
                False, KEPT, f"too little evidence after {counts}: the champion is kept and the pool starts over"
            )
        return verdict(
            False,
            NOT_ENOUGH_EVIDENCE,
            f"not enough evidence yet: {counts}; the champion is kept and these rows are pooled with the next nights'",
            decided=False,
        )
    if gate.ci_level is None:
        return verdict(decision.promote, PROMOTED if decision.promote else KEPT, decision.reason)
    low, high = float(new_fakes["difference_ci_low"]), float(new_fakes["difference_ci_high"])
    interval = f"{gate.ci_level:.0%} CI of champion − challenger EER on the new fakes [{low:+.4f}, {high:+.4f}]"
    if low > 0:
        return verdict(True, PROMOTED, f"better on the new fakes beyond chance ({interval} above 0)")
    if high < 0:
        return verdict(False, KEPT, f"worse on the new fakes beyond chance ({interval} below 0)")
    if nights_pooled >= gate.max_nights:
        return verdict(
            False,
            KEPT,
            f"no difference shown after {nights_pooled} nights of pooled evidence ({interval} straddles 0): "
            "the champion is kept and the pool starts over",
        )
    return verdict(
        False,
        NOT_ENOUGH_EVIDENCE,
        f"not enough evidence yet: the {interval} straddles 0 after {nights_pooled} night(s); "
        "the champion is kept and these rows are pooled with the next nights'",
        decided=False,
    )
