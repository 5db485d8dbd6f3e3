"""What every ingest adapter shares: candidate rows → probed, validated manifest + rejects.

An adapter only knows its corpus layout: it turns protocol files and folders into
*candidate rows* (dicts with utt_id, split, label, attack, speaker, path and any extra
columns) and *rejects* for lines it could not parse. ``finalize`` then does the work that
is the same for every corpus: read each audio header (duration) and hash its bytes in
parallel, and move every bad row (missing file, unreadable or empty audio, duplicate id,
unknown label, a bona fide row naming an attack) to the rejects table with its reason.

Parallelism: rows are probed on threads in chunks (one task per chunk, not per file: per-file
tasks cost more in executor overhead than the probe of a short file), and the header is read
with one libsndfile call through soundfile's cffi handle. A process pool was measured and
rejected: no gain on 2 cores, and it cannot run inside daemonic Dask workers. See
docs/benchmarks.md ("Ingest throughput") for the figures.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from addgp.contracts import BONAFIDE, LABELS, MANIFEST_COLUMNS, REJECTS_SCHEMA
from addgp.progress import progress_bar
from storage.paths import absolute

HASH_CHUNK_BYTES = 1 << 20
# Paths per task handed to a probe thread: one task per file costs more executor
# overhead than the probe of a short file itself.
MAX_CHUNK_ROWS = 256
PROBE_MODES = ("full", "exists", "none")
_PROBE_MODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("addgp_ingest_probe_mode", default=None)


class LayoutError(ValueError):
    """ROOT does not look like the corpus the adapter reads: says what was expected and found."""


class OptionError(TypeError, ValueError):
    """An adapter option that is unknown, of the wrong type, or missing where it is required.

    Both a TypeError (what Python raises for an unexpected keyword) and a ValueError, so
    callers catching either see it.
    """


@dataclass
class IngestResult:
    dataset: str
    manifest: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=lambda: REJECTS_SCHEMA.empty_table().to_pandas())
    # rows per split the layout listed (before probing); a split listed and left with no row
    # was lost at ingest (tasks/ingest/losses.py). Empty for a manifest read back from disk.
    expected_rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> IngestSummary:
        """Counts for people and logs: rows per split × label, attacks, rejects by reason, and
        what was lost: splits listed with no row left, the share of rows rejected."""
        m = self.manifest
        by_split = {
            split: {label: int((group["label"] == label).sum()) for label in LABELS}
            for split, group in m.groupby("split", sort=True)
        }
        total = len(m) + len(self.rejects)
        has_policy = "label_policy" in m
        return IngestSummary(
            dataset=self.dataset,
            rows=int(len(m)),
            rejects=int(len(self.rejects)),
            reject_fraction=len(self.rejects) / total if total else 0.0,
            expected_rows=dict(self.expected_rows),
            lost_splits=sorted(s for s, n in self.expected_rows.items() if n and s not in by_split),
            by_split=by_split,
            attacks={str(k): int(v) for k, v in m["attack"].value_counts(dropna=True).sort_index().items()},
            hours=round(float(m["duration_s"].sum()) / 3600.0, 3) if len(m) else 0.0,
            reject_reasons={str(k): int(v) for k, v in self.rejects["reason"].value_counts().items()},
            label_policy=sorted(str(v) for v in m["label_policy"].dropna().unique()) if has_policy else None,
            resynthesised_rows=(int(m["resynthesised"].astype(bool).sum()) if "resynthesised" in m else 0)
            if has_policy
            else None,
        )


@dataclass(frozen=True)
class IngestSummary:
    """What one corpus's ingest kept and lost: rows per split × label, attacks, rejects by
    reason, the splits the layout listed that ended with no row, the share rejected."""

    dataset: str
    rows: int
    rejects: int
    reject_fraction: float
    expected_rows: dict[str, int]  # rows per split the layout listed (before probing)
    lost_splits: list[str]  # listed splits left with no row
    by_split: dict[str, dict[str, int]]
    attacks: dict[str, int]
    hours: float
    reject_reasons: dict[str, int]
    # how resynthesised audio was labelled (tasks/ingest/label_policy.py); None where the corpus has none
    label_policy: list[str] | None = None
    resynthesised_rows: int | None = None

    def as_dict(self) -> dict:
        """The summary as the CLI prints it and the run report's notes hold it (no label-policy keys where None)."""
        record = asdict(self)
        if self.label_policy is None:
            del record["label_policy"], record["resynthesised_rows"]
        return record


@dataclass(frozen=True)
class IngestedCorpus:
    """The ingest stage's result for one corpus: its summary and where its manifest is
    (``reused``: a manifest already written, kept as it was)."""

    summary: IngestSummary
    manifest: str
    reused: bool

    def as_dict(self) -> dict:
        return {**self.summary.as_dict(), "manifest": self.manifest, "reused": self.reused}


@contextmanager
def probe_mode(mode: str):
    """Run adapters with ``finalize(probe=mode)`` without passing it through each adapter.

    ``with probe_mode("none"): get_adapter(name)(root)`` gives the counts a layout declares
    without opening any audio (``addgp datasets`` uses it). Adapters with side effects
    (``hf`` materialising audio, ``inbox`` recording a batch) skip them unless the mode is
    ``"full"`` — see ``current_probe_mode``.
    """
    if mode not in PROBE_MODES:
        raise ValueError(f"probe mode must be one of {PROBE_MODES}, got {mode!r}")
    token = _PROBE_MODE.set(mode)
    try:
        yield
    finally:
        _PROBE_MODE.reset(token)


def current_probe_mode() -> str:
    """The probe mode set by ``probe_mode`` (``"full"`` outside it)."""
    return _PROBE_MODE.get() or "full"


def reject(dataset: str, source: str, utt_id: str | None, reason: str) -> dict:
    return {"dataset": dataset, "source": source, "utt_id": utt_id, "reason": reason}


def _probe_fd_libsndfile(fd: int, path: str) -> tuple[int, int]:
    """(frames, samplerate) of an open file with one sf_open_fd/sf_close through soundfile's
    cffi handle (the descriptor stays open).

    About half the cost of ``soundfile.SoundFile(path)``, whose Python-side set-up
    dominates for the short files of deepfake corpora; cffi releases the GIL inside
    libsndfile, so threads overlap the C work. (libsndfile keeps the text of the last open
    error in a global; under threads a failure message may rarely name another file's error.)
    """
    info = _ffi.new("SF_INFO*")
    handle = _snd.sf_open_fd(fd, _snd.SFM_READ, info, 0)
    if handle == _ffi.NULL:
        message = _ffi.string(_snd.sf_strerror(_ffi.NULL)).decode("utf-8", "replace")
        raise RuntimeError(f"Error opening {path!r}: {message}")
    _snd.sf_close(handle)
    return int(info.frames), int(info.samplerate)


def _probe_fd_soundfile(fd: int, path: str) -> tuple[int, int]:
    with sf.SoundFile(fd, closefd=False) as handle:
        return handle.frames, handle.samplerate


try:  # soundfile's low-level handles; fall back to its public API if they ever move
    _snd, _ffi = sf._snd, sf._ffi
    _snd.sf_open_fd, _snd.sf_close, _snd.sf_strerror, _snd.SFM_READ  # noqa: B018
    _read_header_fd = _probe_fd_libsndfile
except AttributeError:  # pragma: no cover
    _read_header_fd = _probe_fd_soundfile


def probe_audio(path: str) -> tuple[float, str]:
    """Duration in seconds from the header and the sha256 of the bytes, streamed.

    The file is opened once: libsndfile reads the header from the descriptor, which is then
    rewound and hashed (one open per file matters on network filesystems).
    Raises ValueError with a reason for files that cannot be used: ``audio file missing``,
    ``not a regular file``, ``empty file (0 bytes)``, ``unreadable audio: …`` (libsndfile
    cannot parse it, or the file cannot be read) or ``zero-length audio`` (a valid header
    with no samples).
    """
    try:
        # O_NONBLOCK: a FIFO among the audio must not hang the ingest (no effect on files).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValueError("audio file missing") from None
    except IsADirectoryError:
        raise ValueError("not a regular file") from None
    except OSError as exc:
        raise ValueError(f"unreadable audio: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size == 0:
            raise ValueError("empty file (0 bytes)")
        try:
            frames, samplerate = _read_header_fd(fd, path)
        except (RuntimeError, sf.LibsndfileError, OSError) as exc:
            raise ValueError(f"unreadable audio: {exc}") from None
        if frames <= 0 or samplerate <= 0:
            raise ValueError("zero-length audio")
        os.lseek(fd, 0, os.SEEK_SET)
        digest = hashlib.sha256()
        while chunk := os.read(fd, HASH_CHUNK_BYTES):
            digest.update(chunk)
        return frames / samplerate, digest.hexdigest()
    finally:
        os.close(fd)


ProbeOutcome = tuple  # (duration or None, sha256 or None, problem or None)


def _probe_one(path: str, mode: str = "full") -> ProbeOutcome:
    if mode == "none":
        return None, None, None
    if mode == "exists":
        return (None, None, None) if os.path.isfile(path) else (None, None, "audio file missing")
    try:
        duration, digest = probe_audio(path)
        return duration, digest, None
    except ValueError as exc:
        return None, None, str(exc)


def _probe_serial(paths: list[str], mode: str = "full") -> list[ProbeOutcome]:
    return [_probe_one(p, mode) for p in paths]


def probe_paths(
    paths: list[str],
    *,
    workers: int = 16,
    mode: str = "full",
    progress: bool = True,
    desc: str = "probe",
) -> Iterator[ProbeOutcome]:
    """Yield ``(duration, sha256, problem)`` for each path, in order, probing on threads.

    Work is handed out in chunks (at most ``MAX_CHUNK_ROWS`` paths, at least four chunks
    per thread), and the progress bar advances per chunk. ``mode``: ``"full"`` (header +
    hash), ``"exists"`` (only check that the file exists) or ``"none"`` (touch nothing).
    """
    if mode not in PROBE_MODES:
        raise ValueError(f"probe mode must be one of {PROBE_MODES}, got {mode!r}")
    n = len(paths)
    workers = max(1, int(workers))
    bar = progress_bar(total=n, desc=desc, unit="file", disable=not progress, leave=False, mininterval=0.5)
    try:
        if mode == "none":
            bar.update(n)
            for _ in paths:
                yield None, None, None
            return
        size = max(1, min(MAX_CHUNK_ROWS, math.ceil(n / (workers * 4))))
        chunks = [paths[i : i + size] for i in range(0, n, size)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for chunk, outcomes in zip(chunks, pool.map(_probe_serial, chunks, [mode] * len(chunks))):
                bar.update(len(chunk))
                yield from outcomes
    finally:
        bar.close()


def _names_an_attack(value) -> bool:
    """True for a real attack id; None, NaN, blank and ``-`` mean none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value).strip() not in ("", "-")


def finalize(
    dataset: str,
    candidates: Iterable[dict],
    rejects: Iterable[dict] = (),
    *,
    workers: int = 16,
    progress: bool = True,
    probe: str | None = None,
) -> IngestResult:
    """Probe every candidate's audio and split good rows from rejects.

    I/O-bound work (header reads, hashing) runs on ``workers`` threads in chunks (see
    ``probe_paths``): libsndfile (through cffi) and hashlib release the GIL, so threads keep
    a disk or network filesystem busy.
    ``probe="full"`` (default, or the mode set by ``probe_mode``) fills ``duration_s`` and
    ``sha256``; audio paths are made absolute (against the working directory) so that the
    manifest means the same files to a worker started anywhere. ``"exists"`` only rejects missing files and ``"none"`` touches no audio at
    all — both leave ``duration_s``/``sha256`` empty, so their manifests are for counting
    (``addgp datasets``) and are refused by ``write_manifest``.
    """
    probe = probe or current_probe_mode()
    rows = list(candidates)
    bad = list(rejects)

    good: list[dict] = []
    seen: set[str] = set()
    for row in rows:
        source = row.pop("_source", row.get("path", ""))
        if row.get("label") not in LABELS:
            bad.append(reject(dataset, source, row.get("utt_id"), f"unknown label {row.get('label')!r}"))
        elif row.get("label") == BONAFIDE and _names_an_attack(row.get("attack")):
            bad.append(
                reject(
                    dataset,
                    source,
                    row.get("utt_id"),
                    f"bona fide row names attack {row['attack']!r} (a bona fide file has no attack): fix the label or the attack",
                )
            )
        elif row["utt_id"] in seen:
            bad.append(reject(dataset, source, row["utt_id"], "duplicate utt_id"))
        else:
            seen.add(row["utt_id"])
            # Absolute: the manifest is read by Dask workers started in other directories.
            good.append({**row, "path": absolute(row["path"])})

    accepted: list[dict] = []
    outcomes = probe_paths(
        [str(row["path"]) for row in good],
        workers=workers,
        mode=probe,
        progress=progress,
        desc=f"ingest {dataset}",
    )
    for row, (duration, digest, problem) in zip(good, outcomes):
        if problem is not None:
            bad.append(reject(dataset, row["path"], row["utt_id"], problem))
            continue
        accepted.append({**row, "dataset": dataset, "duration_s": duration, "sha256": digest})

    manifest = pd.DataFrame(accepted)
    if manifest.empty:
        manifest = pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    for column in ("attack", "speaker"):
        if column not in manifest:
            manifest[column] = None
    manifest["duration_s"] = manifest["duration_s"].astype("float64")
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest[list(MANIFEST_COLUMNS) + extra]
    rejects_df = pd.DataFrame(bad, columns=REJECTS_SCHEMA.names)
    listed = Counter(str(row["split"]) for row in rows if row.get("split") is not None)
    return IngestResult(
        dataset=dataset, manifest=manifest, rejects=rejects_df, expected_rows=dict(sorted(listed.items()))
    )


def require_dir(root: str | os.PathLike, what: str) -> Path:
    """ROOT as a Path, or a LayoutError saying what was expected."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a directory; expected the root of {what}")
    return root


def listing(root: Path, limit: int = 8) -> str:
    """A short listing of what ROOT holds, for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    except OSError:
        return "(unreadable)"
    shown = ", ".join(names[:limit]) or "(empty)"
    return shown + (f", … ({len(names)} entries)" if len(names) > limit else "")
