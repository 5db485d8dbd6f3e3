"""The embed progress bar a person reads: files and whole audio clock times, speed, ETA."""

from __future__ import annotations

import re

from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import EmbedProgress, embed_manifest
from tasks.embed.shards import Shard


def shard(key: str, seconds: list[float]) -> Shard:
    return Shard(
        key=key, dataset="d", rows=tuple((f"{key}{i}", "d", "/x.flac", s, "sha") for i, s in enumerate(seconds))
    )


def test_progress_shows_files_clock_times_and_eta(capsys):
    shards = [shard("a", [300.25, 400.5]), shard("b", [3000.125])]
    bar = EmbedProgress(shards, "embed test")
    assert bar.bar.total == 3701  # whole audio-seconds, never 3700.875
    bar.advance(shards[0])
    assert bar.bar.done.startswith("2/3 files, audio 11:40/1:01:40")
    bar.advance(shards[1])
    bar.close()
    shown = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(
        r"100%\|.*\| 3/3 files, audio 1:01:40/1:01:40, [\d.]+× real time \[\d\d:\d\d<\d\d:\d\d\]", shown
    ), shown
    assert "3700.875" not in shown and "audio-s/s" not in shown


def test_embed_prints_the_bar_on_stderr(tmp_path, audio_manifest, capsys):
    spec = EncoderSpec(id="tiny-random", layers=(-1,))
    embed_manifest(audio_manifest, spec, str(tmp_path / "store"), shard_seconds=5.0)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{len(audio_manifest)}/{len(audio_manifest)} files, audio " in final and final.lstrip().startswith(
        "embed tiny-random"
    )


def test_gp_training_steps_report_through_the_progress_seam(capsys):
    """Inside a flow (progress_to_log) a GP's optimisation steps are log lines, never a raw tqdm bar."""
    import logging

    import numpy as np

    from addgp.progress import progress_to_log
    from tasks.train.dkl_gp import DKLGPDetector

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(1, 1, (20, 4)), rng.normal(-1, 1, (20, 4))].astype("float32")
    y = np.array(["bonafide"] * 20 + ["spoof"] * 20)
    lines: list[str] = []
    logger = logging.getLogger("test.gp.progress")
    logger.info = lambda fmt, *args: lines.append(fmt % args)  # type: ignore[method-assign]
    with progress_to_log(logger, every_percent=50, every_s=3600):
        DKLGPDetector(mode="exact", hidden_dims=[8], max_steps=12, calibration=None).fit(X, y)
    assert lines and re.fullmatch(r"train exact DKL GP: 12/12 steps done in \d+ s", lines[-1]), lines
    assert "it/s" not in capsys.readouterr().err  # no tqdm bar drawn
