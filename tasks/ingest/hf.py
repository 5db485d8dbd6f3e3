"""Hugging Face datasets: ``save_to_disk`` folders, ``audiofolder`` trees, or a Hub id.

ROOT is a ``save_to_disk`` folder (``datasets.load_from_disk``), an ``audiofolder`` tree (read
natively here: ``datasets``' own builder would need torchcodec to encode the audio), or a Hub id
(``datasets.load_dataset`` when online; offline, a LayoutError says so). Audio columns are read
undecoded (decoding would need torchcodec + FFmpeg): a value that points at an existing file is
used in place, audio bytes stored inside the dataset are written once to ``materialise_dir`` so
later stages read files. Column mapping options and defaults: docs/ingest.md, "``hf``".
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import soundfile as sf

from addgp.contracts import BONAFIDE, MANIFEST_COLUMNS
from addgp.progress import progress_bar
from tasks.ingest.common import IngestResult, LayoutError, OptionError, current_probe_mode, finalize, listing, reject
from tasks.ingest.scan import (
    AUDIO_EXTENSIONS,
    none_if_dash,
    normalise_label,
    read_table,
    rel_posix,
    safe_name,
    walk_audio,
)

DEFAULT_SPLIT_MAP = {
    "training": "train",
    "validation": "dev",
    "valid": "dev",
    "test": "eval",
    "testing": "eval",
    "evaluation": "eval",
}
AUDIOFOLDER_SPLITS = ("train", "training", "validation", "valid", "dev", "test", "testing", "eval", "evaluation")
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")
AUDIO_FORMATS = ("keep", "flac")  # option audio_format of materialised audio
_FORMAT_EXT = {
    "WAV": ".wav",
    "WAVEX": ".wav",
    "FLAC": ".flac",
    "OGG": ".ogg",
    "MP3": ".mp3",
    "AIFF": ".aiff",
    "AU": ".au",
}
RESERVED = set(MANIFEST_COLUMNS) | {"_source"}


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~"))


# ------------------------------------------------------------------ audio values


def _sniff_extension(data: bytes) -> str:
    try:
        info = sf.info(io.BytesIO(data))
        return _FORMAT_EXT.get(info.format, "." + info.format.lower())
    except Exception:  # unreadable bytes: finalize will reject the file it lands in
        return ".bin"


def materialise(data: bytes, target_stem: Path, source_name: str | None, audio_format: str) -> Path:
    """Write embedded audio bytes once; returns the file (existing files are kept)."""
    ext = Path(source_name).suffix.lower() if source_name else ""
    if audio_format == "flac":
        target = target_stem.with_suffix(".flac")
        if target.is_file() and target.stat().st_size > 0:
            return target
        try:
            samples, rate = sf.read(io.BytesIO(data), always_2d=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".tmp-{target.name}")
            sf.write(tmp, samples, rate, format="FLAC")
            os.replace(tmp, target)
            return target
        except Exception:  # not decodable: keep the bytes as they are, finalize rejects them
            pass
    if ext not in AUDIO_EXTENSIONS:
        ext = _sniff_extension(data)
    target = target_stem.with_name(target_stem.name + ext)
    if target.is_file() and target.stat().st_size == len(data):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)
    return target


# ------------------------------------------------------------------ audiofolder


def _audiofolder_rows(root: Path, label_column: str, default_split: str) -> dict[str, list[dict]]:
    """{source split: [{"audio": {"path": …}, column: value, …}]} following audiofolder rules."""
    metadata: dict[Path, dict] = {}
    for meta_path in sorted(p for name in METADATA_NAMES for p in root.rglob(name)):
        if meta_path.suffix == ".csv":
            table = read_table(meta_path, delimiter=",", strict_fields=False)
            records = [r for _, r in table.rows]
        else:
            records = [json.loads(line) for line in meta_path.read_text().splitlines() if line.strip()]
        for record in records:
            name = record.get("file_name") or record.get("file")
            if name:
                metadata[(meta_path.parent / name).resolve()] = record
    by_split: dict[str, list[dict]] = {}
    files = walk_audio(root)
    for path in files:
        parts = Path(rel_posix(path, root)).parts
        source_split = parts[0] if len(parts) > 1 and parts[0].lower() in AUDIOFOLDER_SPLITS else default_split
        record = dict(metadata.get(path.resolve(), {}))
        record.pop("file_name", None)
        inner = parts[1:-1] if len(parts) > 1 and source_split == parts[0] else parts[:-1]
        if label_column not in record and inner:
            record[label_column] = inner[-1]  # audiofolder: the parent folder is the label
        record["audio"] = {"path": str(path), "bytes": None}
        by_split.setdefault(source_split, []).append(record)
    return by_split


# ------------------------------------------------------------------ datasets objects


def _load(root: str, config: str | None, revision: str | None):
    """(kind, object): kind is "disk", "audiofolder" or "hub"."""
    text = str(root)
    hub_id = text[len("hf://") :] if text.startswith("hf://") else None
    path = Path(os.path.expanduser(text))
    if hub_id is None and path.exists():
        if not path.is_dir():
            raise LayoutError(f"{path} is a file; expected a save_to_disk folder, an audiofolder tree or a Hub id")
        if _is_saved_dataset(path):
            from datasets import load_from_disk

            return "disk", load_from_disk(str(path))
        return "audiofolder", path
    hub_id = hub_id or (text if _looks_like_hub_id(text) else None)
    if hub_id is None:
        raise LayoutError(f"{root} is neither an existing folder (save_to_disk / audiofolder) nor a Hub id owner/name")
    if _offline():
        raise LayoutError(
            f"{hub_id!r} is not a local folder and the Hugging Face Hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set): "
            f"download it where there is network (datasets.load_dataset(...).save_to_disk(DIR)) and ingest DIR"
        )
    try:
        from datasets import load_dataset

        return "hub", load_dataset(hub_id, name=config, revision=revision)
    except Exception as exc:  # network errors, missing repos, gated datasets: one clear message
        raise LayoutError(
            f"could not load {hub_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}); "
            f"if this machine is offline, save the dataset with save_to_disk elsewhere and ingest that folder"
        ) from None


def _splits_of(obj, split: str) -> tuple[dict, bool]:
    """({source split: Dataset}, unsplit): a bare Dataset becomes one split named ``split``."""
    from datasets import DatasetDict, IterableDatasetDict

    if isinstance(obj, (DatasetDict, IterableDatasetDict, dict)):
        return dict(obj), False
    return {split: obj}, True


def _iter_records(rows, batch_size: int = 500):
    """Records one by one; datasets are read in batches so embedded bytes never pile up."""
    if isinstance(rows, list):
        yield from rows
        return
    for batch in rows.iter(batch_size=batch_size):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys)):
            yield dict(zip(keys, values))


def _audio_column(features, wanted: str | None, source) -> str:
    from datasets import Audio

    names = list(features)
    if wanted is not None:
        if wanted not in names:
            raise LayoutError(f"{source}: no audio column {wanted!r}; columns are {names}")
        return wanted
    for name, feature in features.items():
        if isinstance(feature, Audio):
            return name
    for name in ("audio", "path", "file", "filename", "file_name"):
        if name in names:
            return name
    raise LayoutError(f"{source}: no Audio feature and no audio/path/file column among {names}; pass audio_column=…")


def ingest(
    root: str | os.PathLike,
    dataset: str = "hf",
    *,
    audio_column: str | None = None,
    label_column: str = "label",
    label_map: dict | None = None,
    attack_column: str | None = None,
    speaker_column: str | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    split_map: dict | None = None,
    splits: list[str] | None = None,
    split: str = "eval",
    materialise_dir: str | os.PathLike | None = None,
    audio_format: str = "keep",
    keep_columns: str | list[str] = "all",
    config: str | None = None,
    revision: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    if audio_format not in AUDIO_FORMATS:
        raise OptionError(f"hf: audio_format must be 'keep' or 'flac', got {audio_format!r}")
    split_lookup = {**DEFAULT_SPLIT_MAP, **{str(k): str(v) for k, v in (split_map or {}).items()}}
    materialise_root = Path(materialise_dir) if materialise_dir is not None else None
    write_files = current_probe_mode() == "full"
    if isinstance(keep_columns, str) and keep_columns != "all":
        keep_columns = [keep_columns]
    kind, obj = _load(str(root), config, revision)

    # Every source as {source split: (columns, ClassLabel names or None, rows, audio column)};
    # rows: a list of records, or a `datasets` Dataset (an untyped library, hence Any).
    sources: dict[str, tuple[list[str], list | None, Any, str]] = {}
    unsplit = False
    if kind == "audiofolder":
        for name, records in _audiofolder_rows(obj, label_column, split).items():
            sources[name] = (sorted({k for r in records for k in r}), None, records, "audio")
        if not sources:
            raise LayoutError(
                f"{obj} holds no audio files and no saved dataset (state.json / dataset_dict.json); found: {listing(obj)}"
            )
    else:
        from datasets import Audio, ClassLabel, Value

        parts, unsplit = _splits_of(obj, split)
        for name, part in parts.items():
            audio_col = _audio_column(part.features, audio_column, f"{root} [{name}]")
            ds = (
                part.cast_column(audio_col, Audio(decode=False))
                if isinstance(part.features[audio_col], Audio)
                else part
            )
            label_feature = ds.features.get(label_column)
            names = label_feature.names if isinstance(label_feature, ClassLabel) else None
            scalar = [c for c, f in ds.features.items() if isinstance(f, (Value, ClassLabel))]
            sources[name] = (scalar + [audio_col], names, ds, audio_col)

    if splits:
        missing = [s for s in splits if s not in sources]
        if missing:
            raise LayoutError(f"{root}: no split(s) {missing}; the dataset has {sorted(sources)}")
        sources = {k: v for k, v in sources.items() if k in splits}

    def audio_value(record, audio_col):
        value = record.get(audio_col)
        if isinstance(value, dict):
            return value.get("path"), value.get("bytes")
        return (str(value) if value is not None else None), None

    candidates: list[dict] = []
    rejects: list[dict] = []
    for source_split, (columns, label_names, rows, audio_col) in sources.items():
        used = {audio_col, label_column, attack_column, speaker_column, id_column, split_column}
        kept = (
            [c for c in columns if c not in used]
            if keep_columns == "all"
            else [c for c in (keep_columns or []) if c in columns]
        )
        target_split = split_lookup.get(source_split, source_split)
        if not id_column:  # first pass: are the file stems usable as ids?
            narrow = rows if isinstance(rows, list) else rows.select_columns([audio_col])
            stems = [Path(p).stem if p else None for p, _ in (audio_value(r, audio_col) for r in _iter_records(narrow))]
            stems_unique = all(stems) and len(set(stems)) == len(stems)
        total = len(rows)
        bar = progress_bar(
            total=total,
            desc=f"read {dataset} [{source_split}]",
            unit="row",
            disable=not progress,
            leave=False,
            mininterval=0.5,
        )
        for index, record in enumerate(_iter_records(rows)):
            bar.update(1)
            source = f"{root} [{source_split}] row {index}"
            path_text, data = audio_value(record, audio_col)
            if id_column:
                utt_id = none_if_dash(record.get(id_column))
            else:
                utt_id = f"{target_split}/{stems[index] if stems_unique else f'{index:07d}'}"
            if not utt_id:
                rejects.append(reject(dataset, source, None, f"empty id in column {id_column!r}"))
                continue
            utt_id = str(utt_id)
            row_split = target_split
            if split_column:
                split_value = none_if_dash(record.get(split_column))
                row_split = split_lookup.get(split_value, split_value) if split_value else target_split
            raw_label = record.get(label_column)
            if label_names is not None and isinstance(raw_label, int) and 0 <= raw_label < len(label_names):
                raw_label = label_names[raw_label]
            label = normalise_label(raw_label, label_map)
            path: str | Path
            if data is not None and materialise_root is None and not write_files:
                path = f"{root}#{row_split}/{utt_id}"  # counting only: the audio stays embedded
            elif data is not None:
                if materialise_root is None:
                    bar.close()
                    raise OptionError(
                        f"hf: {root} stores the audio bytes inside the dataset; pass materialise_dir=DIR so they are "
                        f"written once as files (e.g. materialise_dir=runs/hf_audio/{dataset})"
                    )
                stem = materialise_root / safe_name(row_split) / safe_name(utt_id.replace("/", "__"))
                if write_files:
                    path = materialise(data, stem, path_text, audio_format)
                else:  # counting only (probe_mode): where the file would go
                    suffix = ".flac" if audio_format == "flac" else (Path(path_text).suffix if path_text else ".wav")
                    path = stem.with_name(stem.name + suffix)
            elif path_text:
                path = Path(path_text)
                if not path.is_absolute() and kind == "disk":
                    path = Path(str(root)) / path
            else:
                rejects.append(
                    reject(dataset, source, utt_id, "audio file missing (no path and no bytes in the dataset)")
                )
                continue
            row = {
                "utt_id": utt_id,
                "split": row_split,
                "label": label,
                "attack": none_if_dash(record.get(attack_column)) if attack_column and label != BONAFIDE else None,
                "speaker": none_if_dash(record.get(speaker_column)) if speaker_column else None,
                "path": str(path),
                "_source": source,
            }
            if not unsplit:
                row["hf_split"] = source_split
            for column in kept:
                value = record.get(column)
                if label_names is not None and column == label_column and isinstance(value, int):
                    value = label_names[value] if 0 <= value < len(label_names) else value
                row[column if column not in RESERVED else f"src_{column}"] = (
                    None if isinstance(value, (dict, list, bytes)) else value
                )
            candidates.append(row)
        bar.close()
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
