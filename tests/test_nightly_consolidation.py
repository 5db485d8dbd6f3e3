"""Scheduled consolidation (issue 20, item 3): the rule that picks tonight's step from the champion
chain, the config option that switches it on, and the record of the rows learnt so far.
The nights through the real flow are in tests/test_nightly_season.py."""

import json
from dataclasses import replace

import pytest
from nightly_report_fixtures import decided, inbox_batch
from pydantic import ValidationError

from addgp.config import NightlyConfig
from addgp.nightly import ChallengerSummary, ChampionRecord, StepCost
from storage import nightly_records
from tasks.nightly.consolidation import (
    CONSOLIDATE,
    FIT,
    RETRAIN,
    UPDATE,
    tonight_step,
    updates_since_full_fit,
)
from tasks.report.nightly import NightlyOutcome, render_markdown, render_nightly_report


def _chain(*steps: str | None) -> list[str | None]:
    return list(steps)


def test_every_nth_night_since_the_last_full_fit_consolidates():
    # Simulated with every challenger promoted: N = 3 gives update, update, consolidate, …
    chain = _chain(FIT)
    steps = []
    for _ in range(7):
        step = tonight_step(chain, 3)
        steps.append(step)
        chain.append(step)
    assert steps == [UPDATE, UPDATE, CONSOLIDATE, UPDATE, UPDATE, CONSOLIDATE, UPDATE]
    # N = 7 on a chain fitted on night 0: nights 7 and 14 consolidate (benchmarks/season.py's weekly)
    chain, nights = _chain(FIT), []
    for night in range(1, 16):
        step = tonight_step(chain, 7)
        chain.append(step)
        nights += [night] if step == CONSOLIDATE else []
    assert nights == [7, 14]


def test_no_schedule_updates_and_one_refits_every_night():
    chain = _chain(FIT, UPDATE, UPDATE, UPDATE)
    assert tonight_step(chain, None) == UPDATE
    assert tonight_step(_chain(FIT), 1) == CONSOLIDATE


def test_a_refused_consolidation_leaves_the_chain_so_the_next_night_consolidates_again():
    chain = _chain(FIT, UPDATE, UPDATE)
    assert tonight_step(chain, 3) == CONSOLIDATE
    # refused: nothing is promoted, the chain is the same the next night
    assert tonight_step(chain, 3) == CONSOLIDATE
    assert tonight_step([*chain, CONSOLIDATE], 3) == UPDATE


def test_any_full_fit_restarts_the_count_and_old_records_read_as_fit_then_updates():
    assert updates_since_full_fit(_chain(FIT, UPDATE, RETRAIN, UPDATE)) == 1
    assert updates_since_full_fit(_chain(FIT, UPDATE, CONSOLIDATE)) == 0
    # records from before steps were kept: the first is the baseline's fit, the rest updates
    assert updates_since_full_fit(_chain(None, None, None)) == 2
    assert tonight_step(_chain(None, None, None), 3) == CONSOLIDATE
    assert updates_since_full_fit([]) == 0


def test_the_option_is_validated():
    base = {"inbox": "inbox", "detector": "gp"}
    assert NightlyConfig(**base).consolidate_every_nights is None
    assert NightlyConfig(**base, consolidate_every_nights=7).consolidate_every_nights == 7
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        NightlyConfig(**base, consolidate_every_nights=0)
    with pytest.raises(ValidationError, match="strategy is 'retrain', which refits every night"):
        NightlyConfig(**base, strategy="retrain", consolidate_every_nights=7)


def test_the_rows_learnt_are_recorded_once_in_the_order_taken_in(tmp_path):
    assert nightly_records.read_learnt_rows(tmp_path, "gp") == []
    first = nightly_records.record_learnt_rows(tmp_path, "gp", [["inbox", "b1/x"], ["inbox", "b1/y"]])
    assert first == [["inbox", "b1/x"], ["inbox", "b1/y"]]
    # a resumed night repeats its rows; the next night adds its own
    again = nightly_records.record_learnt_rows(tmp_path, "gp", [["inbox", "b1/y"], ["inbox", "b2/z"]])
    assert again == [["inbox", "b1/x"], ["inbox", "b1/y"], ["inbox", "b2/z"]]
    assert nightly_records.read_learnt_rows(tmp_path, "gp") == again
    assert nightly_records.read_learnt_rows(tmp_path, "lr") == []


def test_the_report_names_tonights_step_its_cost_and_the_chain():
    chain = [
        ChampionRecord("/w/models/gp/v1", version=1, promoted_at="n-1", step=FIT, cost=StepCost(None, 40, 0)),
        ChampionRecord("/w/models/gp/v2", version=2, promoted_at="n-1", step=UPDATE, cost=StepCost(0.6, 12, 12)),
    ]
    refused = NightlyOutcome(
        "night",
        "n-2",
        [inbox_batch("b2")],
        decision=decided(False, "worse on the new fakes: 9.00 % > 2.00 %"),
        challenger=ChallengerSummary("adapt", 11, 8, "/w/models/gp/v3", CONSOLIDATE, StepCost(19.3, 63, 23)),
        chain=chain,
    )
    text = render_markdown(refused)
    assert "Tonight's step: consolidate, a scheduled consolidation" in text and "(19.3 s, 63 rows learnt)" in text
    assert "the next night with new data consolidates again" in text
    assert (
        "## Champion chain" in text
        and "| 2 | update | n-1 | 0.6 | 12 |" in text
        and "| 1 | fit | n-1 | – | 40 |" in text
    )
    document = json.loads(render_nightly_report(refused)["metrics.json"])
    assert [r["step"] for r in document["champion_chain"]] == [FIT, UPDATE]
    assert document["challenger"]["step"] == CONSOLIDATE and document["challenger"]["model"] == "gp/v3"
    # an update night, or a promoted consolidation, says nothing about the next night
    promoted = replace(refused, decision=decided(True, "better on the new fakes"))
    assert "consolidates again" not in render_markdown(promoted)
