"""Detection and calibration metrics for bona fide / spoof scores.

Implements the "addgp metrics" contract of docs/architecture.md: a score is an LLR (higher means
more bona fide), labels are ``bonafide`` / ``spoof``, P(spoof) = sigmoid(-score), rates are
fractions. Every metric comes from one sort of the scores into tie groups (O(n) after it), so the
same code evaluates many bootstrap resamples at once from per-group counts
(:func:`metrics_from_counts`). Each metric is one entry of :data:`METRIC_SPECS`, which everything
that lists metrics reads. What each computes (tie rules, DCF costs, ECE bins): docs/reports.md,
"What each metric computes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import isotonic_regression

from addgp.contracts import is_bonafide, p_spoof_from_score

P_SPOOF = 0.05
C_MISS = 1.0
C_FA = 10.0
ECE_BINS = 15

_COUNT_KEYS = ("n_bonafide", "n_spoof")
_LN2 = np.log(2.0)


class MetricsError(ValueError):
    """The scores or labels cannot be evaluated (a class missing, non-finite scores, ...)."""


@dataclass(frozen=True)
class ScoreGroups:
    """Scores grouped into ties, ascending.

    Attributes
    ----------
    scores : (G,) strictly increasing distinct scores.
    n_bonafide, n_spoof : (G,) int64 counts per group.
    index : (n,) group of every input row.
    """

    scores: np.ndarray
    n_bonafide: np.ndarray
    n_spoof: np.ndarray
    index: np.ndarray


@dataclass(frozen=True)
class DetCurve:
    """Miss (bona fide rejected) and false-alarm (spoof accepted) rates per threshold.

    A trial is accepted as bona fide when ``score >= threshold``; the last threshold is
    +inf (everything rejected).
    """

    miss: np.ndarray
    fa: np.ndarray
    thresholds: np.ndarray


# ---------------------------------------------------------------------------- inputs


def bonafide_mask(labels) -> np.ndarray:
    """Boolean array, True for ``bonafide``; MetricsError on missing or unknown labels."""
    values = labels if isinstance(labels, pd.Series) else np.asarray(labels, dtype=object)
    # Factorise first so that the contract check runs on the few distinct labels, not on
    # every row (10M rows must stay fast).
    codes, uniques = pd.factorize(values)
    if (codes < 0).any():
        raise MetricsError(f"{int((codes < 0).sum())} missing label(s); every row needs bonafide or spoof")
    try:
        return is_bonafide(np.asarray(uniques, dtype=object))[codes]
    except ValueError as err:
        raise MetricsError(str(err)) from None


def validated(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and the bona fide mask; MetricsError if unusable."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MetricsError(f"scores must be numeric: {err}") from None
    if s.ndim != 1:
        raise MetricsError(f"scores must be one-dimensional, got shape {s.shape}")
    bona = bonafide_mask(labels)
    if bona.shape != s.shape:
        raise MetricsError(f"{s.size} scores but {bona.size} labels")
    finite = np.isfinite(s)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise MetricsError(
            f"{int((~finite).sum())} non-finite score(s), first at row {first} ({s[first]}); scores must be finite LLRs"
        )
    n_bona = int(bona.sum())
    if n_bona == 0 or n_bona == s.size:
        missing = "bonafide" if n_bona == 0 else "spoof"
        raise MetricsError(f"no {missing} rows among {s.size}: metrics need both classes")
    return s, bona


def group_by_score(scores: np.ndarray, bona: np.ndarray) -> ScoreGroups:
    """Sort once and collapse tied scores into groups with per-class counts."""
    order = np.argsort(scores)
    sorted_scores = scores[order]
    new_group = np.empty(scores.size, dtype=bool)
    new_group[:1] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    n_bona = np.add.reduceat(bona[order].astype(np.int64), starts)
    n_spoof = np.diff(np.append(starts, scores.size)) - n_bona
    index = np.empty(scores.size, dtype=np.intp)
    index[order] = np.cumsum(new_group) - 1
    return ScoreGroups(sorted_scores[starts], n_bona, n_spoof, index)


# ----------------------------------------------------------------- batched core


class GroupCounts:
    """k weighted score sets over the same distinct scores, and what several metrics share.

    The intermediate arrays (cumulative counts, the EER point, the Cllr sums, P(spoof),
    the PAV fit) are computed the first time a metric asks for them and reused by the
    others, so asking for all metrics costs one pass of each.

    Attributes
    ----------
    u : (G,) strictly increasing distinct scores.
    nb, ns : (k, G) bona fide / spoof counts per group; row r is the r-th score set.
    """

    def __init__(self, group_scores: np.ndarray, n_bonafide: np.ndarray, n_spoof: np.ndarray):
        self.u = np.asarray(group_scores, dtype=np.float64)
        self.nb = np.asarray(n_bonafide, dtype=np.int64).reshape(-1, self.u.size)
        self.ns = np.asarray(n_spoof, dtype=np.int64).reshape(-1, self.u.size)

    @cached_property
    def A(self) -> np.ndarray:
        """(k, G) bona fide trials at or below each group."""
        return np.cumsum(self.nb, axis=1)

    @cached_property
    def B(self) -> np.ndarray:
        """(k, G) spoof trials at or below each group."""
        return np.cumsum(self.ns, axis=1)

    @property
    def Nb(self) -> np.ndarray:
        return self.A[:, -1]

    @property
    def Ns(self) -> np.ndarray:
        return self.B[:, -1]

    @cached_property
    def eer_point(self) -> tuple[np.ndarray, np.ndarray]:
        """(EER, trials rejected at its point) as the ASVspoof packages find it."""
        return _asvspoof_eer(self.A, self.B, self.nb, self.ns)

    @cached_property
    def cross_entropy(self) -> tuple[np.ndarray, np.ndarray]:
        """(k,) sums of -ln P(true class | score) in nats over bona fide and over spoof trials, equal priors."""
        bona_nats = np.logaddexp(0.0, -self.u)  # -ln P(bonafide | score) under equal priors
        spoof_nats = bona_nats + self.u  # -ln P(spoof | score) = softplus(score)
        return self.nb @ bona_nats, self.ns @ spoof_nats

    @cached_property
    def p_spoof(self) -> np.ndarray:
        return p_spoof_from_score(self.u)

    @cached_property
    def pav(self) -> np.ndarray:
        """(k, 2): min Cllr and ROCCH EER of every score set."""
        return np.array([_pav_metrics(b, s) for b, s in zip(self.nb, self.ns)])


def metrics_from_counts(
    group_scores: np.ndarray,
    n_bonafide: np.ndarray,
    n_spoof: np.ndarray,
    names: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of k weighted score sets that share the same distinct scores.

    Parameters
    ----------
    group_scores : (G,) strictly increasing distinct scores.
    n_bonafide, n_spoof : (k, G) non-negative integer counts (or (G,) for k = 1); row r
        is the r-th score set (e.g. a bootstrap resample). Every row needs both classes;
        empty groups are fine.
    names : metrics to compute, keys of METRIC_SPECS and ``eer_threshold``; default all
        metrics of METRIC_SPECS.

    Returns
    -------
    dict name -> (k,) float array.
    """
    names = metric_keys() if names is None else tuple(names)
    unknown = set(names) - set(METRIC_SPECS) - {"eer_threshold"}
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {list(METRIC_SPECS)}")
    counts = GroupCounts(group_scores, n_bonafide, n_spoof)
    out = {}
    for name in names:
        if name == "eer_threshold":
            out[name] = _threshold_at(counts.u, counts.A, counts.B, counts.eer_point[1])
        else:
            out[name] = np.asarray(METRIC_SPECS[name].from_counts(counts), dtype=np.float64)
    return out


def _asvspoof_eer(A, B, nb, ns) -> tuple[np.ndarray, np.ndarray]:
    """EER of the ASVspoof packages and the position (trials rejected) of its point.

    The packages walk one trial at a time, bona fide first inside a tie group, and take the
    first point minimising |FRR - FAR|. FRR - FAR only grows along that walk, so the
    minimiser is one of the two points around its sign change; we locate the tie group
    and the bona fide or spoof run inside it with exact integer arithmetic (this agrees
    with the packages' floating-point sign while N_bonafide * N_spoof < 3e15) and then
    evaluate both candidates with the packages' own floating-point formulas.
    """
    rows = np.arange(A.shape[0])
    Nb, Ns = A[:, -1], B[:, -1]

    def crossed(a, b):  # FRR >= FAR  <=>  a/Nb >= (Ns - b)/Ns  <=>  a*Ns >= (Ns - b)*Nb
        return a * Ns >= (Ns - b) * Nb

    # Binary search for the first tie group that ends crossed (the last one always does:
    # FRR = 1, FAR = 0); crossed() is monotone along the groups.
    lo, hi = np.zeros_like(rows), np.full_like(rows, A.shape[1] - 1)
    while (lo < hi).any():
        mid = (lo + hi) // 2
        ok = crossed(A[rows, mid], B[rows, mid])
        lo, hi = np.where(ok, lo, mid + 1), np.where(ok, mid, hi)
    a_end, b_end = A[rows, hi], B[rows, hi]
    b0 = b_end - ns[rows, hi]
    in_bona_run = crossed(a_end, b0)  # already crossed after the group's bona fide trials
    a0 = np.where(in_bona_run, a_end - nb[rows, hi], a_end)
    # smallest number j of trials of the run after which FRR >= FAR
    deficit = (Ns - b0) * Nb - a0 * Ns
    j = -(-deficit // np.where(in_bona_run, Ns, Nb))
    da, db = in_bona_run.astype(np.int64), (~in_bona_run).astype(np.int64)
    a_after, b_after = a0 + j * da, b0 + j * db
    a_before, b_before = a_after - da, b_after - db
    frr_before, far_before = a_before / Nb, (Ns - b_before) / Ns
    frr_after, far_after = a_after / Nb, (Ns - b_after) / Ns
    take_before = np.abs(frr_before - far_before) <= np.abs(frr_after - far_after)
    eer = np.where(take_before, (frr_before + far_before) / 2, (frr_after + far_after) / 2)
    position = np.where(take_before, a_before + b_before, a_after + b_after)
    return eer, position


def _threshold_at(u, A, B, position) -> np.ndarray:
    """The packages' EER threshold: score of the last rejected trial, or min score - 0.001."""
    thresholds = []
    for a, b, rejected in zip(A, B, position):
        cum_total = a + b
        if rejected > 0:
            thresholds.append(u[np.searchsorted(cum_total, rejected - 1, side="right")])
        else:
            thresholds.append(u[np.searchsorted(cum_total, 0, side="right")] - 0.001)
    return np.array(thresholds)


def _min_dcf(A, B) -> np.ndarray:
    p_target = 1 - P_SPOOF  # written as in the ASVspoof 5 package
    Nb, Ns = A[:, -1:], B[:, -1:]
    # Within a tie group the cost first rises (bona fide rejected) then falls, so the
    # minimum over the packages' per-trial points is at a group end or the start point.
    # In place, same operation order as the package: C_miss*frr*p_target + C_fa*far*(1-p_target).
    cost = np.divide(A, Nb)
    cost *= C_MISS
    cost *= p_target
    far_term = np.divide(Ns - B, Ns)
    far_term *= C_FA
    far_term *= 1 - p_target
    cost += far_term
    start = C_FA * 1.0 * (1 - p_target)
    return np.minimum(cost.min(axis=1), start) / min(C_MISS * p_target, C_FA * (1 - p_target))


def bayes_threshold() -> float:
    """Threshold of ``act_dcf``: accept bona fide when score >= this LLR."""
    return float(-np.log(C_MISS * (1 - P_SPOOF) / (C_FA * P_SPOOF)))


def _act_dcf(u, A, B) -> np.ndarray:
    Nb, Ns = A[:, -1], B[:, -1]
    below = int(np.searchsorted(u, bayes_threshold(), side="left"))  # groups rejected
    missed = A[:, below - 1] if below > 0 else np.zeros_like(Nb)
    spoof_rejected = B[:, below - 1] if below > 0 else np.zeros_like(Ns)
    dcf = C_MISS * (1 - P_SPOOF) * (missed / Nb) + C_FA * P_SPOOF * ((Ns - spoof_rejected) / Ns)
    return dcf / min(C_FA * P_SPOOF, C_MISS * (1 - P_SPOOF))


def _bin_index(p_spoof: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((p_spoof * n_bins).astype(np.int64), n_bins - 1)


def _ece(p, nb, ns) -> np.ndarray:
    bins = _bin_index(p, ECE_BINS)
    in_bin = sparse.csr_array((np.ones(p.size), (np.arange(p.size), bins)), shape=(p.size, ECE_BINS))
    # per bin, sum of (P(spoof) - is_spoof) over its trials; ECE = sum_bins |that| / N
    per_bin = ((nb + ns) * p - ns) @ in_bin
    return np.abs(per_bin).sum(axis=1) / (nb.sum(axis=1) + ns.sum(axis=1))


def _pav_metrics(nb: np.ndarray, ns: np.ndarray) -> tuple[float, float]:
    """(min Cllr, ROCCH EER) of one score set from its per-group counts."""
    keep = (nb + ns) > 0
    nb, ns = nb[keep].astype(np.float64), ns[keep].astype(np.float64)
    total = nb + ns
    blocks = isotonic_regression(nb / total, weights=total).blocks[:-1]
    a, b = np.add.reduceat(nb, blocks), np.add.reduceat(ns, blocks)  # per PAV bin
    Nb, Ns = nb.sum(), ns.sum()
    # PAV posterior a/(a+b) as an LLR: log(a*Ns / (b*Nb)); its Cllr written without
    # the infinite LLRs of pure bins (0 * log(...) terms are zero).
    with np.errstate(divide="ignore", invalid="ignore"):
        bona_nats = np.where(a > 0, a * np.log1p((b * Nb) / (a * Ns)), 0.0)
        spoof_nats = np.where(b > 0, b * np.log1p((a * Ns) / (b * Nb)), 0.0)
    min_cllr = 0.5 * (bona_nats.sum() / Nb + spoof_nats.sum() / Ns) / _LN2
    # ROCCH vertices (P_fa, P_miss) at the PAV bin boundaries, from "accept all".
    pmiss = np.concatenate(([0.0], np.cumsum(a) / Nb))
    pfa = np.concatenate(([1.0], (Ns - np.cumsum(b)) / Ns))
    return float(min_cllr), _rocch_eer(pmiss, pfa)


def _rocch_eer(pmiss: np.ndarray, pfa: np.ndarray) -> float:
    """BOSARIS rocch2eer: the largest crossing of a hull segment's line with P_miss = P_fa.

    On a convex hull every segment's line lies below the hull, so the segment that holds
    the EER point gives the largest crossing; axis-parallel segments lie on P_miss = 0 or
    P_fa = 0 and contribute 0.
    """
    x0, x1, y0, y1 = pfa[:-1], pfa[1:], pmiss[:-1], pmiss[1:]
    dx, dy = x1 - x0, y1 - y0
    flat = (dx == 0) | (dy == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(flat, 0.0, (x0 * y1 - x1 * y0) / (dy - dx))
    return float(crossing.max())


# ------------------------------------------------------------------ the metric table


def _cllr(c: GroupCounts) -> np.ndarray:
    bona_total, spoof_total = c.cross_entropy
    return 0.5 * (bona_total / c.Nb + spoof_total / c.Ns) / _LN2


def _log_loss(c: GroupCounts) -> np.ndarray:
    bona_total, spoof_total = c.cross_entropy
    return (bona_total + spoof_total) / (c.Nb + c.Ns)


def _brier(c: GroupCounts) -> np.ndarray:
    p = c.p_spoof
    return (c.nb @ p**2 + c.ns @ (1.0 - p) ** 2) / (c.Nb + c.Ns)


def _auc(c: GroupCounts) -> np.ndarray:
    # sum over bona fide trials of (spoof trials below + half the tied ones)
    pairs_won = np.einsum("kg,kg->k", c.nb, c.B) - 0.5 * np.einsum("kg,kg->k", c.nb, c.ns)
    return pairs_won / (c.Nb.astype(np.float64) * c.Ns)


@dataclass(frozen=True)
class MetricSpec:
    """Everything about one metric that the rest of addgp needs: how to compute it and how to show it.

    Attributes
    ----------
    key : the name in metrics.json, score-table metrics and ``addgp metrics`` output.
    label : short name for table headers (``EER``, ``minDCF``).
    from_counts : (GroupCounts) -> (k,) values, one per score set; batched, so the same
        function serves single evaluations and bootstrap resamples.
    unit : shown after the label; ``%`` for rates shown in percent.
    percent : the value is a fraction shown multiplied by 100.
    digits : decimals when shown (its CI gets one fewer for percentages).
    ci : bootstrap CIs are computed for it by default (and the regression check watches it).
    headline : shown in the short tables: headline averages, the ``addgp evaluate`` table.
    higher_is_better : direction of improvement (regression check, robustness deltas).
    description : one line for the docs and table tooltips.
    """

    key: str
    label: str
    from_counts: Callable[[GroupCounts], np.ndarray]
    unit: str = ""
    percent: bool = False
    digits: int = 3
    ci: bool = False
    headline: bool = False
    higher_is_better: bool = False
    description: str = ""

    @property
    def header(self) -> str:
        """Column header: label and unit, e.g. ``EER (%)``, ``Cllr (bits)``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def format(self, value, digits: int | None = None) -> str:
        """The value as shown (percent when ``percent``); ``–`` for missing or non-finite values."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "–"
        if isinstance(value, bool) or not np.isfinite(number):
            return "–"
        digits = self.digits if digits is None else digits
        return f"{(100 * number if self.percent else number):.{digits}f}"

    def format_ci(self, low, high) -> str:
        """``[low, high]`` as shown, or ``""`` when either end is missing."""
        digits = self.digits - 1 if self.percent else self.digits
        low_text, high_text = self.format(low, digits), self.format(high, digits)
        return "" if "–" in (low_text, high_text) else f"[{low_text}, {high_text}]"

    def worse(self, new: float, old: float) -> float:
        """How much worse ``new`` is than ``old`` (positive = worse), in the metric's own units."""
        return old - new if self.higher_is_better else new - old


METRIC_SPECS: dict[str, MetricSpec] = {
    spec.key: spec
    for spec in (
        MetricSpec(
            "eer",
            "EER",
            lambda c: c.eer_point[0],
            unit="%",
            percent=True,
            digits=2,
            ci=True,
            headline=True,
            description="equal error rate as the ASVspoof evaluation packages compute it",
        ),
        MetricSpec(
            "eer_rocch",
            "ROCCH EER",
            lambda c: c.pav[:, 1],
            unit="%",
            percent=True,
            digits=2,
            description="EER on the ROC convex hull (BOSARIS rocch2eer)",
        ),
        MetricSpec(
            "min_dcf",
            "minDCF",
            lambda c: _min_dcf(c.A, c.B),
            ci=True,
            headline=True,
            description="normalised minimum DCF, ASVspoof 5 costs (P_spoof 0.05, C_miss 1, C_fa 10)",
        ),
        MetricSpec(
            "act_dcf",
            "actDCF",
            lambda c: _act_dcf(c.u, c.A, c.B),
            ci=True,
            headline=True,
            description="normalised DCF at the Bayes threshold for LLRs",
        ),
        MetricSpec(
            "cllr",
            "Cllr",
            _cllr,
            unit="bits",
            ci=True,
            headline=True,
            description="log-likelihood-ratio cost (calibration and discrimination)",
        ),
        MetricSpec(
            "min_cllr",
            "minCllr",
            lambda c: c.pav[:, 0],
            unit="bits",
            description="Cllr after the optimal monotone (PAV) recalibration",
        ),
        MetricSpec(
            "ece",
            "ECE",
            lambda c: _ece(c.p_spoof, c.nb, c.ns),
            headline=True,
            description="expected calibration error of P(spoof), 15 equal-width bins",
        ),
        MetricSpec("brier", "Brier", _brier, description="Brier score of P(spoof)"),
        MetricSpec("log_loss", "log loss", _log_loss, unit="nats", description="cross-entropy of P(spoof)"),
        MetricSpec(
            "auc",
            "AUC",
            _auc,
            higher_is_better=True,
            description="P(score of a bona fide trial > score of a spoof trial), ties 1/2",
        ),
    )
}
"""The metric table: one entry per metric. A new metric is one new entry here; the score
tables, metrics.json, bootstrap CIs, the HTML and Markdown reports, the ``addgp evaluate``
table and the regression check all read their metric lists from it."""

"""The built-in metrics, those the ``addgp metrics`` contract promises (docs/architecture.md)."""


def metric_keys() -> tuple[str, ...]:
    """Every metric of METRIC_SPECS (built-in and added), in table order."""
    return tuple(METRIC_SPECS)


def metric_spec(key: str) -> MetricSpec:
    """The spec of ``key``; ValueError naming the known keys otherwise."""
    try:
        return METRIC_SPECS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; choose from {list(METRIC_SPECS)}") from None


# ------------------------------------------------------------------ public API


def cllr(scores, is_spoof) -> float:
    """Cllr in bits of LLR ``scores`` against a boolean ``is_spoof`` (the training loops' early-stopping
    criterion; ``compute_metrics`` gives the same number through its tie groups): the mean of the two classes' log-loss of LLR scores (0 is perfect, 1 is an uninformative LLR of 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_spoof = np.asarray(is_spoof, dtype=bool)
    loss_bona = np.logaddexp(0.0, -scores[~is_spoof]).mean()
    loss_spoof = np.logaddexp(0.0, scores[is_spoof]).mean()
    return float((loss_bona + loss_spoof) / (2 * np.log(2)))


def compute_metrics(scores, labels) -> dict:
    """All contract metrics of one score set.

    Parameters
    ----------
    scores : LLRs, higher = more bona fide.
    labels : ``bonafide`` / ``spoof`` per score.

    Returns
    -------
    dict with every metric of METRIC_SPECS (floats, rates as fractions), ``eer_threshold`` (the ASVspoof
    packages' threshold at the EER point) and ``n_bonafide``, ``n_spoof`` (ints).

    Raises
    ------
    MetricsError
        A class is missing, a score is not finite, or a label is missing or unknown.
    """
    s, bona = validated(scores, labels)
    groups = group_by_score(s, bona)
    values = metrics_from_counts(groups.scores, groups.n_bonafide, groups.n_spoof, metric_keys() + ("eer_threshold",))
    result = {name: float(values[name][0]) for name in metric_keys() + ("eer_threshold",)}
    result["n_bonafide"] = int(bona.sum())
    result["n_spoof"] = int(s.size - result["n_bonafide"])
    return result


def det_curve(scores, labels) -> DetCurve:
    """Miss / false-alarm rates at every distinct score used as threshold, plus +inf."""
    s, bona = validated(scores, labels)
    groups = group_by_score(s, bona)
    bona_below = np.concatenate(([0], np.cumsum(groups.n_bonafide)))
    spoof_below = np.concatenate(([0], np.cumsum(groups.n_spoof)))
    n_bona, n_spoof = bona_below[-1], spoof_below[-1]
    return DetCurve(
        miss=bona_below / n_bona,
        fa=(n_spoof - spoof_below) / n_spoof,
        thresholds=np.append(groups.scores, np.inf),
    )


def reliability_bins(p_spoof, is_spoof, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Reliability-diagram table of P(spoof) against the observed spoof frequency.

    Bins are equal-width, [k/n_bins, (k+1)/n_bins) with the last one closed; empty bins
    have count 0 and NaN means. ECE = sum(count * |mean_p_spoof - frac_spoof|) / sum(count).
    """
    p = np.asarray(p_spoof, dtype=np.float64)
    y = np.asarray(is_spoof, dtype=bool)
    if p.shape != y.shape or p.ndim != 1:
        raise MetricsError(f"p_spoof {p.shape} and is_spoof {y.shape} must be 1-D of equal length")
    if not ((p >= 0) & (p <= 1)).all():
        raise MetricsError("p_spoof must lie in [0, 1]")
    bins = _bin_index(p, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / count
        frac_spoof = np.bincount(bins, weights=y, minlength=n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count,
            "mean_p_spoof": mean_p,
            "frac_spoof": frac_spoof,
        }
    )


def _metrics_or_note(scores, labels) -> tuple[dict, str | None]:
    """compute_metrics, or NaN metrics and the reason when a class is missing."""
    bona = bonafide_mask(labels)
    n_bona, n_spoof = int(bona.sum()), int(bona.size - bona.sum())
    if n_bona and n_spoof:
        return compute_metrics(scores, labels), None
    missing = " and ".join(name for name, n in (("bonafide", n_bona), ("spoof", n_spoof)) if n == 0)
    nan = dict.fromkeys(metric_keys() + ("eer_threshold",), float("nan"))
    return {**nan, "n_bonafide": n_bona, "n_spoof": n_spoof}, f"no {missing} rows"


def metrics_by(
    df: pd.DataFrame,
    by: str | Sequence[str],
    score_col: str = "score",
    label_col: str = "label",
    shared_bonafide: bool = False,
) -> pd.DataFrame:
    """Metrics per group of rows.

    Parameters
    ----------
    by : column(s) to group on; null values form their own group.
    shared_bonafide : True for attack breakdowns (as ASVspoof): the groups are formed from
        the spoof rows only and each is scored against *all* bona fide rows. False for
        conditions (codec, language, dataset) that both classes carry.

    Returns
    -------
    One row per group: the ``by`` columns, the metrics of compute_metrics, and ``note``
    (None, or why the metrics are NaN: a group without one of the classes).
    """
    keys = [by] if isinstance(by, str) else list(by)
    bona = bonafide_mask(df[label_col])
    rows = []
    if shared_bonafide:
        bona_rows = df.loc[bona, [score_col, label_col]]
        grouped = df.loc[~bona].groupby(keys, dropna=False, sort=True)
    else:
        grouped = df.groupby(keys, dropna=False, sort=True)
    for key, group in grouped:
        part = pd.concat([bona_rows, group[[score_col, label_col]]]) if shared_bonafide else group
        values, note = _metrics_or_note(part[score_col].to_numpy(), part[label_col])
        rows.append({**dict(zip(keys, key)), **values, "note": note})
    columns = [*keys, *metric_keys(), "eer_threshold", *_COUNT_KEYS, "note"]
    return pd.DataFrame(rows, columns=columns)


def pooled_and_averaged(
    df: pd.DataFrame,
    dataset_col: str = "dataset",
    score_col: str = "score",
    label_col: str = "label",
) -> pd.DataFrame:
    """Pooled metrics over all rows and the unweighted mean of the per-dataset metrics.

    Returns
    -------
    Two rows labelled by ``aggregate``: ``pooled`` and ``average``. ``n_datasets`` says how
    many datasets each row covers; datasets lacking a class are left out of the average
    (named in ``note``). The average row's counts are sums and its ``eer_threshold`` is
    NaN (thresholds of different datasets do not average meaningfully).
    """
    per_dataset = metrics_by(df, dataset_col, score_col, label_col, shared_bonafide=False)
    usable = per_dataset[per_dataset["note"].isna()]
    pooled, pooled_note = _metrics_or_note(df[score_col].to_numpy(), df[label_col])
    excluded = per_dataset.loc[per_dataset["note"].notna(), dataset_col].astype(str).tolist()
    average = {name: float(usable[name].mean()) if len(usable) else float("nan") for name in metric_keys()}
    average.update(
        eer_threshold=float("nan"),
        n_bonafide=int(usable["n_bonafide"].sum()),
        n_spoof=int(usable["n_spoof"].sum()),
    )
    rows = [
        {"aggregate": "pooled", "n_datasets": len(per_dataset), **pooled, "note": pooled_note},
        {
            "aggregate": "average",
            "n_datasets": len(usable),
            **average,
            "note": f"excluded (missing a class): {', '.join(excluded)}" if excluded else None,
        },
    ]
    columns = ["aggregate", "n_datasets", *metric_keys(), "eer_threshold", *_COUNT_KEYS, "note"]
    return pd.DataFrame(rows, columns=columns)
