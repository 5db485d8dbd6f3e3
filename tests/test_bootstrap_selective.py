"""Bootstrap confidence intervals and selective prediction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from addgp.metrics import METRIC_SPECS, MetricsError, compute_metrics
from tasks.evaluate.bootstrap import (
    bootstrap_ci,
    bootstrap_distribution,
    draw_counts,
    speaker_units,
)
from tasks.evaluate.selective import coverage_at_error, coverage_error_curve, entropy_uncertainty

METRIC_KEYS = tuple(METRIC_SPECS)  # every metric compute_metrics returns


def scores_frame(seed=0, n_speakers=30, per_speaker=20, speaker_effect=0.0):
    """Each speaker has bona fide and spoof trials; a speaker effect shifts its spoofs' scores
    (some speakers' fakes are more convincing), which makes errors cluster by speaker."""
    rng = np.random.default_rng(seed)
    rows = []
    for speaker in range(n_speakers):
        shift = rng.normal(0, speaker_effect)
        for _ in range(per_speaker):
            bona = rng.random() < 0.4
            score = rng.normal(1.5, 1.5) if bona else rng.normal(-1.5, 1.5) + shift
            rows.append({"score": score, "label": "bonafide" if bona else "spoof", "speaker": f"s{speaker}"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ bootstrap


def test_draw_counts_keeps_every_pool_size():
    rng = np.random.default_rng(0)
    pools = [np.array([0, 0, 3]), np.array([5, 6])]
    counts = draw_counts(pools, 8, 50, rng)
    assert counts.shape == (50, 8)
    assert (counts[:, [0, 3]].sum(axis=1) == 3).all()
    assert (counts[:, [5, 6]].sum(axis=1) == 2).all()
    assert (counts[:, [1, 2, 4, 7]] == 0).all()


def test_speaker_units_fall_back_to_rows_and_isolate_missing_speakers():
    df = pd.DataFrame({"speaker": ["a", None, "a", "b", None]})
    units = speaker_units(df, "speaker")
    assert units[0] == units[2] != units[3]
    assert len({units[1], units[4], units[0], units[3]}) == 4
    assert speaker_units(df, None) is None
    assert speaker_units(df, "absent") is None
    assert speaker_units(pd.DataFrame({"speaker": [None, None]}), "speaker") is None


def test_interval_brackets_the_estimate_and_is_reproducible():
    df = scores_frame()
    point = compute_metrics(df["score"], df["label"])["eer"]
    low, high = bootstrap_ci(df, "eer", n_boot=300, cluster_col=None, seed=1)
    assert low < point < high
    assert bootstrap_ci(df, "eer", n_boot=300, cluster_col=None, seed=1) == (low, high)
    assert bootstrap_ci(df, "eer", n_boot=300, cluster_col=None, seed=2) != (low, high)


def test_row_resamples_keep_class_sizes():
    # perfectly separated: every stratified resample is too, so AUC = 1 and EER = 0 always
    df = pd.DataFrame({"score": [3.0, 2.0, -1.0, -2.0, -4.0], "label": ["bonafide"] * 2 + ["spoof"] * 3})
    assert bootstrap_ci(df, "auc", n_boot=200, cluster_col=None) == (1.0, 1.0)
    assert bootstrap_ci(df, "eer", n_boot=200, cluster_col=None) == (0.0, 0.0)


def test_one_trial_per_class_gives_a_degenerate_interval():
    df = pd.DataFrame({"score": [1.0, -1.0], "label": ["bonafide", "spoof"]})
    assert bootstrap_ci(df, "eer", n_boot=50, cluster_col=None) == (0.0, 0.0)


def test_speaker_resamples_draw_whole_speakers():
    # each speaker: one bona fide and one spoof trial, so a resample of n speakers holds
    # exactly n of each; with the two swapped for one speaker the EER is a multiple of 1/n
    n = 12
    bona = np.arange(n) + 0.5
    spoof = np.arange(n) - 20.0
    spoof[0] = 100.0  # speaker 0's spoof beats every bona fide trial
    df = pd.DataFrame(
        {
            "score": np.concatenate([bona, spoof]),
            "label": ["bonafide"] * n + ["spoof"] * n,
            "speaker": [f"s{i}" for i in range(n)] * 2,
        }
    )
    values = bootstrap_distribution(df, "eer", n_boot=200, cluster_col="speaker")
    # EER = (drawn copies of speaker 0) / n, in steps of 1/n (here the FAR side only)
    assert np.allclose(values * n, np.round(values * n))
    assert values.min() == 0.0 and values.max() > 0


def test_speaker_bootstrap_is_wider_under_speaker_effects():
    df = scores_frame(seed=3, n_speakers=20, per_speaker=40, speaker_effect=2.0)
    by_row = bootstrap_ci(df, "eer", n_boot=400, cluster_col=None)
    by_speaker = bootstrap_ci(df, "eer", n_boot=400, cluster_col="speaker")
    assert by_speaker[1] - by_speaker[0] > 1.5 * (by_row[1] - by_row[0])


def test_empty_speaker_column_resamples_rows():
    df = scores_frame()
    rows = bootstrap_ci(df.drop(columns="speaker"), "cllr", n_boot=100)
    assert bootstrap_ci(df.assign(speaker=None), "cllr", n_boot=100) == rows
    assert bootstrap_ci(df, "cllr", n_boot=100, cluster_col=None) == rows


@pytest.mark.parametrize("metric", METRIC_KEYS)
def test_every_metric_can_be_bootstrapped(metric):
    df = scores_frame(n_speakers=10, per_speaker=10)
    point = compute_metrics(df["score"], df["label"])[metric]
    values = bootstrap_distribution(df, metric, n_boot=40, cluster_col="speaker")
    assert values.shape == (40,) and np.isfinite(values).all()
    assert values.min() <= point * 1.5 + 0.05 and values.max() >= point * 0.5 - 0.05


def test_bootstrap_rejects_bad_arguments():
    df = scores_frame(n_speakers=3)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(df, "accuracy")
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(df, alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(df, n_boot=0)
    with pytest.raises(MetricsError, match="no spoof"):
        bootstrap_ci(df[df["label"] == "bonafide"])


# ------------------------------------------------------------------ selective prediction


def test_entropy_uncertainty():
    s = np.array([-800.0, -3.0, -0.5, 0.0, 0.5, 3.0, 800.0])
    h = entropy_uncertainty(s)
    assert h[3] == pytest.approx(1.0)
    np.testing.assert_allclose(h, h[::-1])
    p = 1 / (1 + np.exp(s[1:-1]))
    np.testing.assert_allclose(h[1:-1], -(p * np.log2(p) + (1 - p) * np.log2(1 - p)))
    assert h[0] == h[-1] == 0.0
    assert (np.diff(h[:4]) > 0).all()


def test_error_rate_curve_by_hand():
    # decisions at threshold 0: rows 0-3 right, rows 4-5 wrong
    scores = [2.0, -2.0, 1.0, -1.0, -0.5, 0.5]
    labels = ["bonafide", "spoof", "bonafide", "spoof", "bonafide", "spoof"]
    uncertainty = [0.1, 0.2, 0.3, 0.4, 0.9, 0.5]
    curve = coverage_error_curve(scores, labels, uncertainty, coverages=[1.0, 5 / 6, 4 / 6, 0.5])
    assert curve["n_kept"].tolist() == [6, 5, 4, 3]
    assert curve["error"].tolist() == pytest.approx([2 / 6, 1 / 5, 0.0, 0.0])
    assert curve["max_uncertainty"].tolist() == [0.9, 0.5, 0.4, 0.3]
    assert coverage_at_error(curve, 0.0) == pytest.approx(4 / 6)
    assert coverage_at_error(curve, 0.25) == pytest.approx(5 / 6)
    assert coverage_at_error(curve[curve["coverage"] > 0.9], 0.1) == 0.0


def test_oracle_uncertainty_removes_all_errors():
    rng = np.random.default_rng(4)
    df = scores_frame(seed=4)
    wrong = (df["score"] < 0) != (df["label"] == "spoof")
    uncertainty = wrong.astype(float) + rng.random(len(df)) * 0.5  # errors strictly last
    curve = coverage_error_curve(df["score"], df["label"], uncertainty, coverages=np.linspace(1, 0.05, 96))
    correct_share = 1 - wrong.mean()
    assert coverage_at_error(curve, 0.0) == pytest.approx(correct_share, abs=0.01 + 1 / len(df))
    assert curve.loc[curve["coverage"] <= correct_share, "error"].eq(0).all()
    assert curve["error"].iloc[0] == pytest.approx(wrong.mean())


def test_tied_uncertainty_is_kept_or_deferred_together():
    df = scores_frame(seed=5)
    flat = coverage_error_curve(df["score"], df["label"], np.zeros(len(df)))
    assert len(flat) == 1 and flat["coverage"].iloc[0] == 1.0
    coarse = np.round(entropy_uncertainty(df["score"]), 1)
    curve = coverage_error_curve(df["score"], df["label"], coarse)
    shuffled = np.random.default_rng(0).permutation(len(df))
    again = coverage_error_curve(df["score"].to_numpy()[shuffled], df["label"].to_numpy()[shuffled], coarse[shuffled])
    pd.testing.assert_frame_equal(curve, again)
    kept_at_cut = [(coarse <= cut).sum() for cut in curve["max_uncertainty"]]
    assert curve["n_kept"].tolist() == kept_at_cut


def test_eer_curve_matches_eer_of_kept_trials():
    df = scores_frame(seed=6)
    uncertainty = entropy_uncertainty(df["score"])
    curve = coverage_error_curve(df["score"], df["label"], uncertainty, error="eer", coverages=[1.0, 0.7, 0.4, 0.1])
    for _, row in curve.iterrows():
        kept = df[uncertainty <= row["max_uncertainty"]]
        if kept["label"].nunique() == 2:
            assert row["error"] == compute_metrics(kept["score"], kept["label"])["eer"]
        else:
            assert math.isnan(row["error"])
    assert curve["error"].iloc[0] == compute_metrics(df["score"], df["label"])["eer"]


def test_eer_curve_is_nan_once_a_class_is_gone():
    scores = [5.0, 4.0, -0.1, 0.1]
    labels = ["bonafide", "bonafide", "spoof", "spoof"]
    curve = coverage_error_curve(scores, labels, entropy_uncertainty(scores), error="eer", coverages=[1.0, 0.5])
    assert curve["error"].iloc[0] == 0.0
    assert math.isnan(curve["error"].iloc[1])


def test_selective_rejects_bad_arguments():
    scores, labels = [1.0, -1.0], ["bonafide", "spoof"]
    with pytest.raises(ValueError, match="error must be"):
        coverage_error_curve(scores, labels, [0.1, 0.2], error="f1")
    with pytest.raises(ValueError, match="coverages"):
        coverage_error_curve(scores, labels, [0.1, 0.2], coverages=[0.0])
    with pytest.raises(MetricsError, match="finite"):
        coverage_error_curve(scores, labels, [np.nan, 0.2])
    with pytest.raises(MetricsError, match="uncertainties"):
        coverage_error_curve(scores, labels, [0.1])
