"""Selective prediction: defer the most uncertain trials, measure the error on the rest.

The uncertainty is any per-row number, higher = less sure: the GP's predictive variance,
or for detectors that only give an LLR the entropy of P(spoof)
(:func:`entropy_uncertainty`). Rows with equal uncertainty are kept or deferred together,
so a curve never depends on the row order.

Two errors on the kept set are offered:

- ``error_rate`` (default): the fraction of kept trials misclassified by the decision at
  threshold 0 (spoof when score < 0, i.e. P(spoof) > 0.5) - the risk of a deployed
  detector that hands its unsure cases to a person;
- ``eer``: the ASVspoof EER of the kept trials, threshold-free (NaN once a class is gone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from addgp.contracts import p_spoof_from_score
from addgp.metrics import MetricsError, group_by_score, metrics_from_counts, validated

ERRORS = ("error_rate", "eer")
DEFAULT_COVERAGES = np.linspace(1.0, 0.01, 100)


def entropy_uncertainty(scores) -> np.ndarray:
    """Binary entropy of P(spoof) = sigmoid(-score), in bits (1 at score 0, -> 0 far away)."""
    s = np.asarray(scores, dtype=np.float64)
    # -ln P(spoof) = softplus(s), -ln P(bonafide) = softplus(-s): no log(0) for large |s|
    nats = p_spoof_from_score(s) * np.logaddexp(0.0, s) + p_spoof_from_score(-s) * np.logaddexp(0.0, -s)
    return nats / np.log(2.0)


def coverage_error_curve(
    scores,
    labels,
    uncertainty,
    error: str = "error_rate",
    coverages=None,
) -> pd.DataFrame:
    """Error on the kept trials as the most uncertain ones are deferred.

    Parameters
    ----------
    uncertainty : per row, higher = defer first.
    error : ``error_rate`` or ``eer`` (see the module docstring).
    coverages : requested kept fractions in (0, 1]; default 1.00, 0.99, ..., 0.01. Each is
        rounded up to whole uncertainty ties, so the reported coverage can be larger;
        requests landing on the same kept set give one row.

    Returns
    -------
    One row per kept set, coverage descending: ``coverage``, ``n_kept``, ``n_bonafide``,
    ``n_spoof``, ``max_uncertainty`` (the deferral cut-off: rows above it are deferred) and
    ``error``.
    """
    if error not in ERRORS:
        raise ValueError(f"error must be one of {ERRORS}, got {error!r}")
    s, bona = validated(scores, labels)
    unc = np.asarray(uncertainty, dtype=np.float64)
    if unc.shape != s.shape:
        raise MetricsError(f"{unc.size} uncertainties for {s.size} scores")
    if not np.isfinite(unc).all():
        raise MetricsError("uncertainty must be finite")
    requested = DEFAULT_COVERAGES if coverages is None else np.asarray(coverages, dtype=np.float64)
    if not ((requested > 0) & (requested <= 1)).all():
        raise ValueError("coverages must lie in (0, 1]")

    order = np.argsort(unc)  # ties in uncertainty are resolved below, not by order
    unc_sorted, bona_sorted = unc[order], bona[order]
    # round before ceil so that e.g. 0.3 of 10 rows keeps 3 rows, not 4 (0.3 * 10 > 3 in floats)
    wanted = np.clip(np.ceil(np.round(requested * s.size, 6)).astype(np.int64), 1, s.size)
    n_kept = np.unique(np.searchsorted(unc_sorted, unc_sorted[wanted - 1], side="right"))[::-1]
    kept_bona = np.cumsum(bona_sorted)[n_kept - 1]

    if error == "error_rate":
        wrong = (s[order] < 0) != ~bona_sorted
        err = np.cumsum(wrong)[n_kept - 1] / n_kept
    else:
        err = _eer_of_prefixes(s, bona, order, n_kept, kept_bona)
    return pd.DataFrame(
        {
            "coverage": n_kept / s.size,
            "n_kept": n_kept,
            "n_bonafide": kept_bona,
            "n_spoof": n_kept - kept_bona,
            "max_uncertainty": unc_sorted[n_kept - 1],
            "error": err,
        }
    )


def _eer_of_prefixes(s, bona, order, n_kept, kept_bona) -> np.ndarray:
    """EER of the first n rows of ``order`` for every n in ``n_kept`` (descending)."""
    groups = group_by_score(s, bona)
    group_sorted, bona_sorted = groups.index[order], bona[order]
    n_groups = groups.scores.size
    nb = np.zeros(n_groups, dtype=np.int64)
    ns = np.zeros(n_groups, dtype=np.int64)
    eer = np.full(n_kept.size, np.nan)
    done = 0
    # kept sets are nested: grow the counts from the smallest set up
    for i in range(n_kept.size - 1, -1, -1):
        new = slice(done, n_kept[i])
        nb += np.bincount(group_sorted[new][bona_sorted[new]], minlength=n_groups)
        ns += np.bincount(group_sorted[new][~bona_sorted[new]], minlength=n_groups)
        done = n_kept[i]
        if 0 < kept_bona[i] < n_kept[i]:
            eer[i] = metrics_from_counts(groups.scores, nb, ns, ("eer",))["eer"][0]
    return eer


def coverage_at_error(curve: pd.DataFrame, target_error: float) -> float:
    """Largest coverage of ``curve`` whose kept-set error is at most ``target_error`` (0 if none)."""
    ok = curve["error"] <= target_error
    return float(curve.loc[ok, "coverage"].max()) if ok.any() else 0.0
