"""The cross-dataset evaluation on generated score tables: matrix, averages, CIs, breakdowns, selective prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from addgp.contracts import p_spoof_from_score
from addgp.metrics import compute_metrics, metrics_by
from tasks.evaluate.crossdataset import (
    MISSING_ATTACK,
    UNKNOWN_SETTING,
    EvaluationSettings,
    cross_dataset_matrix,
    evaluate_scores,
    train_setting,
    with_train_columns,
)
from tasks.evaluate.selective import coverage_at_error, coverage_error_curve, entropy_uncertainty

DATASETS = ("studio", "phone", "far")


def make_scores(
    seed: int = 0,
    datasets=DATASETS,
    detectors=("lr", "gp"),
    n: int = 160,
    separation: dict | None = None,
    speakers: bool = True,
    codec: bool = True,
) -> pd.DataFrame:
    """A score table like the evaluate stage writes: each detector separates the classes less on harder corpora.

    ``separation`` maps (detector, dataset) to the distance between the class means (LLR units).
    The GP gets a variance that is larger for the trials close to the boundary.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for i, detector in enumerate(detectors):
        for k, dataset in enumerate(datasets):
            sep = (separation or {}).get((detector, dataset), 4.0 - 1.0 * k - 0.4 * i)
            bona = rng.random(n) < 0.4
            score = np.where(bona, rng.normal(sep / 2, 1, n), rng.normal(-sep / 2, 1, n))
            frame = pd.DataFrame(
                {
                    "utt_id": [f"{dataset}_{j:04d}" for j in range(n)],
                    "dataset": dataset,
                    "split": "eval",
                    "label": np.where(bona, "bonafide", "spoof"),
                    "attack": np.where(bona, None, rng.choice(["A01", "A02", "A03"], n)),
                    "speaker": [f"{dataset}-spk{j % 20}" for j in range(n)] if speakers else None,
                    "detector": detector,
                    "score": score,
                    "p_spoof": p_spoof_from_score(score),
                    "variance": 1.0 / (0.2 + np.abs(score)) + rng.gamma(1.0, 0.05, n) if detector == "gp" else np.nan,
                    "train_setting": f"{datasets[0]} (train)",
                    "train_datasets": datasets[0],
                }
            )
            if codec:
                frame["codec"] = rng.choice(["none", "mp3"], n)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


FAST = EvaluationSettings(n_boot=200)


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return make_scores()


@pytest.fixture(scope="module")
def evaluation(scores):
    return evaluate_scores(scores, FAST)


def test_matrix_cells_are_the_metrics_of_each_detector_corpus_pair(scores, evaluation):
    matrix = evaluation.matrix("eer")
    assert list(matrix.columns) == list(DATASETS)  # evaluation order, not alphabetical
    assert list(matrix.index) == [("lr", "studio (train)"), ("gp", "studio (train)")]
    for (detector, _setting), row in matrix.iterrows():
        for dataset, value in row.items():
            cell = scores[(scores["detector"] == detector) & (scores["dataset"] == dataset)]
            assert value == pytest.approx(compute_metrics(cell["score"], cell["label"])["eer"], abs=1e-12)
    # harder corpora give higher EER on this generated data
    assert (matrix["studio"] < matrix["far"]).all()


def test_summary_row_is_the_unweighted_average_and_pooled_is_separate(scores, evaluation):
    summary = evaluation.summary.set_index("detector")
    matrix = evaluation.matrix("eer").droplevel("train_setting")
    for detector in ("lr", "gp"):
        row = summary.loc[detector]
        assert row["average_eer"] == pytest.approx(matrix.loc[detector].mean())
        assert row["n_corpora"] == 3 and row["corpora"] == list(DATASETS)
        assert row["out_of_domain_average_eer"] == pytest.approx(matrix.loc[detector, ["phone", "far"]].mean())
        mine = scores[scores["detector"] == detector]
        assert row["pooled_eer"] == pytest.approx(compute_metrics(mine["score"], mine["label"])["eer"])
        assert row["average_eer_ci_low"] <= row["average_eer"] <= row["average_eer_ci_high"]
    aggregates = evaluation.aggregates
    assert set(aggregates["aggregate"]) == {"pooled", "average"}
    assert aggregates.loc[
        (aggregates["detector"] == "lr") & (aggregates["aggregate"] == "average"), "eer"
    ].item() == pytest.approx(summary.loc["lr", "average_eer"])


def test_in_domain_marks_the_training_corpora(evaluation):
    cells = evaluation.cells
    assert cells.loc[cells["dataset"] == "studio", "in_domain"].all()
    assert not cells.loc[cells["dataset"] != "studio", "in_domain"].any()


def test_bootstrap_cis_bracket_the_estimate_resample_speakers_and_are_deterministic(scores, evaluation):
    cells = evaluation.cells
    for metric in FAST.ci_metrics:
        assert (cells[f"{metric}_ci_low"] <= cells[metric] + 1e-12).all(), metric
        assert (cells[metric] <= cells[f"{metric}_ci_high"] + 1e-12).all(), metric
        assert (cells[f"{metric}_ci_high"] > cells[f"{metric}_ci_low"]).all(), metric
    assert set(cells["ci_unit"]) == {"speaker"}
    again = evaluate_scores(scores, FAST)
    pd.testing.assert_frame_equal(again.cells, cells)
    no_speakers = evaluate_scores(make_scores(speakers=False, detectors=("lr",)), FAST)
    assert set(no_speakers.cells["ci_unit"]) == {"utterance"}


def test_no_bootstrap_gives_nan_cis():
    evaluation = evaluate_scores(make_scores(detectors=("lr",), n=60), EvaluationSettings(n_boot=0))
    assert evaluation.cells["eer_ci_low"].isna().all() and evaluation.cells["ci_unit"].isna().all()
    assert np.isnan(evaluation.summary["average_eer_ci_low"].item())


def test_a_corpus_missing_a_class_is_noted_and_left_out_of_the_average():
    scores = make_scores(detectors=("lr",))
    scores = scores[~((scores["dataset"] == "far") & (scores["label"] == "bonafide"))]
    evaluation = evaluate_scores(scores, FAST)
    far = evaluation.cells.set_index("dataset").loc["far"]
    assert far["note"] == "no bonafide rows" and np.isnan(far["eer"]) and np.isnan(far["eer_ci_low"])
    summary = evaluation.summary.iloc[0]
    assert summary["n_corpora"] == 2 and summary["n_corpora_evaluated"] == 3
    assert summary["average_eer"] == pytest.approx(
        evaluation.cells.set_index("dataset").loc[["studio", "phone"], "eer"].mean()
    )
    assert set(evaluation.selective["dataset"]) == {"studio", "phone"}


def test_attack_breakdown_scores_each_attack_against_all_bona_fide(scores, evaluation):
    cell = scores[(scores["detector"] == "lr") & (scores["dataset"] == "phone")]
    expected = metrics_by(cell, "attack", shared_bonafide=True).set_index("attack")
    got = evaluation.attacks[
        (evaluation.attacks["detector"] == "lr") & (evaluation.attacks["dataset"] == "phone")
    ].set_index("attack")
    assert list(got.index) == ["A01", "A02", "A03"]
    for attack in got.index:
        assert got.loc[attack, "eer"] == pytest.approx(expected.loc[attack, "eer"])
        assert got.loc[attack, "n_bonafide"] == (cell["label"] == "bonafide").sum()


def test_spoofs_without_attack_id_get_their_own_group():
    scores = make_scores(detectors=("lr",), datasets=("studio",))
    spoof = scores.index[scores["label"] == "spoof"]
    scores.loc[spoof[:10], "attack"] = None
    attacks = evaluate_scores(scores, FAST).attacks
    assert MISSING_ATTACK in set(attacks["attack"])


def test_condition_breakdown_only_where_the_column_exists(evaluation):
    conditions = evaluation.conditions
    assert set(conditions["factor"]) == {"codec"}
    assert set(conditions["value"]) == {"none", "mp3"}
    assert (conditions["n_bonafide"] > 0).all()
    plain = evaluate_scores(make_scores(detectors=("lr",), codec=False), FAST)
    assert plain.conditions.empty


def test_selective_prediction_uses_gp_variance_or_entropy(scores, evaluation):
    selective = evaluation.selective.set_index(["detector", "dataset"])
    assert set(selective.loc["gp", "uncertainty"]) == {"gp_variance"}
    assert set(selective.loc["lr", "uncertainty"]) == {"entropy"}
    cell = scores[(scores["detector"] == "lr") & (scores["dataset"] == "far")]
    curve = coverage_error_curve(cell["score"].to_numpy(), cell["label"], entropy_uncertainty(cell["score"].to_numpy()))
    assert selective.loc[("lr", "far"), "coverage_at_target"] == coverage_at_error(curve, 0.05)
    assert selective.loc[("lr", "far"), "error_at_full_coverage"] == pytest.approx(
        ((cell["score"] < 0) != (cell["label"] == "spoof")).mean()
    )
    # deferring uncertain trials helps: the covered share at 5 % error is larger on the easy corpus
    assert selective.loc[("lr", "studio"), "coverage_at_target"] > selective.loc[("lr", "far"), "coverage_at_target"]
    curves = evaluation.selective_curves
    assert set(curves.columns) == {"detector", "dataset", "coverage", "error"}
    assert curves.groupby(["detector", "dataset"]).size().min() > 10


def test_train_settings_come_from_model_cards():
    card = {"training_data": {"datasets": ["asvspoof2019_la", "mlaad"], "splits": ["train"]}}
    assert train_setting(card) == ("asvspoof2019_la + mlaad (train)", ["asvspoof2019_la", "mlaad"])
    assert train_setting({}) == (UNKNOWN_SETTING, [])
    scores = make_scores(detectors=("lr", "gp"), datasets=("asvspoof2019_la", "itw")).drop(
        columns=["train_setting", "train_datasets"]
    )
    labelled = with_train_columns(scores, {"lr": card})
    assert set(labelled.loc[labelled["detector"] == "lr", "train_setting"]) == {"asvspoof2019_la + mlaad (train)"}
    assert set(labelled.loc[labelled["detector"] == "gp", "train_setting"]) == {UNKNOWN_SETTING}
    evaluation = evaluate_scores(labelled, EvaluationSettings(n_boot=0))
    lr = evaluation.cells[evaluation.cells["detector"] == "lr"].set_index("dataset")
    assert bool(lr.loc["asvspoof2019_la", "in_domain"]) and not bool(lr.loc["itw", "in_domain"])
    assert not evaluation.cells.loc[evaluation.cells["detector"] == "gp", "in_domain"].any()


def test_eight_corpus_matrix_with_two_train_settings():
    """The Pascu et al. layout: detectors trained on different data, scored on eight corpora."""
    corpora = tuple(f"corpus{i}" for i in range(8))
    scores = make_scores(datasets=corpora, detectors=("lr_a", "lr_b"), n=80, speakers=False, codec=False)
    scores.loc[scores["detector"] == "lr_b", ["train_setting", "train_datasets"]] = [
        "corpus3 + corpus4 (train)",
        "corpus3\ncorpus4",
    ]
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=50))
    matrix = evaluation.matrix()
    assert matrix.shape == (2, 8)
    assert list(matrix.index.get_level_values("train_setting")) == ["corpus0 (train)", "corpus3 + corpus4 (train)"]
    assert evaluation.summary["n_corpora"].tolist() == [8, 8]
    in_domain = evaluation.matrix("in_domain")
    assert in_domain.loc[("lr_b", "corpus3 + corpus4 (train)")].tolist() == [
        False,
        False,
        False,
        True,
        True,
        False,
        False,
        False,
    ]
    assert evaluation.summary.set_index("detector").loc["lr_b", "n_out_of_domain"] == 6


def test_matrix_leaves_cells_not_evaluated_empty():
    scores = make_scores(detectors=("lr", "gp"))
    scores = scores[~((scores["detector"] == "gp") & (scores["dataset"] == "far"))]
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=0))
    matrix = cross_dataset_matrix(evaluation.cells, "eer", list(DATASETS))
    assert np.isnan(matrix.loc[("gp", "studio (train)"), "far"]) and not np.isnan(
        matrix.loc[("lr", "studio (train)"), "far"]
    )


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="lacks column"):
        evaluate_scores(pd.DataFrame({"score": [1.0], "label": ["spoof"]}))
    with pytest.raises(ValueError, match="n_boot"):
        EvaluationSettings(n_boot=-1)


def test_score_rows_carry_train_setting_and_conditions():
    from tasks.evaluate.scoring import score_rows

    class Data:
        rows = pd.DataFrame(
            {
                "utt_id": ["a", "b"],
                "dataset": ["d", "d"],
                "split": ["eval"] * 2,
                "label": ["bonafide", "spoof"],
                "attack": [None, "A01"],
                "speaker": [None, None],
                "codec": ["mp3", "none"],
                "language": [None, None],
            }
        )
        X = np.zeros((2, 3))

    class Detector:
        def score_llr(self, X):
            return np.array([1.0, -2.0])

    card = {"training_data": {"datasets": ["d"], "splits": ["train"]}}
    frame = score_rows(Detector(), "lr", Data(), card)
    assert frame["train_setting"].tolist() == ["d (train)"] * 2 and frame["train_datasets"].tolist() == ["d"] * 2
    assert "codec" in frame.columns and "language" not in frame.columns  # all-null conditions are left out
    assert frame["variance"].isna().all()
    assert frame["p_spoof"].tolist() == pytest.approx(p_spoof_from_score([1.0, -2.0]).tolist())
