"""Faults that lost, hid or duplicated embeddings (issue 14, cases 1–4), on generated data.

Dataset names that are not plain ASCII words, a file changed between ingest and embed, a
header that declares hours of audio, and a shard task of a run that no longer owns the store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers import write_tone
from typer.testing import CliRunner

from storage import embeddings as store
from storage.embeddings import (
    META_FIELDS,
    ShardLocation,
    StaleWriterError,
    dataset_folder,
    encoder_slug,
    read_embeddings,
    read_rejects,
    write_shard,
    writer_lock,
)
from storage.manifests import write_manifest
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
from tasks.ingest.common import finalize

SPEC = EncoderSpec("tiny-random", layers=(-1,))
# The names of the issue: each was hidden from pyarrow's discovery, and the CJK ones collided.
ODD_NAMES = ["Ödss-de", "(itw) 2024", "中文语料", "中文数据", " leading-space", "_scratch", ".dot", "plain_name"]
NO_REJECTS = pd.DataFrame(columns=store.REJECTS_SCHEMA.names)


def _manifest(tmp_path, dataset: str, n: int, splits=("train",), seed: int = 0) -> pd.DataFrame:
    folder = tmp_path / "audio" / hashlib.sha256(dataset.encode()).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        split = splits[i % len(splits)]
        bona = (i // len(splits)) % 2 == 0
        path = write_tone(folder / f"u{i:02d}.wav", 0.5 + 0.1 * (i % 3), seed=seed + i)
        rows.append(
            {
                "utt_id": f"u{i:02d}",
                "split": split,
                "label": "bonafide" if bona else "spoof",
                "attack": None if bona else "A01",
                "speaker": None,
                "path": path,
            }
        )
    return finalize(dataset, rows, progress=False).manifest


def test_dataset_folders_are_reversible_collision_free_and_never_hidden():
    folders = [dataset_folder(name) for name in ODD_NAMES]
    assert len(set(folders)) == len(ODD_NAMES)
    for name, folder in zip(ODD_NAMES, folders):
        assert not folder.startswith(("_", ".")), folder
        assert "/" not in folder and len(folder.encode()) < 256
        assert unquote(folder) == name  # percent-decoding gives the name back
    # plain names keep the folder that stores written before the encoding used
    assert dataset_folder("asvspoof2019_la") == "asvspoof2019_la"
    long_names = ["中" * 300 + "a", "中" * 300 + "b"]
    long_folders = [dataset_folder(n) for n in long_names]
    assert long_folders[0] != long_folders[1] and all(len(f.encode()) < 256 for f in long_folders)
    with pytest.raises(ValueError, match="empty"):
        dataset_folder("")


def test_rows_of_odd_dataset_names_are_visible_to_every_reader(tmp_path):
    root = str(tmp_path / "store")
    manifest = pd.concat(
        [_manifest(tmp_path, name, 2, seed=i * 10) for i, name in enumerate(ODD_NAMES)], ignore_index=True
    )
    summary = embed_manifest(manifest, SPEC, root, progress=False)
    assert summary.utterances_embedded == len(manifest) == 2 * len(ODD_NAMES)
    meta, matrix = read_embeddings(root)
    assert sorted(meta["dataset"].unique()) == sorted(ODD_NAMES) and len(matrix) == len(manifest)
    raw = ds.dataset(root).to_table(columns=["dataset", "utt_id"]).to_pandas()  # pyarrow's own discovery
    assert len(raw) == len(manifest) and sorted(raw["dataset"].unique()) == sorted(ODD_NAMES)
    assert embed_manifest(manifest, SPEC, root, progress=False).shards_planned == 0  # nothing re-embedded


def test_a_selection_that_finds_nothing_names_what_the_store_holds(tmp_path):
    """An fp32 model asking an int8-only store used to hear only "no embeddings for encoder=…"."""
    root = str(tmp_path / "store")
    int8 = EncoderSpec("tiny-random", layers=(-1,), variant="int8")
    manifest = _manifest(tmp_path, "demo", 2)
    embed_manifest(manifest, int8, root, progress=False)
    with pytest.raises(ValueError, match=r"no embeddings .*encoder=tiny-random,.*it holds encoder=tiny-random\+int8"):
        read_embeddings(root, encoder="tiny-random", datasets=["demo"])
    with pytest.raises(ValueError, match="holds no rows for these datasets"):
        read_embeddings(root, encoder="tiny-random+int8", datasets=["other"])


def test_a_store_written_with_the_old_folder_names_is_still_read(tmp_path):
    """Old stores put 'Ödss-de' under '_dss-de': discovery skipped it; the store's readers must not."""
    root = tmp_path / "store"
    slug = encoder_slug("tiny-random", "mean", None)
    folder = root / slug / "_dss-de"
    folder.mkdir(parents=True)
    meta = pd.DataFrame(
        {
            "utt_id": ["a", "b"],
            "dataset": ["Ödss-de"] * 2,
            "sha256": ["0" * 64, "1" * 64],
            "encoder": ["tiny-random"] * 2,
            "random_weights": [True] * 2,
            "layer": [2, 2],
            "pooling": ["mean"] * 2,
            "crop_s": [None, None],
        }
    )
    schema = store.embedding_schema(3, "float32")
    columns = [pa.array(meta[f.name].tolist(), type=f.type) for f in META_FIELDS]
    columns.append(pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3))
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), folder / "part-oldkey.parquet")
    rows, matrix = read_embeddings(str(root))
    assert list(rows["utt_id"]) == ["a", "b"] and matrix.shape == (2, 3)
    done = store.completed_keys(str(root), "tiny-random", "mean", None, [2])
    assert ("Ödss-de", "a", "0" * 64) in done


def test_unusual_dataset_names_round_trip_through_embed_train_evaluate_report(tmp_path):
    from flows.cli import app

    runner = CliRunner()
    names = ["Ödss-de", "(itw) 2024", "中文语料", "中文数据", " leading-space", "_scratch"]
    paths = []
    for i, name in enumerate(names):
        manifest = _manifest(tmp_path, name, 12, splits=("train", "eval"), seed=100 * i)
        path = tmp_path / "manifests" / f"m{i}.parquet"
        path.parent.mkdir(exist_ok=True)
        write_manifest(manifest, str(path))
        paths.append(str(path))
    embeddings, models = str(tmp_path / "store"), str(tmp_path / "models")
    result = runner.invoke(app, ["embed", *paths, "--encoder", "tiny-random", "--store", embeddings])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{") :])["utterances_embedded"] == 12 * len(names)
    result = runner.invoke(
        app,
        [
            "train",
            *paths,
            "--store",
            embeddings,
            "--models",
            models,
            "--name",
            "lr",
            "--encoder",
            "tiny-random",
            "--dev-splits",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    scores = tmp_path / "scores.parquet"
    result = runner.invoke(
        app, ["evaluate", *paths, "--store", embeddings, "--model", f"{models}/lr", "-o", str(scores), "--n-boot", "0"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_parquet(scores)["dataset"].unique()) == sorted(names)
    result = runner.invoke(
        app, ["report", str(scores), "--reports-root", str(tmp_path / "reports"), "--run-id", "odd", "--n-boot", "20"]
    )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "reports" / "odd" / "report.md").read_text()
    for name in names:
        assert name.strip() in markdown, name


def test_a_file_changed_between_ingest_and_embed_is_rejected_naming_both_hashes(tmp_path):
    manifest = _manifest(tmp_path, "alpha", 3)
    changed = manifest.iloc[1]
    write_tone(changed["path"], 0.7, seed=99)  # new bytes under the manifest's old sha256
    new_hash = hashlib.sha256(Path(changed["path"]).read_bytes()).hexdigest()
    root = str(tmp_path / "store")
    summary = embed_manifest(manifest, SPEC, root, progress=False)
    assert summary.utterances_embedded == 2 and summary.rejects == 1
    reason = read_rejects(root).set_index("utt_id").at[changed["utt_id"], "reason"]
    assert changed["sha256"] in reason and new_hash in reason and "changed since ingest" in reason
    assert changed["utt_id"] not in set(read_embeddings(root)[0]["utt_id"])


def test_a_header_declaring_hours_is_rejected_and_the_run_completes(tmp_path):
    """A 32 KB WAV whose header says 1 Hz decodes to 4.4 h at 16 kHz (GBs): reject before decoding."""
    manifest = _manifest(tmp_path, "alpha", 3)
    poison = tmp_path / "poison.wav"
    sf.write(str(poison), np.zeros(16000, np.int16), 1, subtype="PCM_16")
    assert poison.stat().st_size < 40_000
    rows = finalize(
        "alpha",
        [
            {
                "utt_id": "poison",
                "split": "train",
                "label": "spoof",
                "attack": None,
                "speaker": None,
                "path": str(poison),
            }
        ],
        progress=False,
    ).manifest
    assert rows["duration_s"].iat[0] == 16000.0
    full = pd.concat([manifest, rows], ignore_index=True)
    root = str(tmp_path / "store")
    summary = embed_manifest(full, SPEC, root, progress=False, max_seconds=600)
    assert summary.utterances_embedded == 3 and summary.rejects == 1
    reason = read_rejects(root).set_index("utt_id").at["poison", "reason"]
    assert "16000 s" in reason and "600 s" in reason and "max_seconds" in reason
    # a crop bounds what is decoded: the same file is cropped, not rejected
    cropped = embed_manifest(
        rows, EncoderSpec("tiny-random", layers=(-1,), crop_seconds=2.0), root, progress=False, max_seconds=600
    )
    assert cropped.utterances_embedded == 1 and cropped.rejects == 0


def test_a_shard_of_a_run_that_lost_the_store_is_not_committed(tmp_path):
    root = str(tmp_path / "store")
    with writer_lock(root) as old_token:
        pass  # the old run's client dies here: its lock is gone, its workers are not
    with writer_lock(root) as new_token:
        assert new_token != old_token and store.current_epoch(root) == new_token
        location = ShardLocation(root, encoder_slug("tiny-random", "mean", None), "alpha", "k1")
        meta = pd.DataFrame(
            {
                "utt_id": ["a"],
                "dataset": ["alpha"],
                "sha256": ["0" * 64],
                "encoder": ["tiny-random"],
                "random_weights": [True],
                "layer": [2],
                "pooling": ["mean"],
                "crop_s": [None],
            }
        )
        with pytest.raises(StaleWriterError, match="newer run"):
            write_shard(location, meta, np.ones((1, 4), np.float32), "float32", NO_REJECTS, fence=old_token)
        assert not list((tmp_path / "store").rglob("*.parquet")), "a refused shard left files behind"
        write_shard(location, meta, np.ones((1, 4), np.float32), "float32", NO_REJECTS, fence=new_token)
    assert len(ds.dataset(root).to_table()) == 1


# Issue 22, case 1: a shard with no row embedded must never change the store's schema.
def _bad_rows(tmp_path, dataset: str, shape: str) -> pd.DataFrame:
    """A dataset of one shard: every row a permanent reject ('rejected': a NaN WAV), every row a
    transient one ('transient': the file deleted after ingest), both ('mixed'), or both beside a row
    that embeds ('partial')."""
    folder = tmp_path / "bad" / dataset
    folder.mkdir(parents=True)
    rows = []
    kinds = {"rejected": ["nan"], "transient": ["gone"], "mixed": ["nan", "gone"], "partial": ["tone", "nan", "gone"]}
    for i, kind in enumerate(kinds[shape]):
        path = folder / f"{kind}{i}.wav"
        if kind == "nan":
            sf.write(str(path), np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
        else:
            write_tone(path, 0.5, seed=i)
        rows.append(
            {
                "utt_id": f"{kind}{i}",
                "split": "eval",
                "label": "spoof",
                "attack": None,
                "speaker": None,
                "path": str(path),
            }
        )
    manifest = finalize(dataset, rows, progress=False).manifest
    assert len(manifest) == len(rows), "ingest must let these files through: the embed stage meets them"
    for path in manifest["path"]:
        if Path(path).name.startswith("gone"):
            Path(path).unlink()
    return manifest


def _old_zero_width_marker(location: ShardLocation) -> None:
    """What earlier versions wrote for a shard with no row embedded: zero rows, an embedding of width 0."""
    path = Path(location.embeddings_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(store.embedding_schema(0, "float32").empty_table(), path)


def _every_reader_reads(
    tmp_path, root: str, good: pd.DataFrame, bad: list[str], raw: bool = True, embedded: int = 0
) -> None:
    """The readers the issue lists, each on the good dataset beside ``bad`` shards sorting first and last
    (``raw``: pyarrow's own discovery too; ``embedded``: rows each bad dataset did embed)."""
    from flows.cli import app
    from storage import frames as frame_cache
    from tasks.embed.encoder import resolve_layers
    from tasks.embed.frames import cache_frames, frame_spec

    if raw:
        table = ds.dataset(root).to_table(columns=["dataset", "embedding"])  # pyarrow's own discovery
        assert set(table.column("dataset").to_pylist()) == {"mid", *(bad if embedded else [])}
        assert table.schema.field("embedding").type.list_size > 0
    meta, matrix = read_embeddings(root, datasets=["mid"])
    assert len(meta) == len(good) and matrix.shape[1] > 0
    for name in bad:  # another dataset's selection: its rows, or said to be empty — not an Arrow type error
        if embedded:
            assert len(read_embeddings(root, datasets=[name])[0]) == embedded
        else:
            with pytest.raises(ValueError, match="no embeddings"):
                read_embeddings(root, datasets=[name])
    assert set(read_embeddings(root)[0]["dataset"]) == {"mid", *(bad if embedded else [])}
    manifest = tmp_path / "mid.parquet"
    write_manifest(good, str(manifest))
    runner = CliRunner()
    models = str(tmp_path / "models")
    train = ["train", str(manifest), "--store", root, "--models", models, "--name", "lr", "--encoder", "tiny-random"]
    result = runner.invoke(app, [*train, "--dev-splits", ""])
    assert result.exit_code == 0, result.output
    scores = tmp_path / "scores.parquet"
    evaluate = ["evaluate", str(manifest), "--store", root, "--model", f"{models}/lr", "-o", str(scores)]
    result = runner.invoke(app, [*evaluate, "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(scores)) == (good["split"] == "eval").sum()
    # The frame cache lives in the same store and plans through the embeddings' readers.
    spec = resolve_layers(SPEC)
    summary = cache_frames(good, spec, root, spec.layers[0], 1.0, progress=False)
    assert summary.utterances == len(good)
    fspec = frame_spec(spec, spec.layers[0], 1.0)
    assert len(frame_cache.read_frames(root, fspec.name, spec.layers[0] - 1, 1.0, good)[0]) == len(good)


@pytest.mark.parametrize("shape", ["rejected", "transient", "mixed", "partial"])
def test_a_shard_that_embeds_nothing_leaves_every_reader_working(tmp_path, shape):
    """The issue's NaN WAV alone in its dataset: its shard's empty file of width 0, sorting first,
    made pyarrow.dataset, read_embeddings (any dataset), train and evaluate fail for the whole store.
    Each shape sorts first ('aa…') and last ('zz…') beside a good dataset."""
    root = str(tmp_path / "store")
    good = _manifest(tmp_path, "mid", 12, splits=("train", "eval"))
    bad = [f"aa-{shape}", f"zz-{shape}"]
    manifest = pd.concat([good, *(_bad_rows(tmp_path, name, shape) for name in bad)], ignore_index=True)
    embedded = int(manifest["utt_id"].str.startswith("tone").sum()) // len(bad)
    summary = embed_manifest(manifest, SPEC, root, progress=False)
    assert summary.utterances_embedded == len(good) + embedded * len(bad)
    assert summary.rejects == len(manifest) - len(good) - embedded * len(bad)
    parts = sorted(Path(root).rglob("part-*.parquet"))
    assert parts and all(pq.read_metadata(p).num_rows > 0 for p in parts), "a shard wrote a file of no rows"
    assert {p.parent.name for p in parts} == {"mid", *(bad if embedded else [])}
    assert all(pq.read_schema(p).field("embedding").type.list_size > 0 for p in parts)
    _every_reader_reads(tmp_path, root, good, bad, embedded=embedded)
    # A re-run: permanent rejects are done (their rejects file records the shard), transient ones are tried again.
    again = embed_manifest(manifest, SPEC, root, progress=False)
    transient = int(manifest["utt_id"].str.startswith("gone").sum())
    assert again.rejects == transient and again.utterances_embedded == 0
    assert again.shards_planned == (len(bad) if transient else 0)
    assert read_rejects(root)["utt_id"].str.startswith("nan").sum() == (0 if shape == "transient" else len(bad))


def test_a_shard_committed_with_permanent_rejects_only_is_not_redone(tmp_path):
    """With no embeddings file, the rejects file says the shard is complete (``shard_exists``)."""
    root = str(tmp_path / "store")
    location = ShardLocation(root, encoder_slug("tiny-random", "mean", None), "alpha", "k1")
    identity = {"dataset": "alpha", "utt_id": "a", "sha256": "0" * 64, "path": "/a.wav"}
    no_rows = pd.DataFrame(columns=[f.name for f in META_FIELDS])
    transient = pd.DataFrame([{**identity, "reason": "audio file missing", "kind": store.TRANSIENT}])
    write_shard(location, no_rows, np.zeros((0, 0), np.float32), "float32", transient)
    assert not store.shard_exists(location)  # a transient shard is still to do
    permanent = pd.DataFrame([{**identity, "reason": "audio contains NaN", "kind": store.PERMANENT}])
    write_shard(location, no_rows, np.zeros((0, 0), np.float32), "float32", permanent)
    assert store.shard_exists(location) and not Path(location.embeddings_path).exists()


def test_a_store_holding_old_zero_width_markers_still_reads_and_the_next_embed_removes_them(tmp_path):
    """Stores written by the version of the issue hold the markers already, sorting first and last:
    every reader but raw pyarrow skips them (they have no rows); the next embed run deletes them, so
    raw pyarrow readers read the store again, and the rejected rows are still not planned."""
    root = str(tmp_path / "store")
    good = _manifest(tmp_path, "mid", 12, splits=("train", "eval"))
    names = ["aa-rejected", "zz-rejected"]
    manifest = pd.concat([good, *(_bad_rows(tmp_path, name, "rejected") for name in names)], ignore_index=True)
    embed_manifest(manifest, SPEC, root, progress=False)
    slug = encoder_slug(SPEC.name, SPEC.pooling, SPEC.crop_seconds)
    markers = []
    for name in names:  # where the old version put them: the shard key of its rejects file
        (rejects,) = Path(root, "_rejects", slug, name).glob("rejects-*.parquet")
        markers.append(ShardLocation(root, slug, name, rejects.stem.removeprefix("rejects-")))
        _old_zero_width_marker(markers[-1])
    with pytest.raises(pa.ArrowTypeError, match="FixedSizeList"):  # the failure, for raw readers
        ds.dataset(root).to_table()
    for dtype in ("float32", "float16"):  # what bounds the readers' footer check finds every marker
        pq.write_table(store.embedding_schema(0, dtype).empty_table(), tmp_path / "m.parquet")
        assert (tmp_path / "m.parquet").stat().st_size < store.EMPTY_MARKER_MAX_BYTES / 2
    _every_reader_reads(tmp_path, root, good, names, raw=False)
    rerun = embed_manifest(manifest, SPEC, root, progress=False)
    assert rerun.shards_planned == 0 and not any(Path(m.embeddings_path).exists() for m in markers)
    assert set(ds.dataset(root).to_table(columns=["dataset"]).column("dataset").to_pylist()) == {"mid"}
