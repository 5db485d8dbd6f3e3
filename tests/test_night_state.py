"""The nightly state files read into typed values and written back byte for byte
(storage/night_state.py): a champion or night file of any step round-trips unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from addgp.nightly import ChallengerRecord, ChampionRecord, Night
from storage import champions, night_state
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
    ],
)
def test_a_night_record_round_trips_to_the_same_file(tmp_path, steps):
    record = {
        "run_id": "n2",
        "batch_ids": ["b1"],
        "batches": [{"batch_id": "b1", "folder": "2026-12-01", "files": 3}],
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
    night = Night("n2", ["b1"], [{"batch_id": "b1"}], champion=ChampionRecord("/w/models/lr/v1", version=1))
    done = replace(night, challenger=ChallengerRecord("lr", "logreg", "/w/models/lr/v2", 2))
    night_state.save_night(tmp_path, "lr", done)
    again = night_state.night_in_progress(tmp_path, "lr")
    assert again == done and again.challenger is not None and again.challenger.version == 2
    assert not again.nothing_new and Night("n3").nothing_new
