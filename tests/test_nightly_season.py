"""A season through the real flow (issue 20, item 7): five nights of `addgp nightly` with a GP
champion and the default nightly strategy (`adapt`), one new attack family per night arriving on a
channel the champion never saw, one night with too little evidence.

Checked: one report per night; the champion chain (the baseline, then exactly the challengers
of the nights whose gate outcome is "promoted", in order); the gate's "not enough evidence yet"
on the thin night and its rows pooled into the next night; the drift section and its trend;
the saved model state of each night's challenger, in bytes, not growing with the nights.
And four nights with a scheduled consolidation (``nightly.consolidate_every_nights``): the
step each night ran, the chain's record of steps and costs, the rows a consolidation learnt.
"""

import csv
import json
import shutil
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import WebhookReceiver, nightly_config
from prefect.testing.utilities import prefect_test_harness

from addgp.config import load_config
from flows.nightly import nightly_flow
from storage import champions, nightly_records
from tasks.nightly.consolidation import CONSOLIDATE, FIT, tonight_step
from tasks.nightly.drift import MIN_ROWS
from tasks.nightly.gate import KEPT, NOT_ENOUGH_EVIDENCE, PROMOTED
from tasks.nightly.promotion import stratified_holdout_mask

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MIN_SPOOF, MIN_BONAFIDE, HOLDOUT = 2, 4, 0.4


@pytest.fixture(scope="module")
def prefect_backend():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _far_corpus(folder: Path) -> dict[str, list[tuple[str, Path]]]:
    """The far-field corpus' files by attack (``-`` = bona fide), every split: the inbox's source.
    The far channel is in no training or eval set of the config."""
    far = folder / "corpus" / "demo_far"
    files = {p.stem: p for p in far.rglob("*.flac")}
    by_attack: dict[str, list[tuple[str, Path]]] = {}
    for protocol in sorted((far / "ASVspoof2019_LA_cm_protocols").glob("*.txt")):
        for line in protocol.read_text().splitlines():
            if line.strip():
                _speaker, utt, _, attack, _label = line.split()
                by_attack.setdefault(attack, []).append((utt, files[utt]))
    return by_attack


def _drop(folder: Path, batch: str, spoofs: list[tuple[str, Path]], bona: list[tuple[str, Path]], family: str) -> None:
    target = folder / "inbox" / batch
    target.mkdir(parents=True)
    rows = []
    for (_utt, path), label in [(s, "spoof") for s in spoofs] + [(b, "bonafide") for b in bona]:
        shutil.copy(path, target / path.name)
        rows.append({"file": path.name, "label": label, "generator": family if label == "spoof" else ""})
    with open(target / "sidecar.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "generator"])
        writer.writeheader()
        writer.writerows(rows)


def _held_spoofs(batch: str, spoofs: list[tuple[str, Path]], bona: list[tuple[str, Path]]) -> int:
    """How many of a batch's spoofs the nightly holds out (the inbox's utt_id is BATCH/STEM)."""
    ids = [f"{batch}/{path.stem}" for _, path in spoofs + bona]
    labels = ["spoof"] * len(spoofs) + ["bonafide"] * len(bona)
    return int(stratified_holdout_mask(pd.Series(ids), pd.Series(labels), HOLDOUT)[: len(spoofs)].sum())


def test_a_season_of_nights_through_the_flow(tmp_path, prefect_backend):
    with WebhookReceiver() as hook:
        _season(tmp_path, hook)


def _season(tmp_path, hook):
    path = nightly_config(tmp_path, gate={"min_spoof": MIN_SPOOF, "min_bonafide": MIN_BONAFIDE, "ci_level": None})
    config = yaml.safe_load(path.read_text())
    params = {
        "mode": "variational",
        "hidden_dims": [8],
        "n_inducing": 16,
        "max_steps": 60,
        "batch_size": 64,
        "progress": False,
    }
    config["train"]["detectors"] = [{"name": "gp", "kind": "dkl_gp", "params": params}]
    config["nightly"] |= {"detector": "gp", "drift": {"max_rows": 200, "n_permutations": 50}}
    del config["nightly"]["strategy"]  # the default nightly strategy, whatever it is
    config["notify"] = {"webhook_url": hook.url, "on": ["drift", "promotion"]}
    path.write_text(yaml.safe_dump(config))
    workdir = load_config(path).workdir

    source = _far_corpus(tmp_path)
    bona = source.pop("-")
    a03 = source["A03"]
    # The thin night: three spoofs, of which fewer than the gate needs are held out.
    thin, rest = a03[:3], a03[3:]
    assert _held_spoofs("2026-12-03-A03-first", thin, []) < MIN_SPOOF
    nights = [
        ("A01", source["A01"], bona[0:4]),
        ("A02", source["A02"], bona[4:8]),
        ("A03-first", thin, []),
        ("A03", rest, bona[8:12]),
        ("A04", source["A04"], bona[12:20]),
    ]
    documents, outcomes = [], []
    for i, (family, spoofs, bona_fide) in enumerate(nights, start=1):
        _drop(tmp_path, f"2026-12-0{i}-{family}", spoofs, bona_fide, family)
        result = nightly_flow(str(path), run_id=f"night-{i}")
        assert not result.nothing_new
        document = json.loads((Path(result.report) / "metrics.json").read_text())
        documents.append(document)
        outcomes.append(document["decision"]["outcome"])
        html = (Path(result.report) / "index.html").read_text()
        assert "Promotion gate" in html and "Drift of the inbox before labels" in html

    # One report per night, under the run ids given.
    reports = Path(result.report).parent  # this champion detector's nightly reports
    published = sorted(p.name for p in reports.iterdir() if p.is_dir())
    assert published == [f"night-{i}" for i in range(1, 6)]

    # The gate: the first two nights hold out enough spoofs (their bona fide topped up from the
    # eval corpora) and decide; the thin night does not, and its rows are tested again the next night.
    assert NOT_ENOUGH_EVIDENCE not in outcomes[:2], [d["decision"]["reason"] for d in documents[:2]]
    assert outcomes[2] == NOT_ENOUGH_EVIDENCE, documents[2]["decision"]["reason"]
    thin_gate = documents[2]["gate"]
    thin_held = _held_spoofs("2026-12-03-A03-first", thin, [])
    assert thin_gate["n_spoof"] == thin_held and thin_gate["nights_pooled"] == 1
    assert not documents[2]["decision"]["promote"]
    next_gate = documents[3]["gate"]
    assert next_gate["nights_pooled"] == 2
    assert next_gate["n_spoof"] == thin_held + _held_spoofs("2026-12-04-A03", rest, nights[3][2])
    # Every night's outcome is the gate's on the counted rows (a challenger worse on the eval
    # corpora beyond their CI is refused whatever the counts).
    for document, outcome in zip(documents, outcomes):
        gate = document["gate"]
        if "beyond the CI" in document["decision"]["reason"]:
            assert outcome == KEPT
        elif gate["n_spoof"] < MIN_SPOOF or gate["n_bonafide"] < MIN_BONAFIDE:
            assert outcome == NOT_ENOUGH_EVIDENCE
        else:
            assert outcome in (PROMOTED, KEPT) and outcome == (PROMOTED if document["decision"]["promote"] else KEPT)
        assert gate["rule"].startswith(f"at least {MIN_SPOOF} held-out spoof and {MIN_BONAFIDE} bona fide rows")
    # The pool spans the undecided nights before each night, and tonight.
    pooled = [1]
    for outcome in outcomes[:-1]:
        pooled.append(pooled[-1] + 1 if outcome == NOT_ENOUGH_EVIDENCE else 1)
    assert [d["gate"]["nights_pooled"] for d in documents] == pooled

    # The champion chain: the baseline (v1), then each promoted night's challenger (v1 + night), in order.
    record = champions.read_champions(workdir / "state", "gp")
    chain = [r["version"] for r in record["history"] + [record["current"]]]
    assert chain == [1] + [1 + i for i, outcome in enumerate(outcomes, start=1) if outcome == PROMOTED]
    assert [e["run_id"] for e in record["evaluations"]] == [f"night-{i}" for i in range(1, 6)]

    # Drift before labels: one record per night, the trend in every report, a GP variance measured.
    for i, document in enumerate(documents, start=1):
        assert [r["run_id"] for r in document["drift"]] == [f"night-{j}" for j in range(1, i + 1)]
        tonight = document["drift"][-1]
        assert tonight["n_rows"] == len(nights[i - 1][1]) + len(nights[i - 1][2])
        # a GP has a predictive variance; the thin night's 3 rows are too few for either test
        assert tonight["variance"]["available"] == (tonight["n_rows"] >= MIN_ROWS), tonight["variance"]
        assert (tonight["mmd"]["mmd2"] is not None) == (tonight["n_rows"] >= MIN_ROWS)
        if tonight["mmd"]["mmd2"] is not None:
            assert tonight["drifted"] == (
                tonight["mmd"]["mmd2"] > tonight["mmd"]["threshold"] or tonight["variance"]["drifted"]
            )

    # The drift and promotion announcements: exactly the nights whose record says so.
    drifted = [f"night-{i}" for i, d in enumerate(documents, start=1) if d["drift"][-1]["drifted"]]
    assert [b["run_id"] for b in hook.bodies if b["event"] == "drift"] == drifted
    for body in (b for b in hook.bodies if b["event"] == "drift"):
        assert body["detector"] == "gp" and body["drift"]["drifted"] and body["report"].endswith("/index.html")
    promoted = [f"night-{i}" for i, outcome in enumerate(outcomes, start=1) if outcome == PROMOTED]
    assert [b["run_id"] for b in hook.bodies if b["event"] == "promotion"] == promoted

    # Flat cost: the saved state (weights, bytes) of each night's challenger is no larger than
    # the first night's (a 5 % allowance for serialisation), however many rows the chain has learnt.
    sizes = [
        json.loads((workdir / "models" / "gp" / f"v{1 + i}" / "model_card.json").read_text())["weights"]["bytes"]
        for i in range(1, 6)
    ]
    assert max(sizes) <= 1.05 * sizes[0], f"saved state grows with the nights: {sizes} bytes"


def test_scheduled_consolidation_through_the_flow(tmp_path, prefect_backend):
    """``nightly.consolidate_every_nights: 2``: every second night since the chain's last full fit
    refits the GP on the training data plus every inbox row learnt so far, the nights between
    update; the chain records each step and its cost, the report names tonight's step."""
    every = 2
    path = nightly_config(tmp_path, gate={"min_spoof": MIN_SPOOF, "min_bonafide": MIN_BONAFIDE, "ci_level": None})
    config = yaml.safe_load(path.read_text())
    params = {"mode": "variational", "hidden_dims": [8], "n_inducing": 16, "max_steps": 40, "progress": False}
    config["train"]["detectors"] = [{"name": "gp", "kind": "dkl_gp", "params": params}]
    config["nightly"] |= {"detector": "gp", "strategy": "adapt", "consolidate_every_nights": every}
    config["nightly"]["drift"] = {"max_rows": 200, "n_permutations": 20}
    path.write_text(yaml.safe_dump(config))
    workdir = load_config(path).workdir

    source = _far_corpus(tmp_path)
    bona = source.pop("-")
    batches = [f"2026-12-0{i}-{family}" for i, family in enumerate(("A01", "A02", "A03", "A04"), start=1)]
    chain_steps, expected, documents, held = [FIT], [], [], set()
    for i, batch in enumerate(batches, start=1):
        spoofs, bona_fide = source[batch[-3:]], bona[4 * (i - 1) : 4 * i]
        _drop(tmp_path, batch, spoofs, bona_fide, batch[-3:])
        ids = [f"{batch}/{path.stem}" for _, path in spoofs + bona_fide]
        labels = ["spoof"] * len(spoofs) + ["bonafide"] * len(bona_fide)
        held |= {u for u, h in zip(ids, stratified_holdout_mask(pd.Series(ids), pd.Series(labels), HOLDOUT)) if h}
        expected.append(tonight_step(chain_steps, every))
        result = nightly_flow(str(path), run_id=f"night-{i}")
        document = json.loads((Path(result.report) / "metrics.json").read_text())
        documents.append(document)
        page = unescape((Path(result.report) / "index.html").read_text())
        assert f"Tonight's step: {expected[-1]}" in page and "Champion chain" in page
        if document["decision"]["promote"]:
            chain_steps.append(expected[-1])

    # Each night ran the step the rule gives on the chain as it stood (a refused challenger leaves
    # the chain, so its step is tried again the next night); a consolidation ran.
    assert [d["challenger"]["step"] for d in documents] == expected
    assert CONSOLIDATE in expected, [d["decision"]["reason"] for d in documents]
    record = champions.read_champions(workdir / "state", "gp")
    chain = record["history"] + [record["current"]]
    assert [r["step"] for r in chain] == chain_steps
    assert [r["step"] for r in documents[-1]["champion_chain"]] == chain_steps
    assert chain[0]["cost"]["rows_learnt"] > 0 and chain[0]["cost"]["inbox_rows"] == 0

    # A consolidation learnt every inbox row taken in to learn from up to its night (never a
    # held-out row) plus the configured training rows; an update only the night's (pooled) rows.
    learnt = nightly_records.read_learnt_rows(workdir / "state", "gp")
    assert learnt and not held & {utt for _, utt in learnt}
    for i, document in enumerate(documents, start=1):
        made = document["challenger"]
        cost = made["cost"]
        assert cost["wall_s"] >= 0
        if made["step"] == CONSOLIDATE:
            so_far = [k for k in learnt if k[1].split("/")[0] in batches[:i]]
            assert cost["inbox_rows"] == len(so_far) > made["new_rows"]
            assert cost["rows_learnt"] == cost["inbox_rows"] + chain[0]["cost"]["rows_learnt"]
        else:
            assert cost["inbox_rows"] == cost["rows_learnt"] == made["new_rows"]

    # Bounded state: a consolidation saves a model the size of the updates' (weights, bytes).
    sizes = [
        json.loads((workdir / "models" / "gp" / f"v{1 + i}" / "model_card.json").read_text())["weights"]["bytes"]
        for i in range(1, len(batches) + 1)
    ]
    assert max(sizes) <= 1.05 * min(sizes), f"saved state grows with the nights: {sizes} bytes"
