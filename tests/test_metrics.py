"""The metrics library against independent reference computations.

References are written here from their definitions: brute-force threshold sweeps (O(n^2)),
the ASVspoof packages' trial-by-trial EER procedure, sklearn's AUC / Brier / log loss /
isotonic regression, a pairwise search for the ROC convex hull, and small hand-worked sets.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from addgp.metrics import (
    METRIC_SPECS,
    MetricsError,
    compute_metrics,
    det_curve,
    group_by_score,
    metrics_by,
    metrics_from_counts,
    pooled_and_averaged,
    reliability_bins,
)

METRIC_KEYS = tuple(METRIC_SPECS)  # every metric compute_metrics returns

BAYES_THRESHOLD = -math.log(0.95 / 0.5)  # C_miss (1 - P_spoof) / (C_fa P_spoof) = 1.9


def labelled(bona, spoof, seed=0):
    """Scores and labels of two classes, shuffled."""
    scores = np.concatenate([bona, spoof]).astype(np.float64)
    labels = np.array(["bonafide"] * len(bona) + ["spoof"] * len(spoof), dtype=object)
    order = np.random.default_rng(seed).permutation(scores.size)
    return scores[order], labels[order]


def random_classes(seed, n_bona, n_spoof, decimals=None):
    rng = np.random.default_rng(seed)
    bona, spoof = rng.normal(1.5, 1.5, n_bona), rng.normal(-1.0, 2.0, n_spoof)
    if decimals is not None:  # coarse rounding makes many ties, within and across classes
        bona, spoof = np.round(bona, decimals), np.round(spoof, decimals)
    return bona, spoof


# ------------------------------------------------------------ references


def asvspoof_procedure_eer(bona, spoof):
    """EER and threshold following the ASVspoof packages step by step."""
    scores = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(len(bona)), np.zeros(len(spoof))])
    order = np.argsort(scores, kind="mergesort")  # stable: bona fide first among ties
    bona_rejected = np.concatenate([[0.0], np.cumsum(is_bona[order])])
    spoof_rejected = np.arange(scores.size + 1) - bona_rejected
    frr = bona_rejected / len(bona)
    far = (len(spoof) - spoof_rejected) / len(spoof)
    best = np.argmin(np.abs(frr - far))
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return np.mean((frr[best], far[best])), thresholds[best]


def threshold_sweep(bona, spoof):
    """(thresholds, miss, fa) for accept-as-bona-fide when score >= t, t over all scores and +inf."""
    t = np.append(np.unique(np.concatenate([bona, spoof])), np.inf)
    miss = (bona[None, :] < t[:, None]).mean(axis=1)
    fa = (spoof[None, :] >= t[:, None]).mean(axis=1)
    return t, miss, fa


def sweep_eer(bona, spoof):
    """EER on tie-free scores: the sweep point minimising |miss - fa|."""
    _, miss, fa = threshold_sweep(bona, spoof)
    best = np.argmin(np.abs(miss - fa))
    return (miss[best] + fa[best]) / 2


def sweep_min_dcf(bona, spoof):
    _, miss, fa = threshold_sweep(bona, spoof)
    return np.min(1 * 0.95 * miss + 10 * 0.05 * fa) / min(0.95, 0.5)


def direct_act_dcf(bona, spoof):
    miss = np.mean(bona < BAYES_THRESHOLD)
    fa = np.mean(spoof >= BAYES_THRESHOLD)
    return (0.95 * miss + 0.5 * fa) / 0.5


def hull_eer(bona, spoof):
    """Lowest point of the ROC points' convex hull on P_miss = P_fa, over all point pairs."""
    _, miss, fa = threshold_sweep(bona, spoof)
    d = fa - miss
    i, j = np.meshgrid(np.arange(d.size), np.arange(d.size), indexing="ij")
    crosses = d[i] * d[j] < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = d[i] / (d[i] - d[j])
        crossing = fa[i] + lam * (fa[j] - fa[i])
    on_diagonal = fa[d == 0]
    return min(crossing[crosses].min(initial=np.inf), on_diagonal.min(initial=np.inf))


def direct_cllr(bona, spoof):
    return 0.5 * (np.mean(np.log2(1 + np.exp(-bona))) + np.mean(np.log2(1 + np.exp(spoof))))


def isotonic_min_cllr(bona, spoof):
    scores = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(len(bona)), np.zeros(len(spoof))])
    posterior = IsotonicRegression(increasing=True).fit_transform(scores, is_bona)
    with np.errstate(divide="ignore"):
        llr = np.log(posterior) - np.log1p(-posterior) - np.log(len(bona) / len(spoof))
    bits = np.where(is_bona == 1, np.logaddexp(0, -llr), np.logaddexp(0, llr)) / np.log(2)
    return 0.5 * (bits[is_bona == 1].mean() + bits[is_bona == 0].mean())


def looped_ece(p_spoof, is_spoof, n_bins=15):
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        inside = (p_spoof >= lo) & ((p_spoof < hi) if k < n_bins - 1 else (p_spoof <= hi))
        if inside.any():
            total += inside.sum() * abs(p_spoof[inside].mean() - is_spoof[inside].mean())
    return total / p_spoof.size


def p_spoof_of(scores):
    return 1 / (1 + np.exp(scores))


# ------------------------------------------------------------ the metrics


@pytest.mark.parametrize("seed, n_bona, n_spoof", [(0, 40, 60), (1, 7, 300), (2, 250, 9), (3, 500, 500)])
def test_every_metric_matches_its_reference_on_continuous_scores(seed, n_bona, n_spoof):
    bona, spoof = random_classes(seed, n_bona, n_spoof)
    scores, labels = labelled(bona, spoof, seed)
    m = compute_metrics(scores, labels)
    is_spoof = labels == "spoof"
    p = p_spoof_of(scores)

    assert m["eer"] == pytest.approx(sweep_eer(bona, spoof), abs=1e-15)
    assert (m["eer"], m["eer_threshold"]) == asvspoof_procedure_eer(bona, spoof)
    assert m["eer_rocch"] == pytest.approx(hull_eer(bona, spoof), abs=1e-12)
    assert m["min_dcf"] == pytest.approx(sweep_min_dcf(bona, spoof), abs=1e-12)
    assert m["act_dcf"] == pytest.approx(direct_act_dcf(bona, spoof), abs=1e-12)
    assert m["cllr"] == pytest.approx(direct_cllr(bona, spoof), rel=1e-12)
    assert m["min_cllr"] == pytest.approx(isotonic_min_cllr(bona, spoof), rel=1e-9)
    assert m["ece"] == pytest.approx(looped_ece(p, is_spoof), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(is_spoof, p), rel=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(is_spoof, p), rel=1e-9)
    assert m["auc"] == pytest.approx(roc_auc_score(~is_spoof, scores), abs=1e-12)
    assert (m["n_bonafide"], m["n_spoof"]) == (n_bona, n_spoof)
    assert m["min_cllr"] <= m["cllr"] + 1e-12


@pytest.mark.parametrize("seed", range(12))
def test_tied_scores_match_the_references(seed):
    rng = np.random.default_rng(100 + seed)
    n_bona, n_spoof = (int(x) for x in rng.integers(1, 80, size=2))
    bona, spoof = random_classes(seed, n_bona, n_spoof, decimals=int(rng.integers(-1, 2)))
    scores, labels = labelled(bona, spoof, seed)
    m = compute_metrics(scores, labels)

    assert (m["eer"], m["eer_threshold"]) == asvspoof_procedure_eer(bona, spoof)
    assert m["min_dcf"] == pytest.approx(sweep_min_dcf(bona, spoof), abs=1e-12)
    assert m["act_dcf"] == pytest.approx(direct_act_dcf(bona, spoof), abs=1e-12)
    assert m["eer_rocch"] == pytest.approx(hull_eer(bona, spoof), abs=1e-12)
    assert m["min_cllr"] == pytest.approx(isotonic_min_cllr(bona, spoof), rel=1e-9, abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(labels == "bonafide", scores), abs=1e-12)


def test_hand_worked_example():
    # bona fide 2, 0; spoof -2, 0 (a cross-class tie at 0)
    m = compute_metrics([2.0, 0.0, -2.0, 0.0], ["bonafide", "bonafide", "spoof", "spoof"])
    # walk: -2(s) 0(b) 0(s) 2(b): FRR 0,0,.5,.5,1  FAR 1,.5,.5,0,0 -> first |FRR-FAR| min at 2 trials
    assert m["eer"] == 0.5
    assert m["eer_threshold"] == 0.0
    # hull: (FA 1, miss 0) -> (.5, 0) -> tie segment -> (0, .5) -> (0, 1): crosses at 0.25
    assert m["eer_rocch"] == 0.25
    assert m["auc"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    # min DCF: reject below 0 -> miss 0, fa .5 -> 0.5*0.5/0.5 = 0.5; accept all / reject all cost 1
    assert m["min_dcf"] == pytest.approx(0.5)
    # Bayes threshold -0.64: only the spoof at -2 rejected -> fa .5, miss 0
    assert m["act_dcf"] == pytest.approx(0.5)
    sp = lambda x: math.log2(1 + math.exp(x))  # noqa: E731 - softplus in bits
    assert m["cllr"] == pytest.approx(0.5 * ((sp(-2) + sp(0)) / 2 + (sp(-2) + sp(0)) / 2))
    # PAV bins: {-2: spoof} p=0, {0: b+s} p=.5, {2: bona} p=1; prior odds 1 -> only the tie costs 1 bit
    assert m["min_cllr"] == pytest.approx(0.5)
    p = [1 / (1 + math.e**2), 0.5, 1 / (1 + math.e**-2), 0.5]  # P(spoof) for 2, 0, -2, 0
    y = [0, 0, 1, 1]
    assert m["brier"] == pytest.approx(sum((pi - yi) ** 2 for pi, yi in zip(p, y)) / 4)
    # bins: 0.119 -> bin 1, the two 0.5 -> bin 7 (mean y .5, no gap), 0.881 -> bin 13
    assert m["ece"] == pytest.approx((p[0] + (1 - p[2])) / 4)


def test_one_trial_per_class():
    good = compute_metrics([1.0, -1.0], ["bonafide", "spoof"])
    assert good["eer"] == good["eer_rocch"] == good["min_dcf"] == good["min_cllr"] == 0.0
    assert good["auc"] == 1.0
    bad = compute_metrics([-1.0, 1.0], ["bonafide", "spoof"])
    assert bad["eer"] == 1.0  # the walk passes FRR = FAR = 1 first
    assert bad["eer_rocch"] == 0.5
    assert bad["auc"] == 0.0
    assert bad["min_dcf"] == 1.0
    assert bad["min_cllr"] == pytest.approx(1.0)


def test_perfectly_separated_scores():
    bona, spoof = np.linspace(1, 5, 30), np.linspace(-5, -1, 70)
    m = compute_metrics(*labelled(bona, spoof))
    assert m["eer"] == m["eer_rocch"] == m["min_dcf"] == m["min_cllr"] == 0.0
    assert m["auc"] == 1.0
    assert m["act_dcf"] == 0.0


def test_all_equal_scores():
    m = compute_metrics(np.full(5, 0.3), ["bonafide", "bonafide", "spoof", "spoof", "spoof"])
    # as the ASVspoof packages: bona fide rejected first inside the tie, FRR = FAR = 1 on the way
    assert m["eer"] == 1.0
    assert m["eer_threshold"] == 0.3
    assert m["eer_rocch"] == 0.5
    assert m["auc"] == 0.5
    assert m["min_dcf"] == 1.0
    assert m["min_cllr"] == pytest.approx(1.0)


def test_row_order_does_not_change_any_value():
    bona, spoof = random_classes(5, 60, 90, decimals=0)
    first = compute_metrics(*labelled(bona, spoof, seed=1))
    for seed in (2, 3):
        assert compute_metrics(*labelled(bona, spoof, seed=seed)) == first


def test_extreme_scores_stay_finite():
    m = compute_metrics([800.0, -900.0, 750.0, -760.0], ["bonafide", "spoof", "spoof", "bonafide"])
    assert all(np.isfinite(m[k]) for k in METRIC_KEYS)
    assert m["brier"] == pytest.approx(0.5)


def test_accepts_pandas_and_categorical_inputs():
    bona, spoof = random_classes(9, 20, 20)
    scores, labels = labelled(bona, spoof)
    plain = compute_metrics(scores, labels)
    assert compute_metrics(pd.Series(scores), pd.Series(labels, dtype="category")) == plain
    assert compute_metrics(scores.tolist(), pd.Series(labels, dtype="string")) == plain


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([1.0, 2.0], ["bonafide", "bonafide"], "no spoof"),
        ([1.0, 2.0], ["spoof", "spoof"], "no bonafide"),
        ([], [], "no bonafide"),
        ([np.nan, 1.0], ["bonafide", "spoof"], "non-finite"),
        ([np.inf, 1.0], ["bonafide", "spoof"], "non-finite"),
        ([1.0, 2.0], ["bonafide", "fake"], "unknown label"),
        ([1.0, 2.0], ["bonafide", None], "missing label"),
        ([1.0, 2.0, 3.0], ["bonafide", "spoof"], "3 scores but 2 labels"),
        ([[1.0, 2.0]], ["bonafide", "spoof"], "one-dimensional"),
        (["a", "b"], ["bonafide", "spoof"], "numeric"),
    ],
)
def test_unusable_input_raises_metrics_error(scores, labels, message):
    with pytest.raises(MetricsError, match=message):
        compute_metrics(scores, labels)
    assert issubclass(MetricsError, ValueError)


def test_batched_counts_equal_materialised_score_sets():
    bona, spoof = random_classes(11, 40, 50, decimals=0)
    scores, labels = labelled(bona, spoof)
    groups = group_by_score(scores, labels == "bonafide")
    rng = np.random.default_rng(0)
    # random weights (0..3) per group and class: duplicated trials are extra ties
    n_bona = rng.integers(0, 4, size=(6, groups.scores.size))
    n_spoof = rng.integers(0, 4, size=(6, groups.scores.size))
    batched = metrics_from_counts(groups.scores, n_bona, n_spoof, METRIC_KEYS + ("eer_threshold",))
    for r in range(n_bona.shape[0]):
        one = compute_metrics(
            np.concatenate([np.repeat(groups.scores, n_bona[r]), np.repeat(groups.scores, n_spoof[r])]),
            ["bonafide"] * n_bona[r].sum() + ["spoof"] * n_spoof[r].sum(),
        )
        assert batched["eer"][r] == one["eer"]
        assert batched["eer_threshold"][r] == one["eer_threshold"]
        for name in METRIC_KEYS:
            assert batched[name][r] == pytest.approx(one[name], rel=1e-12, abs=1e-12), name


def test_metrics_from_counts_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown metric"):
        metrics_from_counts(np.array([0.0, 1.0]), np.array([0, 1]), np.array([1, 0]), ("eer", "f1"))


# ------------------------------------------------------------ curves and tables


def test_det_curve_matches_the_sweep():
    bona, spoof = random_classes(4, 30, 45, decimals=1)
    curve = det_curve(*labelled(bona, spoof))
    t, miss, fa = threshold_sweep(bona, spoof)
    np.testing.assert_array_equal(curve.thresholds, t)
    np.testing.assert_allclose(curve.miss, miss, atol=1e-15)
    np.testing.assert_allclose(curve.fa, fa, atol=1e-15)


def test_reliability_bins_and_ece_agree():
    bona, spoof = random_classes(6, 200, 300)
    scores, labels = labelled(bona, spoof)
    p, y = p_spoof_of(scores), labels == "spoof"
    table = reliability_bins(p, y)
    assert len(table) == 15 and table["count"].sum() == p.size
    used = table["count"] > 0
    ece = (table["count"] * (table["mean_p_spoof"] - table["frac_spoof"]).abs())[used].sum() / p.size
    assert ece == pytest.approx(compute_metrics(scores, labels)["ece"], abs=1e-12)
    assert table.loc[~used, "mean_p_spoof"].isna().all()
    edge = reliability_bins([0.0, 1.0, 0.95], [False, True, True])
    assert edge["count"].iloc[0] == 1 and edge["count"].iloc[14] == 2


def test_reliability_bins_rejects_bad_probabilities():
    with pytest.raises(MetricsError):
        reliability_bins([1.2], [True])


def score_table():
    rng = np.random.default_rng(21)
    rows = []
    for attack, shift in (("A01", 3.0), ("A02", 1.0), ("A03", -0.5)):
        for score in rng.normal(-shift, 1.0, 40):
            rows.append({"score": score, "label": "spoof", "attack": attack, "codec": rng.choice(["mp3", "opus"])})
    for score in rng.normal(1.5, 1.0, 60):
        rows.append({"score": score, "label": "bonafide", "attack": None, "codec": rng.choice(["mp3", "opus"])})
    return pd.DataFrame(rows)


def test_attack_breakdown_scores_each_attack_against_all_bona_fide():
    df = score_table()
    table = metrics_by(df, "attack", shared_bonafide=True).set_index("attack")
    assert list(table.index) == ["A01", "A02", "A03"]
    bona = df[df["label"] == "bonafide"]
    for attack in ("A01", "A02", "A03"):
        part = pd.concat([bona, df[df["attack"] == attack]])
        expected = compute_metrics(part["score"], part["label"])
        assert table.loc[attack, "n_bonafide"] == 60
        for name in METRIC_KEYS:
            assert table.loc[attack, name] == pytest.approx(expected[name], rel=1e-12)
    assert table["note"].isna().all()
    assert table.loc["A01", "eer"] < table.loc["A03", "eer"]


def test_condition_breakdown_groups_both_classes_and_notes_missing_classes():
    df = score_table()
    by_codec = metrics_by(df, "codec").set_index("codec")
    for codec in ("mp3", "opus"):
        part = df[df["codec"] == codec]
        assert by_codec.loc[codec, "eer"] == compute_metrics(part["score"], part["label"])["eer"]
    by_attack = metrics_by(df, "attack")  # without shared_bonafide: spoof-only groups
    spoof_only = by_attack[by_attack["attack"].notna()]
    assert spoof_only["eer"].isna().all()
    assert spoof_only["note"].str.contains("no bonafide").all()
    bona_only = by_attack[by_attack["attack"].isna()]
    assert len(bona_only) == 1 and bona_only["note"].iloc[0] == "no spoof rows"
    assert bona_only["n_bonafide"].iloc[0] == 60


def test_breakdown_by_several_columns():
    df = score_table()
    table = metrics_by(df, ["attack", "codec"], shared_bonafide=True)
    assert set(zip(table["attack"], table["codec"])) == set(zip(df.dropna()["attack"], df.dropna()["codec"]))
    assert table["n_spoof"].sum() == 120


def test_pooled_and_averaged():
    df = score_table()
    df["dataset"] = np.where(np.arange(len(df)) % 2 == 0, "even", "odd")
    df.loc[len(df)] = {"score": -3.0, "label": "spoof", "attack": "A01", "codec": "mp3", "dataset": "spoof_only"}
    table = pooled_and_averaged(df).set_index("aggregate")
    pooled = compute_metrics(df["score"], df["label"])
    per = [compute_metrics(g["score"], g["label"]) for _, g in df[df["dataset"] != "spoof_only"].groupby("dataset")]
    for name in METRIC_KEYS:
        assert table.loc["pooled", name] == pytest.approx(pooled[name])
        assert table.loc["average", name] == pytest.approx(np.mean([m[name] for m in per]))
    assert table.loc["pooled", "n_datasets"] == 3
    assert table.loc["average", "n_datasets"] == 2
    assert "spoof_only" in table.loc["average", "note"]
    assert np.isnan(table.loc["average", "eer_threshold"])
