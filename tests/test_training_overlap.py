"""Training overlap (tasks/evaluate/overlap.py): eval sets a detector trained on, by name or content
digest, are left out of (or marked in) its headline average, and the report says which and the policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_crossdataset import make_scores
from test_report_notes import ingested_corpus

from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.evaluate.overlap import card_overlap_columns, with_card_overlap_columns
from tasks.report.build import ReportInput, render_report
from tasks.report.content import ModelEntry
from tasks.report.notes import RunNotes
from tasks.train.training_sets import content_digest, training_sets

DATASETS = ("studio", "phone", "street")


def card(sets: dict) -> dict:
    return {"training_data": {"datasets": sorted({k.split("/")[0] for k in sets}), "splits": ["train"], "sets": sets}}


def scores_with_cards() -> tuple[pd.DataFrame, dict]:
    """lr trained on studio/train only (no overlap); gp also on phone/eval by name and on a set whose
    audio is street/eval's under another name (overlap by content digest)."""
    scores = make_scores(detectors=("lr", "gp"), datasets=DATASETS, n=120)
    scores["sha256"] = [f"{d}-{u}" for d, u in zip(scores["dataset"], scores["utt_id"])]
    street = scores[(scores["dataset"] == "street") & (scores["detector"] == "lr")]
    scores["eval_set_digest"] = [
        content_digest(scores.loc[(scores["dataset"] == d) & (scores["detector"] == "lr"), "sha256"])
        for d in scores["dataset"]
    ]
    cards = {
        "lr": card({"studio/train": {"rows": 10, "content_sha256": "a" * 64}}),
        "gp": card(
            {
                "studio/train": {"rows": 10, "content_sha256": "a" * 64},
                "phone/eval": {"rows": 120, "content_sha256": "b" * 64},
                "street_copy/train": {"rows": len(street), "content_sha256": content_digest(street["sha256"])},
            }
        ),
    }
    return with_card_overlap_columns(scores, cards), cards


def test_overlapping_sets_are_excluded_from_the_average_and_named():
    scores, _ = scores_with_cards()
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=20))
    cells = evaluation.cells.set_index(["detector", "dataset"])
    assert cells["training_overlap"].isna()[("lr",)].all()
    assert cells.loc[("gp", "phone"), "training_overlap"] == "trained on phone/eval"
    assert cells.loc[("gp", "street"), "training_overlap"].startswith("same audio as a training set")
    assert cells.loc[("gp", "studio"), "training_overlap"] is None  # in-domain studio/eval: not trained on
    summary = evaluation.summary.set_index("detector")
    assert summary.loc["lr", "excluded_for_overlap"] == [] and summary.loc["lr", "corpora"] == list(DATASETS)
    assert summary.loc["gp", "excluded_for_overlap"] == ["phone", "street"]
    assert summary.loc["gp", "corpora"] == ["studio"] and summary.loc["gp", "n_corpora"] == 1
    assert np.isclose(summary.loc["gp", "average_eer"], cells.loc[("gp", "studio"), "eer"])
    assert set(summary["overlap_policy"]) == {"exclude"}


def test_mark_policy_keeps_them_in_the_average():
    scores, _ = scores_with_cards()
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=20, training_overlap="mark"))
    summary = evaluation.summary.set_index("detector")
    assert summary.loc["gp", "excluded_for_overlap"] == [] and summary.loc["gp", "n_corpora"] == 3
    assert evaluation.cells["training_overlap"].notna().sum() == 2
    with pytest.raises(ValueError, match="training_overlap must be one of exclude, mark"):
        EvaluationSettings(training_overlap="drop")


def _markdown(evaluation, scores) -> str:
    detectors = list(pd.unique(scores["detector"]))
    files = render_report(
        ReportInput(
            title="t",
            run_id="20250101T000000Z-t",
            models=[ModelEntry(d, "logreg", 1) for d in detectors],
            encoder="enc",
            warnings=[],
            evaluation=evaluation,
            scores=scores,
        )
    )
    return files["report.md"].decode() if isinstance(files["report.md"], bytes) else files["report.md"]


def test_report_names_what_each_average_covers_excludes_and_the_policy():
    scores, _ = scores_with_cards()
    markdown = _markdown(evaluate_scores(scores, EvaluationSettings(n_boot=20)), scores)
    assert "Training overlap" in markdown and "policy: exclude" in markdown
    assert "averaged: studio, phone, street · excluded for training overlap: none" in markdown
    assert "averaged: studio · excluded for training overlap: **phone, street**" in markdown
    assert "⊘" in markdown
    # a table without cards (no train_sets column): nothing excluded, said so
    plain = make_scores(detectors=("lr",), datasets=DATASETS, n=60)
    assert "excluded for training overlap: none" in _markdown(
        evaluate_scores(plain, EvaluationSettings(n_boot=0)), plain
    )


def test_card_records_sets_by_name_and_content():
    rows = pd.DataFrame(
        {"dataset": ["a", "a", "a", "b"], "split": ["train", "train", "dev", "train"], "sha256": ["x", "y", "z", "x"]}
    )
    sets = training_sets(rows)
    assert sets == {
        "a/dev": {"rows": 1, "content_sha256": content_digest(["z"])},
        "a/train": {"rows": 2, "content_sha256": content_digest(["y", "x"])},
        "b/train": {"rows": 1, "content_sha256": content_digest(["x"])},
    }
    assert card_overlap_columns({"training_data": {"sets": sets}})["train_sets"] == "a/dev\na/train\nb/train"
    assert card_overlap_columns(None) == {"train_sets": "", "train_digests": ""}


def test_report_shows_the_label_policy_of_corpora_with_resynthesised_audio():
    scores, _ = scores_with_cards()
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=0))
    files = render_report(
        ReportInput(
            title="t",
            run_id="20250101T000000Z-t",
            models=[ModelEntry("lr", "logreg", 1)],
            encoder="enc",
            warnings=[],
            notes=RunNotes(
                ingest={
                    "phone": ingested_corpus("phone", "/m/phone.parquet", rows=120, resynthesised=7),
                    "studio": ingested_corpus("studio", "/m/studio.parquet", rows=120),
                }
            ),
            evaluation=evaluation,
            scores=scores,
        )
    )
    markdown = files["report.md"] if isinstance(files["report.md"], str) else files["report.md"].decode()
    assert "Label policy for resynthesised audio" in markdown
    assert "phone: resynthesised=spoof (corpus label) (7 resynthesised rows)" in markdown
    assert "studio:" not in markdown.split("Label policy for resynthesised audio")[1].split("\n")[0]
