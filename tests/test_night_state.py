"""The nightly state files read into typed values and written back byte for byte
(storage/night_state.py, storage/nightly_records.py): a champion or night file of any step, a
drift history and an evidence pool round-trip unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from addgp.drift import VarianceTest, VarianceUnmeasured
from addgp.nightly import ChallengerRecord, ChampionRecord, EvidencePool, InboxBatch, Night
from storage import champions, night_state, nightly_records
from storage.state import write_state

BASELINE = {"model_path": "/w/models/lr/v1", "version": 1, "run_id": "n1", "eer": None}
FIRST_DECIDED = {
    **BASELINE,
    "eer": {"a": 0.1, "b": 0.2},
    "promoted_at": "n1",
    "promoted_on": "2026-12-01T02:00:00+00:00",
}
PROMOTED = {**FIRST_DECIDED, "model_path": "/w/models/lr/v2", "version": 2, "batches": ["b1", "b2"]}
BY_HAND = {"model_path": "/w/models/lr/v3", "version": 3, "eer": None}  # the fix the champion file's error names
COST = {"wall_s": 12.5, "rows_learnt": 540, "inbox_rows": 40}
WITH_STEP = {**PROMOTED, "step": "consolidate", "cost": COST}  # tasks/nightly/consolidation.py
BASELINE_FIT = {**BASELINE, "step": "fit", "cost": {"wall_s": None, "rows_learnt": 500, "inbox_rows": 0}}


@pytest.mark.parametrize("record", [BASELINE, FIRST_DECIDED, PROMOTED, BY_HAND, WITH_STEP, BASELINE_FIT])
def test_a_champion_record_round_trips_to_the_same_file(tmp_path, record):
    write_state(tmp_path / "champion-lr.json", {"current": record, "history": [], "evaluations": []})
    before = (tmp_path / "champion-lr.json").read_bytes()
    champion = night_state.current_champion(tmp_path, "lr")
    assert isinstance(champion, ChampionRecord) and champion.model_path == record["model_path"]
    write_state(
        tmp_path / "champion-lr.json",
        {"current": night_state.champion_to_json(champion), "history": [], "evaluations": []},
    )
    assert (tmp_path / "champion-lr.json").read_bytes() == before


def _night_file(tmp_path: Path) -> bytes:
    return (tmp_path / "night-lr.json").read_bytes()


@pytest.mark.parametrize(
    "steps",
    [
        {},
        {"champion": None},
        {"challenger": {"name": "lr", "kind": "logreg", "path": "/w/models/lr/v2", "version": 2}},
        {
            "champion": BASELINE_FIT,
            "challenger": {
                "name": "lr",
                "kind": "dkl_gp",
                "path": "/w/models/lr/v2",
                "version": 2,
                "step": "update",
                "cost": COST,
            },
        },
        {"evidence_pool": {"champion": "/w/models/lr/v1", "nights": [], "held_out": [], "learn": []}, "resumed": 2},
        {
            "evidence_pool": {
                "champion": "/w/models/lr/v1",
                "nights": ["n1"],
                "held_out": [["inbox", "u0"]],
                "learn": [["inbox", "u1"], ["inbox", "u2"]],
            }
        },
    ],
)
def test_a_night_record_round_trips_to_the_same_file(tmp_path, steps):
    record = {
        "run_id": "n2",
        "batch_ids": ["b1"],
        "batches": [
            {
                "batch_id": "b1",
                "folder": "2026-12-01",
                "created_at": "2026-12-01T01:00:00+00:00",
                "n_files": 3,
                "n_bonafide": 1,
                "n_spoof": 2,
                "hours": 0.0021,
            }
        ],
        "started_at": "2026-12-01T02:00:00+00:00",
        "champion": BASELINE,
        **steps,
    }
    champions.save_night(tmp_path, "lr", record)
    before = _night_file(tmp_path)
    night = night_state.night_in_progress(tmp_path, "lr")
    assert isinstance(night, Night) and night.batch_ids == ["b1"]
    night_state.save_night(tmp_path, "lr", night)
    assert _night_file(tmp_path) == before


def test_the_steps_of_a_night_are_typed(tmp_path):
    batch = InboxBatch("b1", None, "2026-12-01T01:00:00+00:00", 3, 1, 2, 0.0021)
    night = Night("n2", ["b1"], [batch], champion=ChampionRecord("/w/models/lr/v1", version=1))
    done = replace(night, challenger=ChallengerRecord("lr", "logreg", "/w/models/lr/v2", 2))
    night_state.save_night(tmp_path, "lr", done)
    again = night_state.night_in_progress(tmp_path, "lr")
    assert again == done and again.challenger is not None and again.challenger.version == 2
    assert not again.nothing_new and Night("n3").nothing_new


MMD = {"n_reference": 80, "n_tonight": 46, "alpha": 0.01, "mmd2": 0.05, "threshold": 0.012, "p_value": 0.005}
VARIANCE = {
    "available": True,
    "reference_median": 0.11,
    "tonight_median": 0.34,
    "reference_q95": 0.3,
    "share_above_q95": 0.52,
    "expected_share": 0.05,
    "p_value": 1e-9,
    "alpha": 0.01,
    "drifted": True,
}
DRIFT_NIGHTS = [
    {  # a GP champion: both tests
        "run_id": "n1",
        "champion_version": 1,
        "variance_reference": "dev split of demo_studio",
        "n_rows": 46,
        "mmd": {**MMD, "bandwidth": 3.2, "drifted": True},
        "variance": VARIANCE,
        "drifted": True,
    },
    {  # logistic regression on a night of three rows: neither test could run
        "run_id": "n2",
        "champion_version": None,
        "variance_reference": "training rows of demo_studio (no dev split named)",
        "n_rows": 3,
        "mmd": {**dict.fromkeys(MMD, None), "n_reference": 80, "n_tonight": 3, "alpha": 0.01, "bandwidth": None}
        | {"drifted": False},
        "variance": {"available": False, "why": "a logreg model has no predictive variance", "drifted": False},
        "drifted": False,
    },
]


def test_a_drift_history_round_trips_to_the_same_file(tmp_path):
    write_state(tmp_path / "drift-lr.json", {"nights": DRIFT_NIGHTS})
    before = (tmp_path / "drift-lr.json").read_bytes()
    history = nightly_records.read_drift_history(tmp_path, "lr")
    assert isinstance(history[0].measured.variance, VarianceTest) and history[0].drifted
    assert isinstance(history[1].measured.variance, VarianceUnmeasured) and history[1].measured.mmd.mmd2 is None
    write_state(tmp_path / "drift-lr.json", {"nights": [nightly_records.night_drift_to_json(r) for r in history]})
    assert (tmp_path / "drift-lr.json").read_bytes() == before


def test_an_evidence_pool_round_trips_to_the_same_file(tmp_path):
    pool = {"champion": "/w/models/lr/v1", "nights": ["n1", "n2"], "held_out": [["inbox", "u0"]], "learn": []}
    write_state(tmp_path / "evidence-lr.json", pool)
    before = (tmp_path / "evidence-lr.json").read_bytes()
    read = nightly_records.read_evidence_pool(tmp_path, "lr", "/w/models/lr/v1")
    assert read == EvidencePool("/w/models/lr/v1", ["n1", "n2"], [["inbox", "u0"]], [])
    nightly_records.save_evidence_pool(tmp_path, "lr", read)
    assert (tmp_path / "evidence-lr.json").read_bytes() == before


def test_a_state_file_in_another_layout_names_the_file_and_the_fix(tmp_path):
    from storage.state import StateFileError

    write_state(tmp_path / "drift-lr.json", {"nights": [{"run_id": "n1", "drifted": False}]})
    with pytest.raises(
        StateFileError, match=r"drift-lr\.json: state file is damaged \(not the expected layout.*move it away"
    ):
        nightly_records.read_drift_history(tmp_path, "lr")
    write_state(tmp_path / "evidence-lr.json", {"champion": "/w/models/lr/v1", "nights": 3})
    with pytest.raises(StateFileError, match=r"evidence-lr\.json: state file is damaged.*move it away"):
        nightly_records.read_evidence_pool(tmp_path, "lr", "/w/models/lr/v1")
