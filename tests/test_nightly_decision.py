"""The nightly decision's details on generated scores (issue 16, point 6): held-out row counts
and paired CIs per slice, the champion in service on every night, a quiet night's
re-evaluation, the inbox's rejects, and the champion's recorded measurements."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from nightly_report_fixtures import decided, evaluation, inbox_batch

from storage import champions, night_state
from tasks.nightly.compare import EVAL_CORPORA, HELD_OUT, NEW_FAKES, held_out_evidence
from tasks.nightly.rejects import rejects_by_reason
from tasks.report.nightly import NightlyOutcome, render_nightly_report


def slice_scores(dataset: str, n_bona: int, n_spoof: int, separation: dict[str, float], seed: int) -> pd.DataFrame:
    """Both models' scores on the same rows: a shared per-row difficulty plus each model's own
    separation of the classes (LLR convention: bona fide high)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["bonafide"] * n_bona + ["spoof"] * n_spoof)
    difficulty = rng.standard_normal(labels.size)
    frames = []
    for detector, gap in separation.items():
        sign = np.where(labels == "bonafide", 1.0, -1.0)
        score = sign * gap / 2 + difficulty + 0.3 * rng.standard_normal(labels.size)
        frames.append(
            pd.DataFrame(
                {
                    "utt_id": [f"u{i}" for i in range(labels.size)],
                    "dataset": dataset,
                    "label": labels,
                    "detector": detector,
                    "score": score,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_held_out_evidence_counts_rows_and_gives_a_paired_ci_per_slice():
    same = slice_scores("demo_studio", 60, 140, {"champion": 1.0, "challenger": 1.0}, seed=1)
    # new fakes: the challenger separates them far better; bona fide borrowed from an eval corpus
    new = slice_scores(NEW_FAKES, 0, 90, {"champion": 0.5, "challenger": 4.0}, seed=2)
    bona = same[same["label"] == "bonafide"].assign(dataset=NEW_FAKES, borrowed=True)
    new = pd.concat([new.assign(source_dataset="inbox"), bona.assign(source_dataset="demo_studio")], ignore_index=True)
    scores = pd.concat([new, same], ignore_index=True)

    evidence = held_out_evidence(scores, n_boot=300)
    assert list(evidence["dataset"]) == ["demo_studio", NEW_FAKES], "eval corpora first, new fakes last"
    studio, fakes = evidence.iloc[0], evidence.iloc[1]
    assert (studio["n_bonafide"], studio["n_spoof"]) == (60, 140)
    assert (fakes["n_bonafide"], fakes["n_spoof"]) == (60, 90)
    assert fakes["bonafide_from"] == EVAL_CORPORA and pd.isna(studio["bonafide_from"])
    # a clear improvement: the interval of champion − challenger lies above 0
    assert fakes["difference"] == pytest.approx(fakes["champion_eer"] - fakes["challenger_eer"])
    assert 0 < fakes["difference_ci_low"] <= fakes["difference"] <= fakes["difference_ci_high"]
    # equally good models: the interval straddles 0
    assert studio["difference_ci_low"] < 0 < studio["difference_ci_high"]
    again = held_out_evidence(scores, n_boot=300)
    pd.testing.assert_frame_equal(evidence, again)  # seeded: a resumed night shows the same figures


def test_the_paired_ci_is_tighter_than_comparing_two_independent_intervals():
    """What the pairing buys: the rows' shared difficulty cancels in the difference."""
    scores = slice_scores(NEW_FAKES, 80, 80, {"champion": 1.5, "challenger": 2.0}, seed=3)
    paired = held_out_evidence(scores, n_boot=400).iloc[0]
    unpaired = scores.assign(utt_id=scores["utt_id"] + "-" + scores["detector"])  # no row shared
    independent = held_out_evidence(unpaired, n_boot=400).iloc[0]
    assert paired["bonafide_from"] == HELD_OUT
    width = paired["difference_ci_high"] - paired["difference_ci_low"]
    assert width < 0.8 * (independent["difference_ci_high"] - independent["difference_ci_low"])


def rejects_table() -> pd.DataFrame:
    rows = [("inbox", f"/drop/x/{i}.wav", f"x/{i}", "no sidecar entry (label unknown)") for i in range(5)]
    rows.append(("inbox", "/drop/2026-12-01/sidecar.csv:3", None, "unknown label 'maybe'"))
    return pd.DataFrame(rows, columns=["dataset", "source", "utt_id", "reason"])


def test_inbox_rejects_are_counted_per_reason_with_examples():
    summary = rejects_by_reason(rejects_table(), examples=3)
    assert list(summary["reason"]) == ["no sidecar entry (label unknown)", "unknown label 'maybe'"]
    assert list(summary["count"]) == [5, 1]
    assert summary["examples"].iloc[0] == ["x/0", "x/1", "x/2"]
    assert summary["examples"].iloc[1] == ["2026-12-01/sidecar.csv:3"], "no absolute path in a report"
    many = pd.DataFrame(
        [("inbox", f"s{i}", f"u{i}", f"reason {i}") for i in range(12)],
        columns=["dataset", "source", "utt_id", "reason"],
    )
    folded = rejects_by_reason(many, top=10)
    assert len(folded) == 11 and folded["reason"].iloc[-1] == "2 other reasons" and folded["count"].sum() == 12
    assert rejects_by_reason(many.iloc[:0]).empty


CHAMPION = {
    "model_path": "/secret/models/lr/v2",
    "version": 2,
    "promoted_at": "night-1",
    "promoted_on": "2026-12-02T02:00:00+00:00",
    "run_id": "night-1",
    "eer": {"demo_studio": 0.10, "demo_phone": 0.20},
}


def test_a_quiet_night_reports_the_champion_re_evaluated_and_its_drift():
    reevaluation = pd.DataFrame(
        {
            "dataset": ["demo_studio", "demo_phone"],
            "n_bonafide": [30, 30],
            "n_spoof": [70, 70],
            "eer": [0.12, 0.24],
            "eer_ci_low": [0.05, 0.15],
            "eer_ci_high": [0.2, 0.33],
            "eer_at_promotion": [0.10, 0.20],
            "change": [0.02, 0.04],
        }
    )
    history = [evaluation("night-1", 2, 0.15), evaluation("night-2", 2, 0.18)]
    outcome = NightlyOutcome(
        "night",
        "night-2",
        [],
        champion=night_state.champion_from_json(CHAMPION),
        reevaluation=reevaluation,
        champion_history=history,
        rejects=rejects_by_reason(rejects_table()),
    )
    files = render_nightly_report(outcome)
    for text in (files["index.html"], files["report.md"]):
        assert (
            "No new data; champion re-evaluated: average EER 18.00 % on the eval corpora (15.00 % at its promotion)"
            in text
        )
        assert "Champion in service" in text and "lr/v2" in text and "/secret/" not in text
        assert "in service since 2026-12-02 (run night-1)" in text and "18.00 % tonight" in text
        assert "15.00, 33.00" in text and "+4.00" in text  # demo_phone: its CI and its change since promotion
        assert "Inbox rejects" in text and "no sidecar entry (label unknown)" in text and "x/0, x/1, x/2" in text
    assert "<table id='champion-reevaluation'>" in files["index.html"]
    assert "<table id='champion-history'>" in files["index.html"]
    document = json.loads(files["metrics.json"])
    assert document["nothing_new"] and [r["n_spoof"] for r in document["champion_reevaluation"]] == [70, 70]
    assert (
        document["champion_history"] == [night_state.evaluation_to_json(e) for e in history]
        and document["inbox_rejects"][0]["count"] == 5
    )


def test_every_night_shows_the_champion_in_service_and_the_held_out_evidence():
    evidence = pd.DataFrame(
        [
            {
                "dataset": NEW_FAKES,
                "n_bonafide": 12,
                "n_spoof": 34,
                "champion_eer": 0.3,
                "challenger_eer": 0.1,
                "difference": 0.2,
                "difference_ci_low": 0.05,
                "difference_ci_high": 0.35,
                "bonafide_from": HELD_OUT,
            }
        ]
    )
    busy = NightlyOutcome(
        "night",
        "night-3",
        [inbox_batch("2026-12-03-elevenlabs", n_bonafide=20, n_spoof=40)],
        decision=decided(True, "better on the new fakes (0.1000 < 0.3000) and within the CI"),
        eer=pd.DataFrame({"champion": [0.3], "challenger": [0.1]}, index=[NEW_FAKES]),
        champion=night_state.champion_from_json(CHAMPION),
        evidence=evidence,
        champion_history=[evaluation("night-3", 2, 0.16)],
        rejects=rejects_by_reason(rejects_table().iloc[:0]),
    )
    files = render_nightly_report(busy)
    for text in (files["index.html"], files["report.md"]):
        assert "Held-out evidence" in text and "held-out inbox rows" in text and "+20.00" in text
        assert "5.00, 35.00" in text and "34" in text and "12" in text
        assert "Champion in service" in text and "16.00 % tonight" in text
        assert "No file in the drop folder was rejected" in text
    document = json.loads(files["metrics.json"])
    assert document["evidence"][0]["n_spoof"] == 34 and document["evidence"][0]["difference_ci_low"] == 0.05

    first = render_nightly_report(NightlyOutcome("night", "night-0", []))
    for text in (first["index.html"], first["report.md"]):
        assert "Nothing new in the inbox tonight and no champion yet" in text
        assert "Champion in service" in text and "No champion yet" in text


def test_the_champion_record_keeps_one_measurement_per_night_and_reads_old_records(tmp_path):
    (tmp_path / "champion-lr.json").write_text(json.dumps({"current": CHAMPION, "history": []}))
    assert champions.read_champions(tmp_path, "lr")["evaluations"] == []  # written before evaluations existed
    first = {"run_id": "night-2", "version": 2, "eer": {"a": 0.1}, "average_eer": 0.1}
    champions.record_evaluation(tmp_path, "lr", first)
    champions.record_evaluation(tmp_path, "lr", {**first, "average_eer": 0.5})  # a resumed night repeats it
    champions.record_evaluation(tmp_path, "lr", {**first, "run_id": "night-3", "average_eer": 0.2})
    record = champions.read_champions(tmp_path, "lr")
    assert [(e["run_id"], e["average_eer"]) for e in record["evaluations"]] == [("night-2", 0.1), ("night-3", 0.2)]
    assert record["current"] == CHAMPION
