"""The nightly loop on a generated corpus: nothing new, a batch of a new generator, and overlap."""

import json
import threading
import time
from pathlib import Path

import pytest
from helpers import drop_new_generator_batch, nightly_config, write_audio
from prefect.testing.utilities import prefect_test_harness

from addgp.config import load_config
from flows.nightly import nightly_flow
from storage import champions
from storage.manifests import read_manifest
from tasks.nightly.challenger import split_new_rows
from tasks.nightly.compare import EVAL_CORPORA, HELD_OUT
from tasks.nightly.promotion import decide_promotion, holdout_mask

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_backend():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_promotion_rule():
    base = {"a": 0.10, "b": 0.20}
    assert decide_promotion(None, base, None, None, 0.3).promote
    assert decide_promotion(base, {"a": 0.11, "b": 0.21}, 0.02, 0.40, 0.20).promote
    worse = decide_promotion(base, {"a": 0.20, "b": 0.30}, 0.02, 0.40, 0.10)
    assert not worse.promote and "beyond the CI" in worse.reason
    worse_new = decide_promotion(base, {"a": 0.09, "b": 0.19}, 0.02, 0.30, 0.31)
    assert not worse_new.promote and "worse on the new fakes" in worse_new.reason
    missing = decide_promotion(base, base, 0.02, None, None)
    assert not missing.promote and "no held-out new fakes" in missing.reason


def test_a_tie_on_the_new_fakes_goes_to_the_challenger_unless_it_is_worse_on_the_eval_average():
    base = {"a": 0.10, "b": 0.20}
    # Both catch every new fake (EER 0), the eval average is equal: the challenger has seen more data.
    tie = decide_promotion(base, dict(base), 0.02, 0.0, 0.0)
    assert tie.promote and tie.reason.startswith("tie on the new fakes") and "seen more data" in tie.reason
    # The same EER computed along another path (float rounding) is still a tie.
    assert decide_promotion(base, base, 0.02, 0.1 + 0.2, 0.3).promote
    better_eval = decide_promotion(base, {"a": 0.09, "b": 0.20}, 0.02, 0.25, 0.25)
    assert better_eval.promote
    # A tie on the new fakes with a worse eval average (inside the CI) keeps the champion.
    kept = decide_promotion(base, {"a": 0.11, "b": 0.21}, 0.02, 0.25, 0.25)
    assert not kept.promote and "tie on the new fakes" in kept.reason and "worse on the eval average" in kept.reason


def test_holdout_is_stable_and_about_the_fraction():
    ids = [f"u{i}" for i in range(2000)]
    first = holdout_mask(ids, 0.3)
    assert abs(first.mean() - 0.3) < 0.04
    assert (holdout_mask(ids[:500], 0.3) == first[:500]).all()  # an utterance keeps its side


def test_nightly_nothing_new_then_new_generator_then_nothing(tmp_path, prefect_backend):
    config = nightly_config(tmp_path)
    quiet = nightly_flow(str(config), run_id="night-0")
    assert quiet.nothing_new and not quiet.promoted
    assert "Nothing new" in (Path(quiet.report) / "report.md").read_text()

    n_files = drop_new_generator_batch(tmp_path)
    write_audio(tmp_path / "inbox" / "2026-11-20-tipline" / "unlabelled.wav")  # no sidecar entry: a reject
    night = nightly_flow(str(config), run_id="night-1")
    assert not night.nothing_new
    report = Path(night.report)
    document = json.loads((report / "metrics.json").read_text())
    workdir = load_config(config).workdir
    # The batch is named after the folder the operator dropped; the reject is shown with its reason.
    assert [b["batch_id"] for b in document["batches"]] == ["2026-11-20-tipline"]
    assert document["inbox_rejects"] == [
        {"reason": "no sidecar entry (label unknown)", "count": 1, "examples": ["2026-11-20-tipline/unlabelled"]}
    ]
    # Held-out evidence: the rows each slice was scored on, counted here from the manifests.
    evidence = {row["dataset"]: row for row in document["evidence"]}

    def eval_rows(dataset):
        rows = read_manifest(workdir / "manifests" / f"{dataset}.parquet")
        return rows[rows["split"].isin(load_config(config).evaluate.splits)]

    inbox = read_manifest(workdir / "manifests" / "inbox.parquet")
    _, held = split_new_rows(inbox, 0.4)
    held_bona = int((held["label"] == "bonafide").sum())
    eval_bona = sum(int((eval_rows(d)["label"] == "bonafide").sum()) for d in ("demo_studio", "demo_phone"))
    # without held-out bona fide, the new fakes are scored against the eval corpora's bona fide
    assert (evidence["new_fakes"]["n_spoof"], evidence["new_fakes"]["n_bonafide"]) == (
        int((held["label"] == "spoof").sum()),
        held_bona or eval_bona,
    )
    assert evidence["new_fakes"]["bonafide_from"] == (HELD_OUT if held_bona else EVAL_CORPORA)
    studio = evidence["demo_studio"]
    assert studio["n_bonafide"] + studio["n_spoof"] == len(eval_rows("demo_studio"))
    for row in evidence.values():
        assert row["difference_ci_low"] <= row["difference"] <= row["difference_ci_high"]
    assert "Held-out evidence" in (report / "report.md").read_text()
    assert "Champion in service" in (report / "index.html").read_text()
    assert {row["dataset"] for row in document["forgetting"]} == {"demo_studio", "demo_phone"}
    assert set(document["eer"]) == {"demo_studio", "demo_phone", "new_fakes"}
    state = load_config(config).workdir / "state"
    record = champions.read_champions(state, "lr")
    assert record["current"] is not None
    assert "new_fakes" in (report / "report.md").read_text()
    assert n_files > 0
    assert night.promoted, document["decision"]["reason"]
    assert record["current"]["version"] == 2 and len(record["history"]) == 1  # v1 = baseline, v2 = challenger
    assert (load_config(config).workdir / "models" / "lr" / "v2").is_dir()

    again = nightly_flow(str(config), run_id="night-2")
    assert again.nothing_new, "a batch already used must not be absorbed twice"
    # A quiet night re-evaluates the champion on the eval sets and records the result: the same
    # model on the same rows measures what the night before measured.
    quiet = Path(again.report)
    assert "No new data; champion re-evaluated" in (quiet / "report.md").read_text()
    quiet_document = json.loads((quiet / "metrics.json").read_text())
    assert [r["dataset"] for r in quiet_document["champion_reevaluation"]] == ["demo_studio", "demo_phone"]
    evaluations = champions.read_champions(state, "lr")["evaluations"]
    assert [e["run_id"] for e in evaluations] == ["night-1", "night-2"]
    assert evaluations[1]["eer"] == pytest.approx(evaluations[0]["eer"]) and evaluations[1]["version"] == 2
    assert [e["run_id"] for e in quiet_document["champion_history"]] == ["night-1", "night-2"]


def test_two_nightly_flows_at_once_the_second_stops_and_the_first_is_intact(tmp_path, prefect_backend):
    config = nightly_config(tmp_path)
    drop_new_generator_batch(tmp_path)
    workdir = load_config(config).workdir
    lock = workdir / "state" / "nightly.lock"
    first: dict = {}

    def run_first():
        first["outcome"] = nightly_flow(str(config), run_id="first")

    runner = threading.Thread(target=run_first)
    runner.start()
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().startswith("pid")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.is_alive(), "the first nightly finished before the second could start"
    with pytest.raises(Exception, match="another nightly run is in progress"):
        nightly_flow(str(config), run_id="second")
    runner.join(600)

    assert first["outcome"].promoted, "the first run must complete its work undisturbed"
    assert not (workdir / "reports" / "nightly" / "lr" / "second").exists()
    assert (workdir / "reports" / "nightly" / "lr" / "first" / "index.html").is_file()
    record = champions.read_champions(workdir / "state", "lr")
    assert record["current"]["run_id"] == "first" and record["current"]["version"] == 2
    assert nightly_flow(str(config), run_id="third").nothing_new, "the batch was used once, by the first run"
