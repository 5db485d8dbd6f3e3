"""The degrade stage: every condition is deterministic, does what it claims, runs through real codecs, and runs exactly once."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from helpers import write_tone

from addgp.config import ConfigError, load_config
from flows.config import load_pipeline_config
from storage import degraded as cache
from storage.embeddings import read_embeddings
from storage.manifests import (
    read_manifest,
    read_rejects,
    rejects_path_for,
    write_manifest,
)
from storage.workspace import Workspace
from tasks.degrade.base import CodecUnavailable, DegradeContext, power
from tasks.degrade.channel import PacketLoss
from tasks.degrade.codecs import Codec, codec_available
from tasks.degrade.plan import augment_assignment
from tasks.degrade.registry import CONDITIONS, PRESETS, resolve
from tasks.degrade.reverb import synthetic_rir
from tasks.degrade.run import build_context, degrade_rows, degrade_wave, derived_dataset
from tasks.degrade.task import degrade_manifests
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest

SR = 16000
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
AVAILABLE = [
    name for name in CONDITIONS if all(t.kind != "codec" or codec_available(t.encoder, "w") for t in CONDITIONS[name])
]
UNAVAILABLE = sorted(set(CONDITIONS) - set(AVAILABLE))
ALL_RUNNABLE = AVAILABLE + sorted(PRESETS)


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Broadband test audio: harmonics with a moving pitch plus noise, covering 0–8 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 40) if k * 150 < SR / 2)
    wave = wave / np.abs(wave).max() * 0.3 + 0.02 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> DegradeContext:
    folder = tmp_path_factory.mktemp("noise")
    for i in range(2):
        write_tone(folder / f"hum{i}.wav", 1.3, sample_rate=22050, seed=50 + i)
    return DegradeContext(
        babble=[speechlike(1.1, seed=s) for s in (7, 8, 9)],
        babble_sha256=["b7", "b8", "b9"],
        noise_files=sorted(folder.iterdir()),
        digest="test",
    )


def spectrum_share(wave: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Share of the signal's energy between low_hz and high_hz."""
    spectrum = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SR)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum() / spectrum.sum())


@pytest.mark.parametrize("name", ALL_RUNNABLE)
def test_condition_is_deterministic_and_keeps_length(name, context):
    wave = speechlike()
    condition = resolve(name)
    first = degrade_wave(wave, condition, SR, 0, "sha-a", context)
    assert first.dtype == np.float32 and len(first) == len(wave)
    np.testing.assert_array_equal(first, degrade_wave(wave, condition, SR, 0, "sha-a", context))
    assert not np.array_equal(first, wave), f"{name} left the audio unchanged"
    if any(t.kind in ("noise", "babble", "noise_folder", "packet_loss", "reverb") for t in condition.transforms):
        # Randomised conditions draw a new realisation for another seed or another file.
        assert not np.array_equal(first, degrade_wave(wave, condition, SR, 1, "sha-a", context))
        assert not np.array_equal(first, degrade_wave(wave, condition, SR, 0, "sha-b", context))


@pytest.mark.parametrize("name", [n for n in CONDITIONS if n.startswith(("noise_", "babble_", "noisefolder_"))])
def test_noise_is_added_at_the_target_snr(name, context):
    wave = speechlike()
    out = degrade_wave(wave, resolve(name), SR, 3, "sha-a", context)
    target = CONDITIONS[name][0].snr_db
    measured = 10 * np.log10(power(wave) / power(out - wave))
    assert abs(measured - target) < 0.5, (name, measured)


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colour_has_its_spectral_slope(colour, slope):
    silent_plus_noise = degrade_wave(speechlike(4.0), resolve(f"noise_{colour}_snr0"), SR, 0, "x", DegradeContext())
    noise = silent_plus_noise - speechlike(4.0)
    spectrum = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    band = (freqs > 100) & (freqs < 7000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(spectrum[band]), 1)[0]
    assert abs(fitted - slope) < 0.2, fitted


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in ("resample_8k", "g711_mulaw", "g711_alaw", "amr_nb_12k2", "amr_nb_4k75", "telephony", "mobile")
        if n in ALL_RUNNABLE
    ],
)
def test_narrowband_conditions_remove_everything_above_4khz(name, context):
    wave = speechlike()
    assert spectrum_share(wave, 4200, SR / 2) > 0.01  # the input has energy up there
    out = degrade_wave(wave, resolve(name), SR, 0, "sha-a", context)
    assert spectrum_share(out, 4200, SR / 2) < 1e-4, name


def test_telephone_band_pass_keeps_300_to_3400_hz():
    wave = speechlike()
    out = degrade_wave(wave, resolve("bandpass_telephone"), SR, 0, "x", DegradeContext())
    assert spectrum_share(out, 3800, SR / 2) < 1e-3 and spectrum_share(out, 0, 200) < 1e-3
    assert spectrum_share(out, 300, 3400) > 0.95


@pytest.mark.parametrize("name", [n for n in AVAILABLE if CONDITIONS[n][0].kind == "codec"])
def test_codec_runs_through_ffmpeg_at_its_bitrate(name):
    codec: Codec = CONDITIONS[name][0]
    seconds = 4.0
    data, payload = codec.encode(speechlike(seconds), SR)
    with av.open(io.BytesIO(data)) as container:  # FFmpeg itself reads back what it wrote
        stream = container.streams.audio[0]
        # the stream's codec id is the encoder's: FFmpeg's mp3/aac/opus/G.711/AMR-NB, not a stand-in
        assert stream.codec_context.codec.id == av.codec.Codec(codec.encoder, "w").id
        assert stream.rate == codec.codec_rate
    bitrate = payload * 8 / seconds
    expected = codec.bitrate if codec.bitrate is not None else codec.codec_rate * 8  # G.711: 8 bits a sample
    if codec.encoder == "libopencore_amrnb":
        expected += 8 * 50  # each 20 ms AMR frame carries a 1-byte table-of-contents header (RFC 4867 §5.3)
    assert abs(bitrate - expected) / expected < 0.10, (name, bitrate)


def test_codec_output_is_aligned_with_the_input():
    wave = speechlike()
    for name in ("mp3_128k", "aac_64k", "opus_32k"):
        out = degrade_wave(wave, resolve(name), SR, 0, "x", DegradeContext())
        snr = 10 * np.log10(power(wave) / power(out - wave))
        assert snr > 5, (name, snr)  # a shifted copy would be near or below 0 dB


@pytest.mark.parametrize("name", UNAVAILABLE)
def test_missing_codec_is_a_clear_error(name):
    with pytest.raises(CodecUnavailable, match=rf"{CONDITIONS[name][0].encoder}.*pip install"):
        degrade_wave(speechlike(0.5), resolve(name), SR, 0, "x", DegradeContext())


def test_packet_loss_clipping_gain_reverb_do_what_they_claim():
    wave = speechlike(20.0)
    lost = PacketLoss(0.10).lost_packets(20000, np.random.default_rng(0))
    assert abs(lost.mean() - 0.10) < 0.01
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, lost.astype(int), 0])))[::2]
    assert abs(runs.mean() - 2.0) < 0.2  # bursts of the configured mean length
    out = degrade_wave(wave, resolve("packet_loss_10"), SR, 0, "x", DegradeContext())
    packets = out.reshape(-1, 320)
    silent = (packets == 0).all(axis=1).mean()
    assert 0.05 < silent < 0.15
    clipped = degrade_wave(wave, resolve("clip_5pct"), SR, 0, "x", DegradeContext())
    assert abs(np.mean(np.abs(clipped) >= np.abs(clipped).max()) - 0.05) < 0.005
    quiet = degrade_wave(wave, resolve("gain_m20db"), SR, 0, "x", DegradeContext())
    np.testing.assert_allclose(quiet, wave * 0.1, rtol=1e-5, atol=1e-7)
    loud = degrade_wave(wave, resolve("gain_p10db"), SR, 0, "x", DegradeContext())
    assert np.abs(loud).max() <= 1.0 and np.isclose(np.abs(loud).max(), 1.0)
    for name in ("reverb_rt03", "reverb_rt10"):
        wet = degrade_wave(wave, resolve(name), SR, 0, "x", DegradeContext())
        assert abs(10 * np.log10(power(wet) / power(wave))) < 0.01
    # The impulse response decays at its RT60: Schroeder's backward integral, T20 extrapolated to 60 dB.
    for rt60 in (0.3, 0.6, 1.0):
        rir = synthetic_rir(rt60, SR, np.random.default_rng(1)).astype(np.float64)
        edc = 10 * np.log10(np.cumsum(rir[::-1] ** 2)[::-1] / np.sum(rir**2))
        t5, t25 = np.argmax(edc < -5) / SR, np.argmax(edc < -25) / SR
        assert abs(3 * (t25 - t5) - rt60) / rt60 < 0.15, (rt60, 3 * (t25 - t5))


def test_chain_applies_each_part_in_order():
    wave = speechlike()
    chained = degrade_wave(wave, resolve("lowpass_4k+gain_m20db"), SR, 0, "x", DegradeContext())
    lowpassed = degrade_wave(wave, resolve("lowpass_4k"), SR, 0, "x", DegradeContext())
    np.testing.assert_allclose(chained, lowpassed * 0.1, rtol=1e-5, atol=1e-7)
    assert [t.kind for t in resolve("telephony").transforms] == ["bandlimit", "noise", "codec"]
    with pytest.raises(KeyError, match=r"unknown condition.*mp3_65k.*known: aac_32k"):
        resolve("lowpass_4k+mp3_65k")


def test_context_holds_babble_pool_and_noise_folder(tmp_path, audio_manifest):
    rows = audio_manifest[audio_manifest["dataset"] == "alpha"]
    (tmp_path / "noise" / "sub").mkdir(parents=True)
    write_tone(tmp_path / "noise" / "sub" / "fan.flac", 0.7, seed=3)
    (tmp_path / "noise" / "notes.txt").write_text("not audio")
    context = build_context(rows, SR, tmp_path / "noise")
    bona = rows[rows["label"] == "bonafide"]
    assert sorted(context.babble_sha256) == sorted(bona["sha256"]) and len(context.babble) == len(bona)
    assert [p.name for p in context.noise_files] == ["fan.flac"]
    write_tone(tmp_path / "noise" / "hum.wav", 0.5, seed=4)
    # another noise folder content is another cache key
    assert build_context(rows, SR, tmp_path / "noise").digest != context.digest
    out = degrade_wave(speechlike(), resolve("noisefolder_snr10"), SR, 0, "x", context)
    assert abs(10 * np.log10(power(speechlike()) / power(out - speechlike())) - 10) < 0.5


def test_babble_never_uses_the_utterance_itself(context):
    own = context.babble[0]
    other_only = context.excluding("b7")
    assert len(other_only.babble) == 2 and all(b is not own for b in other_only.babble)
    assert context.excluding("not-in-pool") is context


# ---------------------------------------------------------------- the stage on a manifest


@pytest.fixture
def corpus(tmp_path, audio_manifest):
    return Workspace.at(tmp_path / "work"), audio_manifest


def test_degrade_rows_is_exactly_once_and_embeds_once(corpus):
    workspace, manifest = corpus
    rows = manifest[manifest["dataset"] == "alpha"]
    condition = resolve("mp3_32k+babble_snr10")
    context = build_context(rows, SR, None)
    derived, rejects, first = degrade_rows(rows, condition, workspace.degraded, context=context, progress=False)
    assert first.written == len(rows) and first.reused == 0 and rejects.empty
    assert set(derived["dataset"]) == {derived_dataset("alpha", condition.name)} == {"alpha@mp3_32k+babble_snr10"}
    assert list(derived["utt_id"]) == list(rows["utt_id"])
    assert list(derived["source_sha256"]) == list(rows["sha256"])
    assert (derived["sha256"] != derived["source_sha256"]).all()
    assert (derived["condition"] == condition.name).all() and (derived["condition_params"] == condition.spec()).all()
    for path, sha, duration in zip(derived["path"], derived["sha256"], derived["duration_s"]):
        wave, rate = sf.read(path, dtype="float32")
        assert rate == SR and abs(len(wave) / SR - duration) < 1e-3
        assert cache.cached_sha256(path) == sha

    again, _, second = degrade_rows(rows, condition, workspace.degraded, context=context, progress=False)
    assert second.written == 0 and second.reused == len(rows)
    pd.testing.assert_frame_equal(again, derived)
    # A run killed half-way leaves whole files only; the next run makes just the missing ones.
    for path in derived["path"].iloc[:2]:
        Path(path).unlink()
    resumed, _, third = degrade_rows(rows, condition, workspace.degraded, context=context, progress=False)
    assert third.written == 2 and third.reused == len(rows) - 2
    pd.testing.assert_frame_equal(resumed, derived)
    # Made afresh elsewhere (another cache, later): the same bytes, so the same sha256.
    fresh, _, elsewhere = degrade_rows(
        rows, condition, str(workspace.root) + "/other-cache", context=context, threads=1, progress=False
    )
    assert elsewhere.written == len(rows) and list(fresh["sha256"]) == list(derived["sha256"])

    # Embedding the derived rows next to the clean ones: distinct keys, and a rerun adds nothing.
    store = str(workspace.embeddings)
    spec = EncoderSpec("tiny-random", layers=(-1,), pooling="mean")
    both = pd.concat([rows, derived], ignore_index=True)
    assert embed_manifest(both, spec, store, progress=False).utterances_embedded == 2 * len(rows)
    assert embed_manifest(both, spec, store, progress=False).utterances_embedded == 0
    meta, _ = read_embeddings(store)
    assert sorted(meta["dataset"].unique()) == ["alpha", "alpha@mp3_32k+babble_snr10"]


@pytest.mark.integration
@pytest.mark.slow
def test_degrade_on_dask_workers_matches_in_process(corpus):
    from distributed import Client, LocalCluster

    workspace, manifest = corpus
    rows = manifest[manifest["dataset"] == "alpha"]
    condition = resolve("babble_snr5+aac_32k")
    context = build_context(rows, SR, None)
    local, _, _ = degrade_rows(rows, condition, str(workspace.root) + "/local", context=context, progress=False)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        remote, _, summary = degrade_rows(
            rows, condition, workspace.degraded, context=context, client=client, progress=False
        )
        assert summary.written == len(rows)
        again, _, rerun = degrade_rows(
            rows, condition, workspace.degraded, context=context, client=client, progress=False
        )
    assert rerun.written == 0 and rerun.reused == len(rows)
    # same bytes whichever process made them
    assert list(remote["sha256"]) == list(local["sha256"]) == list(again["sha256"])


def test_a_copy_that_fails_to_decode_is_rejected_with_the_condition(corpus, monkeypatch):
    workspace, manifest = corpus
    rows = manifest[manifest["dataset"] == "beta"].copy()
    original = Codec.encode

    def corrupt(self, wave, sample_rate):
        data, payload = original(self, wave, sample_rate)
        return (b"\x00" * len(data), payload) if wave.size > 15000 else (data, payload)  # the longer files break

    monkeypatch.setattr(Codec, "encode", corrupt)
    rows.loc[rows.index[0], "path"] = str(workspace.root) + "/missing.flac"
    derived, rejects, summary = degrade_rows(rows, resolve("opus_16k"), workspace.degraded, progress=False)
    assert summary.rejects == len(rejects) >= 2 and len(derived) + len(rejects) == len(rows)
    assert rejects["reason"].str.startswith("condition opus_16k: ").all()
    assert rejects["reason"].str.contains("failed to decode").any() and rejects["reason"].str.contains("missing").any()
    assert set(rejects["dataset"]) == {"beta@opus_16k"}


def test_stage_writes_derived_manifests_and_rerun_adds_nothing(tmp_path, audio_manifest):
    workspace = Workspace.at(tmp_path / "work")
    clean = []
    for dataset, group in audio_manifest.groupby("dataset"):
        frame = group.assign(split=["train", "eval"] * (len(group) // 2))
        clean.append(write_manifest(frame, workspace.manifest(dataset)))
    config = {
        "name": "t",
        "workdir": str(tmp_path / "work"),
        "datasets": [{"name": d, "adapter": "protocol_csv", "root": str(tmp_path)} for d in ("alpha", "beta")],
        "encoder": {"id": "tiny-random"},
        "train": {
            "datasets": ["alpha"],
            "detectors": [{"name": "lr", "kind": "logreg"}],
            "augment": {"conditions": ["noise_pink_snr5", "resample_8k"], "fraction": 1.0},
        },
        "evaluate": {"conditions": ["resample_8k"]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "c.yaml")
    first = degrade_manifests(clean, cfg, workspace, progress=False)
    names = sorted(p.rsplit("/", 1)[-1] for p in first.manifests)
    assert names == ["alpha@noise_pink_snr5.parquet", "alpha@resample_8k.parquet", "beta@resample_8k.parquet"]
    alpha_8k = read_manifest(workspace.manifest("alpha@resample_8k"))
    # eval rows for evaluation plus the training rows augmentation assigned to resample_8k
    assert set(alpha_8k["split"]) == {"train", "eval"}
    train_alpha = audio_manifest[audio_manifest["dataset"] == "alpha"].iloc[::2]
    assert len(read_manifest(workspace.manifest("alpha@noise_pink_snr5"))) + (
        alpha_8k["split"] == "train"
    ).sum() == len(train_alpha)
    assert read_rejects(rejects_path_for(workspace.manifest("beta@resample_8k"))).empty
    before = [read_manifest(p) for p in first.manifests]
    second = degrade_manifests(clean, cfg, workspace, progress=False)
    assert sum(s.written for s in first.summaries) > 0 and sum(s.written for s in second.summaries) == 0
    assert first.manifests == second.manifests
    for frame, path in zip(before, second.manifests):
        pd.testing.assert_frame_equal(read_manifest(path), frame)


def test_augment_assignment_is_stable_and_hits_the_fraction():
    rows = pd.DataFrame({"dataset": "d", "utt_id": [f"u{i}" for i in range(4000)]})
    assigned = augment_assignment(rows, ["a", "b"], 0.25, seed=0)
    assert abs(assigned.notna().mean() - 0.25) < 0.03
    assert abs((assigned == "a").sum() - (assigned == "b").sum()) < 200
    # a row keeps its draw when other rows arrive
    more = pd.concat([rows, pd.DataFrame({"dataset": "d", "utt_id": ["new1", "new2"]})], ignore_index=True)
    pd.testing.assert_series_equal(augment_assignment(more, ["a", "b"], 0.25, seed=0).iloc[:4000], assigned)


def test_unknown_condition_is_a_config_error_naming_key_and_known_names(tmp_path):
    raw = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    raw["evaluate"]["conditions"] = ["mp3_64k", "mp3_65k"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"c\.yaml: evaluate\.conditions: .*\['mp3_65k'\].*known.*mp3_64k.*telephony"):
        load_pipeline_config(tmp_path / "c.yaml", check_paths=False)
    raw["evaluate"]["conditions"] = []
    raw["train"]["augment"] = {"conditions": ["voip+nope"], "fraction": 0.5}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"train\.augment\.conditions: .*voip\+nope"):
        load_pipeline_config(tmp_path / "c.yaml", check_paths=False)
    raw["train"]["augment"] = {"conditions": ["noisefolder_snr10"], "fraction": 0.5}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"degrade\.noise_dir"):
        load_config(tmp_path / "c.yaml", check_paths=False)


def test_committed_configs_name_only_known_conditions():
    demo = load_pipeline_config(CONFIGS / "demo.yaml", check_paths=False)
    assert 2 <= len(demo.evaluate.conditions) <= 3
    bench = load_pipeline_config(CONFIGS / "benchmark.yaml", check_paths=False)
    assert set(PRESETS) <= set(bench.evaluate.conditions)
