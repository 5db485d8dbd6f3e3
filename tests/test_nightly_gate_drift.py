"""The promotion gate, the evidence pool and drift before labels, as pure functions (issue 20)."""

import numpy as np
import pandas as pd
import pytest
from nightly_report_fixtures import drift_record

from addgp.config import ConfigError, GateConfig, load_config
from addgp.drift import VarianceTest, VarianceUnmeasured
from storage import nightly_records
from tasks.nightly.drift import measure_drift, mmd_test, variance_test
from tasks.nightly.gate import KEPT, NOT_ENOUGH_EVIDENCE, PROMOTED, apply_gate
from tasks.nightly.pool import pool_rows, settled_pool
from tasks.nightly.promotion import decide_promotion

BASE = {"a": 0.10, "b": 0.20}
GATE = GateConfig(min_spoof=20, min_bonafide=20, ci_level=0.95, max_nights=3)


def _new_fakes(n_spoof, n_bonafide, low, high):
    return {
        "n_spoof": n_spoof,
        "n_bonafide": n_bonafide,
        "difference": (low + high) / 2,
        "difference_ci_low": low,
        "difference_ci_high": high,
    }


def _point(challenger=None, champion_new=0.30, challenger_new=0.10):
    return decide_promotion(BASE, challenger or dict(BASE), 0.02, champion_new, challenger_new)


def test_too_few_held_out_rows_end_the_night_without_a_decision():
    # The point rule alone would promote on 3 spoofs with a CI of [-4, +33] points (the night).
    decision, gate = apply_gate(_point(), _new_fakes(3, 40, -0.04, 0.33), 1, GATE)
    assert not decision.promote and decision.outcome == NOT_ENOUGH_EVIDENCE and not decision.decided
    assert gate.n_spoof == 3 and gate.min_spoof == 20 and "not enough evidence yet" in gate.reason
    # No held-out spoof at all: no new-fakes slice, the same outcome.
    assert apply_gate(_point(champion_new=None, challenger_new=None), None, 1, GATE)[0].outcome == NOT_ENOUGH_EVIDENCE


def test_enough_rows_and_a_ci_above_zero_promote_one_straddling_zero_waits_then_keeps():
    decision, _ = apply_gate(_point(), _new_fakes(60, 60, 0.05, 0.30), 1, GATE)
    assert decision.promote and decision.outcome == PROMOTED and decision.decided
    worse, _ = apply_gate(_point(champion_new=0.1, challenger_new=0.3), _new_fakes(60, 60, -0.3, -0.05), 1, GATE)
    assert not worse.promote and worse.outcome == KEPT and worse.decided
    waiting, _ = apply_gate(_point(), _new_fakes(60, 60, -0.02, 0.10), 2, GATE)
    assert waiting.outcome == NOT_ENOUGH_EVIDENCE and "straddles 0" in waiting.reason
    # After max_nights of pooled evidence the champion is kept and the pool starts over.
    done, _ = apply_gate(_point(), _new_fakes(60, 60, -0.02, 0.10), 3, GATE)
    assert done.outcome == KEPT and done.decided and "no difference shown" in done.reason
    few, _ = apply_gate(_point(), _new_fakes(5, 60, 0.1, 0.2), 3, GATE)
    assert few.outcome == KEPT and few.decided and "too little evidence" in few.reason


def test_worse_on_the_eval_corpora_is_decided_without_new_fakes_and_the_gate_can_be_off():
    worse = _point(challenger={"a": 0.30, "b": 0.40})
    decision, _ = apply_gate(worse, None, 1, GATE)
    assert decision.outcome == KEPT and decision.decided and "beyond the CI" in decision.reason
    off = GateConfig(min_spoof=0, min_bonafide=0, ci_level=None)
    decision, gate = apply_gate(_point(), _new_fakes(3, 5, -0.04, 0.33), 1, off)
    assert decision.promote and decision.outcome == PROMOTED and gate.rule.startswith("gate off")


def test_the_gate_is_validated_at_load(tmp_path):
    from helpers import nightly_config

    config = nightly_config(tmp_path, gate={"min_spoof": -1})
    with pytest.raises(ConfigError, match="min_spoof"):
        load_config(config)
    with pytest.raises(ConfigError, match="ci_level"):
        load_config(nightly_config(tmp_path, gate={"ci_level": 1.5}))
    assert load_config(nightly_config(tmp_path, gate={})).nightly.gate == GateConfig()


def _rows(dataset, ids, label="spoof"):
    return pd.DataFrame({"dataset": dataset, "utt_id": ids, "label": label})


def test_undecided_nights_pool_their_rows_for_the_same_champion_and_a_decision_starts_over(tmp_path):
    inbox = pd.concat([_rows("inbox", [f"u{i}" for i in range(10)])], ignore_index=True)
    empty = nightly_records.read_evidence_pool(tmp_path, "gp", "models/gp/v1")
    first = pool_rows(empty, inbox, inbox.iloc[:3], inbox.iloc[3:5], "n1")
    assert len(first.learn) == 3 and len(first.held_out) == 2 and first.nights == ["n1"]
    nightly_records.save_evidence_pool(tmp_path, "gp", settled_pool("models/gp/v1", False, first))
    pool = nightly_records.read_evidence_pool(tmp_path, "gp", "models/gp/v1")
    second = pool_rows(pool, inbox, inbox.iloc[5:7], inbox.iloc[7:10], "n2")
    assert second.nights == ["n1", "n2"]
    assert sorted(second.held_out["utt_id"]) == ["u3", "u4", "u7", "u8", "u9"]
    assert sorted(second.learn["utt_id"]) == ["u0", "u1", "u2", "u5", "u6"]
    # A resumed night whose rows are already pooled counts them once.
    again = pool_rows(pool, inbox, inbox.iloc[:3], inbox.iloc[3:5], "n1")
    assert len(again.held_out) == 2 and again.nights == ["n1"]
    # Another champion's pool is not this champion's evidence.
    assert nightly_records.read_evidence_pool(tmp_path, "gp", "models/gp/v2").held_out == []
    assert settled_pool("models/gp/v1", True, second) is None


def test_the_drift_history_keeps_one_record_per_night_and_at_most_keep_nights(tmp_path):
    for i in range(5):
        nightly_records.record_drift(tmp_path, "gp", drift_record(f"n{i}", 0.001, False), keep=3)
    history = nightly_records.record_drift(tmp_path, "gp", drift_record("n4", 0.05, True), keep=3)
    assert [r.run_id for r in history] == ["n2", "n3", "n4"] and history[-1].drifted
    assert nightly_records.read_drift_history(tmp_path, "gp") == history


def test_mmd_fires_on_a_shifted_sample_and_about_alpha_of_the_time_on_the_same_distribution():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(400, 16))
    shifted = rng.normal(size=(60, 16)) + np.r_[1.0, np.zeros(15)]
    result = mmd_test(reference, shifted, max_rows=200, n_permutations=200, alpha=0.01)
    assert result.mmd2 is not None and result.threshold is not None and result.p_value is not None
    assert result.drifted and result.mmd2 > result.threshold and result.p_value <= 0.01
    assert result.n_reference == 200 and result.n_tonight == 60  # subsampled to max_rows
    fired = [
        mmd_test(reference, rng.normal(size=(60, 16)), max_rows=200, n_permutations=100, alpha=0.05, seed=s).drifted
        for s in range(40)
    ]
    assert sum(fired) <= 6  # 5 % of 40 is 2; a test that fires on most same-distribution nights is broken
    few = mmd_test(reference, shifted[:3], max_rows=200, n_permutations=50, alpha=0.01)
    assert few.mmd2 is None and not few.drifted


class _Variance:
    """A detector whose variance grows with the distance from the origin (like a GP away from its data)."""

    def predict_variance(self, X):
        return (np.asarray(X) ** 2).sum(axis=1)


def test_predictive_variance_flags_rows_far_from_the_data_and_a_model_without_variance_says_so():
    rng = np.random.default_rng(1)
    reference, held = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    far = measure_drift(
        _Variance(),
        "dkl_gp",
        reference,
        held,
        rng.normal(size=(80, 4)) * 3,
        max_rows=200,
        n_permutations=50,
        alpha=0.01,
    )
    assert isinstance(far.variance, VarianceTest) and far.variance.share_above_q95 > 0.5 and far.drifted
    near = variance_test(held[:150, 0] ** 2, held[150:, 0] ** 2, alpha=0.01, kind="dkl_gp")
    assert isinstance(near, VarianceTest) and not near.drifted
    lr = measure_drift(
        object(), "logreg", reference, held, rng.normal(size=(80, 4)), max_rows=200, n_permutations=50, alpha=0.01
    )
    assert isinstance(lr.variance, VarianceUnmeasured) and "logreg model has no predictive variance" in lr.variance.why


def test_the_report_shows_the_gate_and_the_drift_with_its_trend():
    import json

    from nightly_report_fixtures import undecided_night

    from tasks.report.nightly import render_nightly_report

    files = render_nightly_report(undecided_night())
    for text in (files["index.html"], files["report.md"]):
        assert "NOT ENOUGH EVIDENCE YET, champion kept" in text and "Promotion gate" in text
        assert "3 (needs 50)" in text and "12 (needs 50)" in text and "-4.00, 33.00" in text
        assert "Drift of the inbox before labels" in text and "inbox lies beyond the threshold" in text
        assert "52 %" in text and "night-1" in text and "night-2" in text
    document = json.loads(files["metrics.json"])
    assert document["decision"]["outcome"] == NOT_ENOUGH_EVIDENCE and not document["decision"]["decided"]
    assert document["gate"]["n_spoof"] == 3 and [r["run_id"] for r in document["drift"]] == [
        "night-1",
        "night-2",
        "night-3",
    ]


def test_a_resumed_night_tests_on_the_pool_the_killed_night_read(tmp_path):
    import yaml

    from addgp.nightly import ChampionRecord, EvidencePool, Night
    from storage import night_state
    from storage.manifests import write_manifest
    from tasks.nightly.context import NightContext
    from tasks.nightly.task import NightRows, pool_evidence_task

    config = {
        "name": "pool",
        "workdir": str(tmp_path / "work"),
        "datasets": [{"name": "inbox", "adapter": "inbox", "root": str(tmp_path / "in")}],
        "encoder": {"id": "tiny-random"},
        "train": {"datasets": ["inbox"], "detectors": [{"name": "gp", "kind": "logreg"}]},
        "nightly": {"inbox": "inbox", "detector": "gp"},
    }
    (tmp_path / "pool.yaml").write_text(yaml.safe_dump(config))
    ctx = NightContext.of(load_config(tmp_path / "pool.yaml", check_paths=False), "pool.yaml")
    inbox = _rows("inbox", [f"u{i}" for i in range(6)]).assign(
        split="train", attack=None, speaker="s", path="x.flac", duration_s=1.0, sha256="0" * 64
    )
    write_manifest(inbox, ctx.inbox_manifest)
    night = Night("n2", batch_ids=["b2"], champion=ChampionRecord("models/gp/v1"))
    night_state.save_night(ctx.state, "gp", night)
    earlier = EvidencePool("models/gp/v1", nights=["n1"], held_out=[["inbox", "u0"]], learn=[["inbox", "u1"]])
    nightly_records.save_evidence_pool(ctx.state, "gp", earlier)
    rows = NightRows(inbox.iloc[2:4], inbox.iloc[4:6], pd.DataFrame(), pd.DataFrame())
    night, first = pool_evidence_task.fn(ctx, night, rows)
    assert first.nights == ["n1", "n2"] and sorted(first.held_out["utt_id"]) == ["u0", "u4", "u5"]
    # Killed after the decision settled (cleared) the pool: the resumed night reads its own record.
    nightly_records.clear_evidence_pool(ctx.state, "gp")
    resumed = night_state.night_in_progress(ctx.state, "gp")
    assert resumed is not None
    _, again = pool_evidence_task.fn(ctx, resumed, rows)
    assert again.nights == first.nights and sorted(again.held_out["utt_id"]) == ["u0", "u4", "u5"]


def test_damaged_pool_and_drift_files_name_the_file_and_the_fix(tmp_path):
    from storage.state import StateFileError

    (tmp_path / "evidence-gp.json").write_text('{"champion": "models/gp/v1", "nights": [')
    with pytest.raises(StateFileError, match=r"evidence-gp\.json: state file is damaged.*move it away"):
        nightly_records.read_evidence_pool(tmp_path, "gp", "models/gp/v1")
    (tmp_path / "drift-gp.json").write_bytes(b"\xff\xfe")
    with pytest.raises(StateFileError, match=r"drift-gp\.json: state file is damaged.*drift trend"):
        nightly_records.record_drift(tmp_path, "gp", drift_record("n1", 0.001, False), keep=3)
