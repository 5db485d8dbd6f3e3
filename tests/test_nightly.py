"""The nightly loop on a generated corpus: nothing new, a batch of a new generator, and overlap."""

import csv
import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from addgp.config import load_config
from addgp.flows.nightly import nightly_flow
from addgp.storage import champions
from addgp.tasks.ingest.demo_corpus import generate_demo_corpus
from addgp.tasks.train.promotion import decide_promotion, holdout_mask

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_backend():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def nightly_config(folder: Path, strategy: str = "retrain") -> Path:
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    config = {
        "name": "night",
        "workdir": str(folder / "work"),
        "demo_corpus": {"root": str(folder / "corpus"), "seed": 5, "conditions": ["studio", "phone"],
                        "utterances_per_split": {"train": 40, "dev": 12, "eval": 30}},
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_studio")},
            {"name": "demo_phone", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_phone")},
            {"name": "inbox", "adapter": "inbox", "root": str(inbox)},
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 30},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {"datasets": ["demo_studio"], "layer": -1, "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"datasets": ["demo_studio", "demo_phone"], "n_boot": 50},
        "nightly": {"inbox": "inbox", "detector": "lr", "strategy": strategy, "holdout_fraction": 0.4, "n_boot": 50},
    }
    path = folder / "night.yaml"
    path.write_text(yaml.safe_dump(config))
    generate_demo_corpus(folder / "corpus", seed=5, conditions=("studio", "phone", "far"),
                         utterances_per_split={"train": 40, "dev": 12, "eval": 30}, progress=False)
    return path


def drop_new_generator_batch(folder: Path) -> int:
    """Copy the far-field corpus' unseen-attack (A04) spoofs and some bona fide into the inbox, with a sidecar."""
    far = folder / "corpus" / "demo_far"
    protocol = far / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    batch = folder / "inbox" / "2026-11-20-tipline"
    batch.mkdir(parents=True)
    rows = []
    for line in protocol.read_text().split("\n"):
        if not line.strip():
            continue
        _speaker, utt, _, attack, label = line.split()
        if attack == "A04" or (label == "bonafide" and len(rows) % 3 == 0):
            shutil.copy(far / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac", batch / f"{utt}.flac")
            rows.append({"file": f"{utt}.flac", "label": label, "generator": "" if label == "bonafide" else "newgen",
                         "source": "tip line", "collected": "2026-11-20"})
    with open(batch / "sidecar.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def test_promotion_rule():
    base = {"a": 0.10, "b": 0.20}
    assert decide_promotion(None, base, None, None, 0.3).promote
    assert decide_promotion(base, {"a": 0.11, "b": 0.21}, 0.02, 0.40, 0.20).promote
    worse = decide_promotion(base, {"a": 0.20, "b": 0.30}, 0.02, 0.40, 0.10)
    assert not worse.promote and "beyond the CI" in worse.reason
    no_gain = decide_promotion(base, base, 0.02, 0.30, 0.30)
    assert not no_gain.promote and "not better on the new fakes" in no_gain.reason


def test_holdout_is_stable_and_about_the_fraction():
    ids = [f"u{i}" for i in range(2000)]
    first = holdout_mask(ids, 0.3)
    assert abs(first.mean() - 0.3) < 0.04
    assert (holdout_mask(ids[:500], 0.3) == first[:500]).all()  # an utterance keeps its side


def test_nightly_nothing_new_then_new_generator_then_nothing(tmp_path, prefect_backend):
    config = nightly_config(tmp_path)
    quiet = nightly_flow(str(config), run_id="night-0")
    assert quiet["nothing_new"] and not quiet["promoted"]
    assert "Nothing new" in (Path(quiet["report"]) / "report.md").read_text()

    n_files = drop_new_generator_batch(tmp_path)
    night = nightly_flow(str(config), run_id="night-1")
    assert not night["nothing_new"]
    report = Path(night["report"])
    document = json.loads((report / "metrics.json").read_text())
    assert {row["dataset"] for row in document["forgetting"]} == {"demo_studio", "demo_phone"}
    assert set(document["eer"]) == {"demo_studio", "demo_phone", "new_fakes"}
    state = load_config(config).workdir / "state"
    record = champions.read_champions(state, "lr")
    assert record["current"] is not None
    assert "new_fakes" in (report / "report.md").read_text()
    assert n_files > 0
    assert night["promoted"], document["decision"]["reason"]
    assert record["current"]["version"] == 2 and len(record["history"]) == 1  # v1 = baseline, v2 = challenger
    assert (load_config(config).workdir / "models" / "lr" / "v2").is_dir()

    again = nightly_flow(str(config), run_id="night-2")
    assert again["nothing_new"], "a batch already used must not be absorbed twice"


def test_second_nightly_at_once_stops_without_touching_the_first(tmp_path, prefect_backend):
    config = nightly_config(tmp_path)
    state = load_config(config).workdir / "state"
    holder_ready, release = threading.Event(), threading.Event()

    def hold_lock():
        with champions.exclusive_run(state, "nightly"):
            holder_ready.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    holder_ready.wait(30)
    try:
        with pytest.raises(Exception) as error:
            nightly_flow(str(config), run_id="overlap")
        assert "another nightly run is in progress" in str(error.value)
        assert not (load_config(config).workdir / "reports" / "nightly" / "overlap").exists()
    finally:
        release.set()
        holder.join()
