"""Issue 23 items 3, 4, 5: what a night takes in. A missing drop folder is an error unless the
config says to create it; new rows identical to eval files are excluded from learning and
listed in a data-checks section; two champions in one workdir each absorb every batch, with
reports in their own folders under their own titles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import drop_new_generator_batch, nightly_config
from nightly_report_fixtures import inbox_batch
from prefect.testing.utilities import prefect_test_harness

from addgp.config import load_config
from addgp.nightly import InboxFolder
from flows.cli.common import exit_code_of
from flows.nightly import nightly_flow
from storage.inbox_ledger import read_ledger
from storage.manifests import read_manifest
from tasks.ingest.inbox import InboxMissingError
from tasks.nightly.intake import inbox_folder, night_data_checks, without_excluded
from tasks.report.nightly import NightlyOutcome, render_nightly_report


def rows(dataset: str, split: str, names: list[str], shas: list[str], label: str = "spoof") -> pd.DataFrame:
    return pd.DataFrame(
        {"dataset": dataset, "split": split, "utt_id": names, "sha256": shas, "label": label, "batch_id": "b1"}
    )


def test_new_rows_with_an_eval_files_audio_are_excluded_and_listed():
    corpora = pd.concat(
        [
            rows("studio", "train", ["t1"], ["s-train"]),
            rows("studio", "eval", ["e1", "e2"], ["s-e1", "s-e2"]),
            rows("phone", "eval", ["p1"], ["s-e1"]),
            rows("inbox", "train", ["old"], ["s-e2"]),  # an earlier batch: not tonight's business
        ],
        ignore_index=True,
    )
    new = rows("inbox", "train", ["b1/x", "b1/y", "b1/z"], ["s-e1", "s-new", "s-train"])
    checks, excluded = night_data_checks(
        corpora, new, inbox="inbox", train=[("studio", "train")], evaluate=[("studio", "eval"), ("phone", "eval")]
    )
    assert excluded["utt_id"].tolist() == ["b1/x"]
    assert excluded["also_in"].iat[0] == "phone/eval:p1, studio/eval:e1"
    summary = checks[checks["check"] == "excluded_from_learning"].iloc[0]
    assert summary["count"] == 1 and summary["severity"] == "warning" and "b1/x" in summary["examples"]
    overlap = checks[(checks["check"] == "train_eval_overlap") & checks["scope"].str.startswith("inbox/train")]
    assert overlap["count"].sum() == 2  # b1/x in both eval splits; the old batch's row is not checked again
    assert without_excluded(new, excluded)["utt_id"].tolist() == ["b1/y", "b1/z"]

    outcome = NightlyOutcome(
        "cfg",
        "r1",
        [inbox_batch("b1", n_bonafide=1, n_spoof=2)],
        detector="gp",
        inbox=InboxFolder("/data/inbox", n_files=4, created=False),
        data_checks=checks,
        excluded=excluded,
    )
    files = render_nightly_report(outcome)
    assert "addgp nightly: cfg · detector gp" in files["report.md"]
    assert "/data/inbox" in files["report.md"] and "4 file(s)" in files["report.md"]
    assert "Data checks" in files["index.html"] and "excluded-rows" in files["index.html"]
    document = json.loads(files["metrics.json"])
    assert document["detector"] == "gp" and [r["utt_id"] for r in document["excluded_rows"]] == ["b1/x"]


def test_inbox_folder_counts_its_files(tmp_path):
    (tmp_path / "in" / "d").mkdir(parents=True)
    for name in ("d/a.wav", "d/sidecar.csv", ".hidden"):
        (tmp_path / "in" / name).write_text("x")
    assert inbox_folder(tmp_path / "in") == InboxFolder(str((tmp_path / "in").resolve()), n_files=2, created=False)
    assert inbox_folder(tmp_path / "gone").n_files == 0


def rewrite(config: Path, **nightly) -> None:
    raw = yaml.safe_load(config.read_text())
    raw["nightly"].update(nightly)
    config.write_text(yaml.safe_dump(raw))


def second_champion_config(config: Path) -> Path:
    """The same workdir and inbox, another champion detector ("lr2")."""
    raw = yaml.safe_load(config.read_text())
    raw["train"]["detectors"].append({"name": "lr2", "kind": "logreg", "params": {"C": 0.5}})
    raw["nightly"]["detector"] = "lr2"
    path = config.with_name("night-lr2.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.integration
@pytest.mark.slow
def test_missing_inbox_eval_copies_and_two_champions_through_the_nightly(tmp_path):
    config = nightly_config(tmp_path)
    workdir = load_config(config).workdir
    inbox = tmp_path / "inbox"
    inbox.rmdir()
    with prefect_test_harness(server_startup_timeout=180):
        # Item 4: a missing drop folder stops the night (exit code 2), naming the folder and the key.
        with pytest.raises(InboxMissingError) as error:
            nightly_flow(str(config), run_id="night-0")
        assert str(inbox) in str(error.value) and "nightly.create_inbox" in str(error.value)
        assert exit_code_of(error.value) == 2 and not inbox.exists()
        rewrite(config, create_inbox=True)
        quiet = nightly_flow(str(config), run_id="night-0")
        assert quiet.nothing_new and inbox.is_dir()
        quiet_doc = json.loads((Path(quiet.report) / "metrics.json").read_text())
        assert quiet_doc["inbox"] == {"folder": str(inbox.resolve()), "n_files": 0, "created": True}

        # Item 3: two inbox files are byte-identical to eval files of demo_studio.
        n_rows = drop_new_generator_batch(tmp_path) + 2
        batch = inbox / "2026-11-20-tipline"
        studio_eval = read_manifest(workdir / "manifests" / "demo_studio.parquet")
        studio_eval = studio_eval[studio_eval["split"] == "eval"].sort_values("utt_id").head(2)
        with open(batch / "sidecar.csv", "a") as sidecar:
            for utt_id, path, label in zip(studio_eval["utt_id"], studio_eval["path"], studio_eval["label"]):
                shutil.copy(path, batch / f"copy-{utt_id}.flac")
                sidecar.write(
                    f"copy-{utt_id}.flac,{label},{'' if label == 'bonafide' else 'newgen'},tip line,2026-11-20\n"
                )
        n_files = sum(1 for p in inbox.rglob("*") if p.is_file())
        night = nightly_flow(str(config), run_id="night-1")
        report = Path(night.report)
        assert report.parent == workdir / "reports" / "nightly" / "lr"
        document = json.loads((report / "metrics.json").read_text())
        copies = sorted(f"2026-11-20-tipline/copy-{u}" for u in studio_eval["utt_id"])
        assert [r["utt_id"] for r in document["excluded_rows"]] == copies
        assert all(
            f"demo_studio/eval:{u}" in r["also_in"] for r, u in zip(document["excluded_rows"], studio_eval["utt_id"])
        )
        learnt = document["challenger"]["new_rows"] + document["challenger"]["held_out_rows"]
        assert learnt == n_rows - len(copies), "the excluded rows are neither learnt from nor held out"
        md = (report / "report.md").read_text()
        assert "Data checks" in md and "excluded_from_learning" in md and "detector lr" in md
        assert document["inbox"]["n_files"] == n_files

        # Item 5: a second champion in the same workdir absorbs the same batch, reporting apart.
        other = nightly_flow(str(second_champion_config(config)), run_id="night-1")
        assert not other.nothing_new, "the first champion's night must not consume the batch for the second"
        other_report = Path(other.report)
        assert other_report.parent == workdir / "reports" / "nightly" / "lr2"
        assert "detector lr2" in (other_report / "report.md").read_text()
        consumers = read_ledger(workdir / "state")["consumers"]
        assert consumers["nightly:lr"] == consumers["nightly:lr2"] == ["2026-11-20-tipline"]
        assert nightly_flow(str(config), run_id="night-2").nothing_new


def test_addgp_datasets_checks_a_pipelines_workspace(tmp_path):
    """`addgp datasets --config CONFIG`: the workspace's manifests with the config's roles."""
    from typer.testing import CliRunner

    from flows.cli import app
    from storage.manifests import write_manifest
    from tasks.demo_corpus import generate_demo_corpus
    from tasks.ingest.registry import ingest_dataset

    generate_demo_corpus(
        tmp_path / "corpus", seed=1, conditions=("studio",), utterances_per_split={"train": 8, "dev": 4, "eval": 8}
    )
    studio = ingest_dataset("asvspoof2019_la", tmp_path / "corpus" / "demo_studio", dataset="demo_studio").manifest
    manifests = tmp_path / "work" / "manifests"
    write_manifest(studio, manifests / "demo_studio.parquet")
    # A corpus whose train split is demo_studio's eval audio: every eval file is also a training file.
    copy = studio[studio["split"] == "eval"].assign(dataset="copy", split="train")
    write_manifest(
        pd.concat([copy, copy.head(2).assign(split="dev", utt_id=copy["utt_id"].head(2) + "-d")]),
        manifests / "copy.parquet",
    )
    config = {
        "name": "ws",
        "workdir": str(tmp_path / "work"),
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(tmp_path / "corpus" / "demo_studio")},
            {"name": "copy", "adapter": "asvspoof2019_la", "root": str(tmp_path / "corpus" / "demo_studio")},
            {"name": "later", "adapter": "asvspoof2019_la", "root": str(tmp_path / "corpus" / "demo_studio")},
        ],
        "encoder": {"id": "tiny-random"},
        "train": {"datasets": ["copy"], "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"datasets": ["demo_studio", "later"]},
    }
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["datasets", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    corpora = {c["name"]: c for c in answer["corpora"]}
    assert corpora["demo_studio"]["rows"] == len(studio) and "not ingested yet" in corpora["later"]["note"]
    overlap = [c for c in answer["data_checks"] if c["check"] == "train_eval_overlap" and c["count"]]
    assert sorted((c["scope"], c["count"]) for c in overlap) == [
        ("copy/dev → demo_studio/eval", 2),
        ("copy/train → demo_studio/eval", 8),
    ]
    text = CliRunner().invoke(app, ["datasets", "--config", str(path)])
    assert text.exit_code == 0 and "train_eval_overlap" in text.output


def test_the_held_out_slice_is_stratified_by_label_and_the_decision_is_in_percent():
    """Issue 23 item 12: one bona fide file must not decide a night's EER; the decision line reads like the tables."""
    from tasks.nightly.challenger import split_new_rows
    from tasks.nightly.promotion import decide_promotion, stratified_holdout_mask

    new = pd.DataFrame(
        {"utt_id": [f"b/s{i}" for i in range(10)] + ["b/x", "b/y", "b/z"], "label": ["spoof"] * 10 + ["bonafide"] * 3}
    )
    learn, held = split_new_rows(new, 0.3)
    assert held["label"].value_counts().to_dict() == {"spoof": 3, "bonafide": 1}
    assert set(learn["label"]) == {"spoof", "bonafide"} and len(learn) + len(held) == len(new)
    assert (
        stratified_holdout_mask(new["utt_id"], new["label"], 0.3)
        == stratified_holdout_mask(new["utt_id"], new["label"], 0.3)
    ).all()
    # One row of a label stays on the learning side (nothing to split); fraction 0.01 still holds one of each.
    lone = stratified_holdout_mask(pd.Series(["a", "b", "c"]), pd.Series(["spoof", "spoof", "bonafide"]), 0.01)
    assert lone.tolist().count(True) == 1 and not lone[2]
    worse = decide_promotion({"a": 0.10}, {"a": 0.20}, 0.02, 0.3, 0.2)
    assert "20.00 % > 10.00 % + 2.00 %" in worse.reason
    better = decide_promotion({"a": 0.10}, {"a": 0.10}, 0.02, 0.30, 0.25)
    assert "(25.00 % < 30.00 %)" in better.reason
