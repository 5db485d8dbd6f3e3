"""Champion/challenger decisions of the nightly loop, as pure functions.

The rule (issue 7; ties issue 16), checked in this order:

1. the challenger's average EER over the eval corpora exceeds the champion's by more than
   the half-width of the champion's bootstrap 95 % interval → keep the champion (worse on
   what it must not forget);
2. no held-out new fakes → keep (nothing shows the challenger is better);
3. lower EER on the new fakes → promote;
4. the same EER on the new fakes (within ``EER_TIE``; common at 0 when both catch every new
   fake) → promote when the challenger is also not worse on the eval average (its EER at
   most the champion's), since it has seen more data and no figure favours the champion;
   keep otherwise;
5. higher EER on the new fakes → keep.

These are point comparisons. Whether the held-out rows are enough to act on is the
promotion gate's call (tasks/nightly/gate.py): it keeps rule 1, and with too few rows or a
paired bootstrap CI of champion − challenger that straddles 0 ends the night "not enough
evidence yet" instead.
"""

from __future__ import annotations

import hashlib
from typing import TypedDict

import numpy as np
import pandas as pd

from addgp.nightly import PromotionDecision

# EERs this close are equal: they differ by float rounding, not by a single row
# (one row of a 10 000-row slice moves the EER by 1e-4).
EER_TIE = 1e-9


class _DecisionFigures(TypedDict):
    """The figures every non-first ``PromotionDecision`` carries, whatever the verdict."""

    champion_average_eer: float | None
    challenger_average_eer: float
    average_ci_half_width: float | None
    champion_new_fakes_eer: float | None
    challenger_new_fakes_eer: float | None


def _pct(rate: float) -> str:
    """An EER in the decision line as the report's tables show it: percent, two decimals."""
    return f"{100 * rate:.2f} %"


def decide_promotion(
    champion_eer: dict[str, float] | None,
    challenger_eer: dict[str, float],
    ci_half_width: float | None,
    champion_new_eer: float | None,
    challenger_new_eer: float | None,
) -> PromotionDecision:
    """Compare per-dataset EERs of the eval corpora and the EERs on the held-out new fakes."""
    challenger_avg = float(np.mean(list(challenger_eer.values())))
    if champion_eer is None:
        return PromotionDecision(
            True, "no champion yet: the first model is promoted", None, challenger_avg, None, None, challenger_new_eer
        )
    missing = sorted(set(champion_eer) - set(challenger_eer))
    if missing:
        raise ValueError(f"challenger was not evaluated on {missing}, which the champion was")
    champion_avg = float(np.mean([champion_eer[d] for d in challenger_eer]))
    half = float(ci_half_width or 0.0)
    common = _DecisionFigures(
        champion_average_eer=champion_avg,
        challenger_average_eer=challenger_avg,
        average_ci_half_width=half,
        champion_new_fakes_eer=champion_new_eer,
        challenger_new_fakes_eer=challenger_new_eer,
    )
    if challenger_avg > champion_avg + half:
        return PromotionDecision(
            False,
            f"worse on the eval average beyond the CI: {_pct(challenger_avg)} > {_pct(champion_avg)} + {_pct(half)}",
            **common,
        )
    if champion_new_eer is None or challenger_new_eer is None:
        return PromotionDecision(False, "no held-out new fakes to show the challenger is better on them", **common)
    new_fakes = f"{_pct(challenger_new_eer)} vs {_pct(champion_new_eer)}"
    if challenger_new_eer < champion_new_eer - EER_TIE:
        return PromotionDecision(
            True,
            f"better on the new fakes ({_pct(challenger_new_eer)} < {_pct(champion_new_eer)}) and within the CI on the eval average",
            **common,
        )
    if challenger_new_eer > champion_new_eer + EER_TIE:
        return PromotionDecision(
            False, f"worse on the new fakes: {_pct(challenger_new_eer)} > {_pct(champion_new_eer)}", **common
        )
    eval_average = f"{_pct(challenger_avg)} vs {_pct(champion_avg)}"
    if challenger_avg <= champion_avg + EER_TIE:
        return PromotionDecision(
            True,
            f"tie on the new fakes ({new_fakes}) and not worse on the eval average ({eval_average}): "
            "the challenger has seen more data",
            **common,
        )
    return PromotionDecision(
        False,
        f"tie on the new fakes ({new_fakes}) and worse on the eval average ({eval_average}, within the CI)",
        **common,
    )


def forgetting_table(previous: dict[str, float] | None, current: dict[str, float]) -> pd.DataFrame:
    """How each corpus' EER moved since the last champion was promoted (positive = worse)."""
    rows = []
    for dataset in sorted(current):
        before = None if previous is None else previous.get(dataset)
        rows.append(
            {
                "dataset": dataset,
                "eer_at_last_promotion": before,
                "eer_now": current[dataset],
                "change": None if before is None else current[dataset] - before,
            }
        )
    return pd.DataFrame(rows)


def _buckets(utt_ids, salt: str) -> np.ndarray:
    """A number in [0, 1) per utterance, from its id alone."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}\0{u}".encode()).digest()[:8], "big") / 2**64 for u in utt_ids]
    )


def holdout_mask(utt_ids: pd.Series, fraction: float, salt: str = "addgp-holdout") -> np.ndarray:
    """Deterministic split of new rows: True for the ``fraction`` kept out of training to test on.

    Hash-based, so an utterance keeps its side from night to night whatever else arrives.
    """
    return _buckets([str(u) for u in utt_ids], salt) < fraction


def stratified_holdout_mask(
    utt_ids: pd.Series, labels: pd.Series, fraction: float, salt: str = "addgp-holdout"
) -> np.ndarray:
    """``holdout_mask`` stratified by label: of each label's n rows, round(fraction·n) are held
    out — at least one and at most n − 1 when n ≥ 2 — those with the smallest hash buckets.

    Without it a night's held-out slice can hold one bona fide file (or none), and that file
    alone decides the new-fakes EER. Deterministic: the same rows give the same split.
    """
    ids = pd.Series([str(u) for u in utt_ids])
    buckets = _buckets(ids, salt)
    held = np.zeros(len(ids), dtype=bool)
    for label in pd.unique(pd.Series(labels)):
        members = np.flatnonzero(np.asarray(labels) == label)
        n = len(members)
        k = int(round(fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        held[members[np.argsort(buckets[members], kind="stable")[:k]]] = True
    return held
