"""The inbox: a drop folder of newly collected audio, labelled by sidecar files, ingested in batches named after their delivery folder.

Sidecars (``*.csv``/``*.tsv`` tables, ``*.json`` tables or per-file objects) label the audio
beside them; paths must stay inside ROOT, and audio without a sidecar entry or over
``max_seconds`` is rejected. Each full ingest compares the rows with the batch ledger
(``storage/inbox_ledger.py``): files not seen before, or whose bytes changed, form new batches,
one per top-level delivery folder, so a nightly run can ask for what it has not yet used. A
missing drop folder is an ``InboxMissingError`` (unless ``create_missing``): a mistyped path
must not read as "nothing new" forever. Layout, options and batch naming: docs/ingest.md,
"``inbox``".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from addgp.contracts import BONAFIDE, SPOOF
from addgp.nightly import InboxBatch
from storage.inbox_ledger import LEDGER_NAME, batch_to_json, ledger_path, ledger_transaction, read_ledger
from tasks.ingest.common import (
    IngestResult,
    LayoutError,
    OptionError,
    current_probe_mode,
    finalize,
    reject,
    require_dir,
)
from tasks.ingest.scan import none_if_dash, normalise_label, read_table, rel_posix, strip_extension, walk_audio

FILE_KEYS = ("file", "path", "filename", "file_name", "audio")
ATTACK_KEYS = ("generator", "attack", "model", "system")
DATE_KEYS = ("collected", "collected_at", "collected_on", "date")
LIST_KEYS = ("files", "items", "records")
KEPT_KEYS = ("source", "language", "notes")
MAX_BATCH_NAME = 80
logger = logging.getLogger(__name__)


class InboxMissingError(LayoutError):
    """The drop folder does not exist and the config did not ask to create it (exit code 2)."""


def rows_of_batches(manifest: pd.DataFrame, batch_ids: Iterable[str]) -> pd.DataFrame:
    """The manifest rows of the given batches."""
    return manifest[manifest["batch_id"].isin(list(batch_ids))].reset_index(drop=True)


# ------------------------------------------------------------------ batch names


def batch_name(folder: str | None, now: dt.datetime) -> str:
    """The batch name of a delivery folder, sanitised; the UTC ingest time for files at ROOT.

    Batch ids show up in reports, logs and the ledger: letters (any script), digits, ``.``,
    ``_`` and ``-`` stay, every other run of characters becomes one ``-``.
    """
    name = re.sub(r"[^\w.-]+", "-", folder or "").strip("-.")[:MAX_BATCH_NAME]
    return name or now.strftime("%Y%m%dT%H%M%SZ")


def unique_batch_id(name: str, existing: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, … when the ledger has it (a folder delivered to twice)."""
    candidate, n = name, 2
    while candidate in existing:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _fresh_by_folder(utt_ids: pd.Series, fresh: list[int], one_batch: bool) -> dict[str | None, list[int]]:
    """Fresh row positions per delivery folder (the top-level folder below ROOT; None for files at
    ROOT), folders in name order; all in one group when the batch is named by the option."""
    groups: dict[str | None, list[int]] = {}
    for i in fresh:
        utt_id = str(utt_ids.iat[i])
        folder = None if one_batch or "/" not in utt_id else utt_id.split("/", 1)[0]
        groups.setdefault(folder, []).append(i)
    return dict(sorted(groups.items(), key=lambda item: (item[0] is None, item[0] or "")))


# ------------------------------------------------------------------ sidecars


def _first(record: dict, keys: Iterable[str]):
    for key in keys:
        if key in record and record[key] not in (None, ""):
            return record[key]
    return None


def _parse_date(value) -> str | None:
    """ISO date (YYYY-MM-DD) from a date or datetime string; ValueError when unparseable."""
    text = none_if_dash(value)
    if text is None:
        return None
    try:
        return (
            dt.date.fromisoformat(text[:10]).isoformat() if len(text) >= 10 else dt.date.fromisoformat(text).isoformat()
        )
    except ValueError:
        raise ValueError(f"unparseable collected date {text!r} (expected YYYY-MM-DD)") from None


def _sidecar_records(path: Path, audio_stems: dict[tuple[Path, str], Path]) -> tuple[list[tuple[str, dict]], list[str]]:
    """([(where, record with its file field as written)], [problems]) for one sidecar file."""
    records: list[tuple[str, dict]] = []
    problems: list[str] = []
    if path.suffix.lower() in (".csv", ".tsv"):
        table = read_table(path, strict_fields=False)
        problems += [f"line {n}: {why}" for n, why in table.bad]
        for number, record in table.rows:
            records.append((f"{path}:{number}", record))
    else:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return [], [f"not valid JSON ({exc})"]
        if isinstance(data, list):
            entries, defaults = data, {}
        elif isinstance(data, dict) and any(isinstance(data.get(k), list) for k in LIST_KEYS):
            key = next(k for k in LIST_KEYS if isinstance(data.get(k), list))
            entries, defaults = data[key], {k: v for k, v in data.items() if k != key}
        elif isinstance(data, dict):
            audio = audio_stems.get((path.parent, path.stem))
            if audio is None:
                return [], [f"a per-file sidecar needs an audio file named {path.stem}.<ext> beside it"]
            entries, defaults = [{**data, "file": audio.name}], {}
        else:
            return [], ["expected a JSON object or a list of objects"]
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.append(f"entry {index}: expected an object, got {type(entry).__name__}")
                continue
            records.append((f"{path}#{index}", {**defaults, **entry}))
    out = []
    for where, record in records:
        name = _first(record, FILE_KEYS)
        if name is None:
            problems.append(f"{where}: no file/path field")
            continue
        out.append((where, {**record, "file": str(name)}))
    return out, problems


def _resolve_inside(sidecar: Path, name: str, root: Path) -> Path:
    """The audio a sidecar names, resolved (links followed) inside the drop folder ``root``.

    ValueError with the reason for an absolute path or one that leaves ``root`` (``../``, a
    link pointing elsewhere): a sidecar may only label audio that was delivered with it.
    """
    if Path(name).is_absolute() or name.startswith("~"):
        raise ValueError(
            f"path {name!r} is absolute; sidecar paths are relative to the sidecar's folder inside the inbox"
        )
    file = (sidecar.parent / name).resolve()
    if not file.is_relative_to(root):
        raise ValueError(
            f"path {name!r} resolves to {file}, outside the inbox {root}; only audio inside the drop folder is read"
        )
    return file


# ------------------------------------------------------------------ adapter


def _quarantine_long(result: IngestResult, max_seconds: float) -> IngestResult:
    """Rows whose header declares more than ``max_seconds`` of audio become rejects.

    A drop folder takes files from anywhere: a WAV header claiming 1 Hz makes 32 KB decode
    to hours at 16 kHz and kills the embed worker, night after night. Such a file is
    rejected by name here, and the night goes on with the rest.
    """
    manifest = result.manifest
    long = manifest["duration_s"] > max_seconds
    if not long.any():
        return result
    extra = pd.DataFrame(
        [
            reject(
                result.dataset,
                path,
                utt_id,
                f"declares {seconds:.0f} s of audio, over max_seconds={max_seconds:g} "
                "(a header with a wrong sample rate, or a recording to cut up); raise the inbox option max_seconds to keep it",
            )
            for path, utt_id, seconds in zip(
                manifest.loc[long, "path"], manifest.loc[long, "utt_id"], manifest.loc[long, "duration_s"]
            )
        ]
    )
    rejects = pd.concat([result.rejects, extra], ignore_index=True) if len(result.rejects) else extra
    return IngestResult(
        dataset=result.dataset,
        manifest=manifest[~long].reset_index(drop=True),
        rejects=rejects,
        expected_rows=result.expected_rows,
    )


def ingest(
    root: str | os.PathLike,
    dataset: str = "inbox",
    *,
    state_dir: str | os.PathLike | None = None,
    split: str = "train",
    label_map: dict | None = None,
    batch_id: str | None = None,
    record_batch: bool = True,
    max_seconds: float = 1800.0,
    create_missing: bool = False,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    if "://" not in str(root) and not Path(root).exists():
        # A mistyped or unmounted drop folder must not read as "nothing new" night after night:
        # it is an error unless the config asks for the folder to be created (a first run).
        if not create_missing:
            raise InboxMissingError(
                f"the inbox drop folder {Path(root).resolve()} does not exist (datasets[name={dataset}].root); "
                "mount it or correct the path, or set nightly.create_inbox: true to have the nightly create it"
            )
        if current_probe_mode() == "full":
            Path(root).mkdir(parents=True)
            logger.warning(
                "created the missing inbox drop folder %s (nightly.create_inbox: true)", Path(root).resolve()
            )
        return finalize(dataset, [], [], workers=workers, progress=False)
    root = require_dir(root, "the inbox drop folder")
    state = str(state_dir) if state_dir is not None else str(root)
    ledger_file = Path(ledger_path(state)).resolve() if "://" not in state else None
    audio = walk_audio(root)
    audio_stems = {(p.parent, p.stem): p for p in audio}
    sidecars = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in (".csv", ".tsv", ".json")
        and not p.name.startswith(".")
        and p.resolve() != ledger_file
        and p.name != LEDGER_NAME
    )
    if not audio and not sidecars:
        # An empty drop folder is the normal state between deliveries: nothing new, not an error.
        return finalize(dataset, [], [], workers=workers, progress=False)

    root_resolved = root.resolve()
    candidates: list[dict] = []
    rejects: list[dict] = []
    labelled: set[str] = set()
    for sidecar in sidecars:
        records, problems = _sidecar_records(sidecar, audio_stems)
        rejects += [reject(dataset, str(sidecar), None, f"unparseable sidecar: {p}") for p in problems]
        for where, record in records:
            try:
                file = _resolve_inside(sidecar, record["file"], root_resolved)
            except ValueError as exc:
                rejects.append(reject(dataset, where, None, str(exc)))
                continue
            utt_id = strip_extension(rel_posix(file, root_resolved))
            try:
                collected = _parse_date(_first(record, DATE_KEYS))
            except ValueError as exc:
                rejects.append(reject(dataset, where, utt_id, str(exc)))
                continue
            label = normalise_label(record.get("label"), label_map)
            row = {
                "utt_id": utt_id,
                "split": none_if_dash(record.get("split")) or split,
                "label": label,
                "attack": none_if_dash(_first(record, ATTACK_KEYS)) if label == SPOOF else None,
                "speaker": none_if_dash(record.get("speaker")),
                "path": str(file),
                "collected": collected,
                "sidecar": str(sidecar),
                "_source": where,
            }
            for key in KEPT_KEYS:
                value = record.get(key)
                row[key] = none_if_dash(value) if not isinstance(value, (dict, list)) else json.dumps(value)
            candidates.append(row)
            labelled.add(str(file))
    for path in audio:
        if str(path.resolve()) not in labelled:
            rejects.append(
                reject(dataset, str(path), strip_extension(rel_posix(path, root)), "no sidecar entry (label unknown)")
            )

    result = finalize(dataset, candidates, rejects, workers=workers, progress=progress)
    if current_probe_mode() == "full":
        result = _quarantine_long(result, max_seconds)
    manifest = result.manifest
    if current_probe_mode() != "full" or not record_batch:
        known = read_ledger(state)["files"]
        manifest["batch_id"] = [known.get(u, {}).get("batch_id") for u in manifest["utt_id"]]
        return result

    with ledger_transaction(state) as ledger:
        ledger["dataset"] = ledger.get("dataset") or dataset
        ledger["root"] = str(root.resolve())
        files = ledger["files"]
        fresh = [
            i
            for i, (u, sha) in enumerate(zip(manifest["utt_id"], manifest["sha256"]))
            if files.get(u, {}).get("sha256") != sha
        ]
        if fresh and batch_id is not None and any(b["batch_id"] == batch_id for b in ledger["batches"]):
            raise OptionError(f"inbox: batch id {batch_id!r} is already in {ledger_path(state)}")
        now = dt.datetime.now(dt.UTC)
        for folder, rows in _fresh_by_folder(manifest["utt_id"], fresh, batch_id is not None).items():
            new_id = unique_batch_id(batch_id or batch_name(folder, now), {b["batch_id"] for b in ledger["batches"]})
            batch_rows = manifest.iloc[rows]
            batch = InboxBatch(
                batch_id=new_id,
                folder=folder,
                created_at=now.isoformat(timespec="seconds"),
                n_files=len(batch_rows),
                n_bonafide=int((batch_rows["label"] == BONAFIDE).sum()),
                n_spoof=int((batch_rows["label"] == SPOOF).sum()),
                hours=round(float(batch_rows["duration_s"].sum()) / 3600.0, 4),
            )
            ledger["batches"].append(batch_to_json(batch))
            for i in rows:
                files[manifest["utt_id"].iat[i]] = {"batch_id": new_id, "sha256": manifest["sha256"].iat[i]}
        manifest["batch_id"] = [files[u]["batch_id"] for u in manifest["utt_id"]]
    return result
