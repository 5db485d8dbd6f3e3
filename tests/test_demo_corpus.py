"""The deterministic demo corpus (tasks/demo_corpus/).

Layout as ASVspoof 2019 LA (read by the real adapter), determinism, idempotence, condition
validation, and — the point of the corpus — that it is learnable but not trivially: a linear
model on mean-pooled embeddings of the tiny random-weight wav2vec2 reaches a moderate EER.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tasks.demo_corpus as dc
from tasks.ingest.asvspoof2019 import PROTOCOL_DIR, PROTOCOLS, ingest

SMALL = {"train": 10, "dev": 5, "eval": 12}
TINY = {"train": 6, "dev": 2, "eval": 8}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != dc.STAMP_NAME
    }


def _flacs(root: Path) -> list[Path]:
    return sorted(root.glob("ASVspoof2019_LA_*/flac/*.flac"))


# --------------------------------------------------------------------------- layout


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    return dc.generate_demo_corpus(
        root, seed=3, conditions=("studio", "phone", "far"), utterances_per_split=SMALL, progress=False
    )


def test_returns_one_dataset_per_condition_in_order(small_corpus, tmp_path_factory):
    assert list(small_corpus) == ["demo_studio", "demo_phone", "demo_far"]
    for name, root in small_corpus.items():
        assert root.name == name and root.is_dir()
        assert (root / PROTOCOL_DIR).is_dir()
        for split in SMALL:
            assert (root / f"ASVspoof2019_LA_{split}" / "flac").is_dir()
            assert (root / PROTOCOL_DIR / PROTOCOLS[split]).is_file()


def test_layout_is_read_by_the_asvspoof2019_adapter(small_corpus):
    all_ids: set[str] = set()
    for name, root in small_corpus.items():
        condition = name.removeprefix("demo_")
        result = ingest(root, name, progress=False)
        m = result.manifest
        assert len(result.rejects) == 0, result.rejects
        assert len(m) == sum(SMALL.values())
        assert set(m["dataset"]) == {name}
        for split, n in SMALL.items():
            rows = m[m["split"] == split]
            n_bona = int(round(0.4 * n))
            assert len(rows) == n
            assert (rows["label"] == "bonafide").sum() == n_bona
            assert (rows["label"] == "spoof").sum() == n - n_bona
            # bona fide rows carry no attack, every spoof row one
            assert rows.loc[rows["label"] == "bonafide", "attack"].isna().all()
            attacks = set(rows.loc[rows["label"] == "spoof", "attack"])
            assert attacks == ({"A01", "A02", "A03", "A04"} if split == "eval" else {"A01", "A02", "A03"})
            assert all(re.fullmatch(rf"DEMO_{condition.upper()}_{split.upper()}_\d{{5}}", u) for u in rows["utt_id"])
            assert rows["speaker"].str.fullmatch(r"spk_\d\d").all()
            assert rows["speaker"].nunique() >= 2
        speakers = {split: set(m.loc[m["split"] == split, "speaker"]) for split in SMALL}
        assert not speakers["train"] & speakers["dev"]
        assert not speakers["train"] & speakers["eval"]
        assert not speakers["dev"] & speakers["eval"]
        assert m["duration_s"].between(dc.MIN_SECONDS, dc.MAX_SECONDS).all()
        assert not all_ids & set(m["utt_id"]), "utterance ids repeat across datasets"
        all_ids |= set(m["utt_id"])


def test_files_are_16_bit_flac_mono_at_the_sample_rate(small_corpus):
    for root in small_corpus.values():
        for path in _flacs(root)[:6]:
            info = sf.info(path)
            assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, 16000)


def _band_energy_above(x: np.ndarray, sr: int, hz: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[freqs > hz].sum() / spec.sum())


def test_conditions_change_the_channel(small_corpus):
    def stats(name):
        out = []
        for path in _flacs(small_corpus[name]):
            x, sr = sf.read(path)
            out.append((np.sqrt(np.mean(x**2)), _band_energy_above(x, sr, 3900.0)))
        return np.array(out)

    studio, phone, far = stats("demo_studio"), stats("demo_phone"), stats("demo_far")
    assert phone[:, 1].max() < 1e-5 < 1e-4 < np.median(studio[:, 1])  # telephone band: nothing above 3.9 kHz
    assert np.median(far[:, 0]) < 0.4 * np.median(studio[:, 0])  # far away: quieter
    assert (studio[:, 0] > 1e-3).all() and (phone[:, 0] > 1e-3).all() and (far[:, 0] > 1e-4).all()


def test_stamp_records_parameters_and_hashes(small_corpus):
    root = small_corpus["demo_phone"]
    stamp = json.loads((root / dc.STAMP_NAME).read_text())
    assert stamp["params"]["condition"] == "phone"
    assert stamp["params"]["seed"] == 3
    assert stamp["params"]["utterances_per_split"] == SMALL
    assert stamp["params"]["sample_rate"] == 16000
    assert stamp["params"]["version"] == dc.GENERATOR_VERSION
    assert stamp["files"] == _hashes(root)
    assert not list(root.glob(".*.tmp"))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("conditions", [("studio", "underwater"), ("Studio",), ["far", "phone", "moon"]])
def test_unknown_condition_is_a_value_error_listing_the_known_ones(tmp_path, conditions):
    with pytest.raises(ValueError, match="unknown demo corpus condition") as info:
        dc.generate_demo_corpus(tmp_path / "c", conditions=conditions, utterances_per_split=TINY, progress=False)
    message = str(info.value)
    for known in ("studio", "phone", "far"):
        assert known in message
    bad = [c for c in conditions if c not in dc.CONDITIONS]
    assert all(b in message for b in bad)
    assert not (tmp_path / "c").exists(), "nothing may be written for an invalid request"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conditions": ()},
        {"conditions": ("studio", "studio")},
        {"utterances_per_split": {"train": 0}},
        {"utterances_per_split": {"train": 2.5}},
        {"utterances_per_split": {"test": 4}},
        {"utterances_per_split": {}},
        {"sample_rate": 4000},
        {"sample_rate": 16000.5},
        {"utterances_per_split": {"train": "10"}},
        {"utterances_per_split": {"train": None}},
        {"seed": -1},
        {"seed": 1.5},
    ],
)
def test_other_bad_parameters_are_value_errors(tmp_path, kwargs):
    # Each message names what is wrong: the parameter, or the conditions / splits it lists.
    with pytest.raises(ValueError, match=r"conditions|utterances_per_split|sample_rate|seed"):
        dc.generate_demo_corpus(tmp_path / "c", **{"utterances_per_split": TINY, "progress": False, **kwargs})


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_different(tmp_path):
    a = dc.generate_demo_corpus(tmp_path / "a", seed=7, conditions=("far",), utterances_per_split=TINY, progress=False)
    b = dc.generate_demo_corpus(tmp_path / "b", seed=7, conditions=("far",), utterances_per_split=TINY, progress=False)
    c = dc.generate_demo_corpus(tmp_path / "c", seed=8, conditions=("far",), utterances_per_split=TINY, progress=False)
    ha, hb, hc = (_hashes(x["demo_far"]) for x in (a, b, c))
    assert len(ha) == sum(TINY.values()) + len(TINY)  # audio + protocols
    assert ha == hb
    audio = [k for k in ha if k.endswith(".flac")]
    assert all(ha[k] != hc[k] for k in audio), "a different seed must change every file"


def test_render_utterance_is_a_pure_function_of_its_plan():
    plans = dc.plan_dataset("studio", 11, {"train": 4, "eval": 4})
    first = [dc.render_utterance(p, 11) for p in plans]
    again = [dc.render_utterance(p, 11) for p in reversed(plans)][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert len({x.tobytes() for x in first}) == len(first)


# --------------------------------------------------------------------------- idempotence


def test_existing_corpus_with_same_parameters_is_not_regenerated(tmp_path, monkeypatch):
    out = dc.generate_demo_corpus(
        tmp_path, seed=1, conditions=("studio", "phone"), utterances_per_split=TINY, progress=False
    )
    before = {name: _hashes(root) for name, root in out.items()}
    stamp_before = (out["demo_studio"] / dc.STAMP_NAME).read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although the corpus was complete")

    monkeypatch.setattr(dc, "render_utterance", boom)
    again = dc.generate_demo_corpus(
        tmp_path, seed=1, conditions=("studio", "phone"), utterances_per_split=TINY, progress=False
    )
    assert again == out
    assert {name: _hashes(root) for name, root in again.items()} == before
    assert (out["demo_studio"] / dc.STAMP_NAME).read_bytes() == stamp_before
    # a subset of the conditions is also complete already
    assert dc.generate_demo_corpus(
        tmp_path, seed=1, conditions=("phone",), utterances_per_split=TINY, progress=False
    ) == {"demo_phone": out["demo_phone"]}


def test_other_parameters_regenerate_cleanly(tmp_path):
    root = dc.generate_demo_corpus(tmp_path, seed=1, conditions=("studio",), utterances_per_split=TINY, progress=False)[
        "demo_studio"
    ]
    (root / "notes.txt").write_text("not ours")
    old = _hashes(root)
    smaller = {"train": 4, "eval": 5}
    dc.generate_demo_corpus(tmp_path, seed=2, conditions=("studio",), utterances_per_split=smaller, progress=False)
    stamp = json.loads((root / dc.STAMP_NAME).read_text())
    assert stamp["params"]["seed"] == 2 and stamp["params"]["utterances_per_split"] == smaller
    assert len(_flacs(root)) == sum(smaller.values()), "files of the previous parameters must be gone"
    assert not (root / "ASVspoof2019_LA_dev").exists()
    assert not (root / PROTOCOL_DIR / PROTOCOLS["dev"]).exists()
    assert (root / "notes.txt").read_text() == "not ours", "only generated paths may be removed"
    new = _hashes(root)
    assert set(new) - {"notes.txt"} != set(old) - {"notes.txt"}
    assert stamp["files"] == {k: v for k, v in new.items() if k != "notes.txt"}
    result = ingest(root, "demo_studio", progress=False)
    assert len(result.manifest) == sum(smaller.values()) and len(result.rejects) == 0


def test_incomplete_or_damaged_corpus_is_regenerated(tmp_path):
    root = dc.generate_demo_corpus(tmp_path, seed=4, conditions=("phone",), utterances_per_split=TINY, progress=False)[
        "demo_phone"
    ]
    good = _hashes(root)
    victim = _flacs(root)[0]
    victim.write_bytes(b"not a flac")
    dc.generate_demo_corpus(tmp_path, seed=4, conditions=("phone",), utterances_per_split=TINY, progress=False)
    assert _hashes(root) == good

    # an interrupted run leaves no stamp (it is written last): everything is written again
    (root / dc.STAMP_NAME).unlink()
    _flacs(root)[1].unlink()
    dc.generate_demo_corpus(tmp_path, seed=4, conditions=("phone",), utterances_per_split=TINY, progress=False)
    assert _hashes(root) == good
    assert (root / dc.STAMP_NAME).is_file()


# --------------------------------------------------------------------------- learnability


def _eer(scores: np.ndarray, is_bonafide: np.ndarray) -> float:
    """Equal error rate; higher scores mean more bona fide."""
    scores = np.asarray(scores, dtype=float)
    is_bonafide = np.asarray(is_bonafide, dtype=bool)
    thresholds = np.unique(scores)
    frr = np.array([(scores[is_bonafide] < t).mean() for t in thresholds])
    far = np.array([(scores[~is_bonafide] >= t).mean() for t in thresholds])
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2)


def test_eer_helper():
    assert _eer([3, 4, 1, 2], [True, True, False, False]) == 0.0
    assert _eer([1, 2, 3, 4], [True, True, False, False]) == 1.0
    assert _eer([1, 3, 2, 4], [True, True, False, False]) == 0.5


def _tiny_random_encoder():
    from tasks.embed.loading import build_random_encoder

    return build_random_encoder("tiny-random").eval()


def _embed(paths, layer: int = -1) -> np.ndarray:
    """Mean over frames of hidden_states[layer]; input normalised per utterance."""
    import torch

    model = _tiny_random_encoder()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = []
        with torch.no_grad():
            for path in paths:
                x, _ = sf.read(path, dtype="float32")
                x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
                hidden = model(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states[layer]
                out.append(hidden[0].mean(0).numpy())
        return np.array(out)
    finally:
        torch.set_num_threads(threads)


def _fit_and_score(train, test_sets):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = train
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    return [_eer(model.decision_function(xt), yt) for xt, yt in test_sets]


def _split_features(root: Path, name: str):
    m = ingest(root, name, progress=False).manifest
    feats = _embed(m["path"])
    out = {}
    for split in ("train", "eval"):
        sel = (m["split"] == split).to_numpy()
        out[split] = (feats[sel], (m.loc[sel, "label"] == "bonafide").to_numpy())
    out["attack"] = m.loc[(m["split"] == "eval").to_numpy(), "attack"].to_numpy()
    return out


def test_learnable_but_not_trivial_in_condition(tmp_path):
    """LR on mean-pooled tiny-random wav2vec2 embeddings: clearly better than chance, far from perfect."""
    sizes = {"train": 60, "eval": 60}
    root = dc.generate_demo_corpus(
        tmp_path, seed=0, conditions=("studio",), utterances_per_split=sizes, progress=False
    )["demo_studio"]
    data = _split_features(root, "demo_studio")
    (eer,) = _fit_and_score(data["train"], [data["eval"]])
    assert 0.01 < eer < 0.40, f"in-condition EER {eer:.3f} outside (0.01, 0.40)"
    # the labels carry the signal: the same model trained on shuffled labels is near chance
    x, y = data["train"]
    shuffled = [_fit_and_score((x, np.random.default_rng(i).permutation(y)), [data["eval"]])[0] for i in range(5)]
    assert np.mean(shuffled) > eer + 0.15, (eer, shuffled)


@pytest.mark.slow
def test_cross_condition_is_harder_than_in_condition(tmp_path):
    sizes = {"train": 60, "eval": 60}
    out = dc.generate_demo_corpus(tmp_path, seed=0, utterances_per_split=sizes, progress=False)
    data = {name: _split_features(root, name) for name, root in out.items()}
    names = list(data)
    matrix = np.array([_fit_and_score(data[tr]["train"], [data[te]["eval"] for te in names]) for tr in names])
    in_condition = np.diag(matrix)
    cross = matrix[~np.eye(len(names), dtype=bool)]
    assert ((in_condition > 0.01) & (in_condition < 0.40)).all(), matrix
    assert cross.mean() > in_condition.mean() + 0.05, matrix
