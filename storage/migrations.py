"""``addgp migrate WORKDIR``: a workdir's files in the formats of earlier addgp versions, brought
up to the current ones, one function per format.

The readers accept only the current formats and refuse an old file with an ``OldFormatError``
that names it and this command; the upgrade lives here and nowhere else. Each step finds the
files of its old format under the workdir's layout (storage/workspace.py), says what it changes
and, unless ``dry_run``, changes it (every write is atomic). A step is idempotent: on a file
already current it finds nothing, so a second run changes nothing. What a step cannot decide
alone (relative audio paths whose files are not found, a nightly report whose detector is not
recorded) it leaves and says why, and the readers keep refusing that file.

The steps, in order: rejects beside their manifest (moved to ``_rejects/``), manifests with
relative audio paths (made absolute), embed rejects without a kind (classed by their reason),
model cards of format ``addgp-model/1`` (sealed with their digest), inbox ledgers of version 1
(one list per champion detector), nightly reports in the shared ``reports/nightly/`` folder
(moved into their detector's folder).

Local workdirs only: a workdir on an object store is migrated on a local copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from addgp.contracts import MANIFEST_COLUMNS
from storage import champions
from storage.embeddings import PERMANENT, REJECTS_DIR, REJECTS_SCHEMA, TRANSIENT
from storage.inbox_ledger import LEDGER_VERSION, ledger_path, nightly_consumer
from storage.manifests import REJECTS_SUFFIX, is_rejects_table, rejects_path_for, relative_paths, write_manifest
from storage.models import CARD_FILE, DIGEST_KEY, FORMAT, OLD_FORMATS, WEIGHTS_FILE, card_digest
from storage.paths import atomic_write, is_url
from storage.reports import read_report_metrics
from storage.state import read_state, write_state
from storage.workspace import Workspace


@dataclass(frozen=True)
class Target:
    """What to migrate: ``workdir``; ``dry_run`` changes nothing; ``relative_to`` is the folder
    relative audio paths were ingested from (earlier readers resolved them against theirs)."""

    workdir: Path
    dry_run: bool = False
    relative_to: Path = field(default_factory=Path.cwd)


@dataclass
class StepResult:
    """One step's outcome: ``changed`` (or, in a dry run, to change), one line per file, and
    ``left``: files of the old format the step could not migrate, with why."""

    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def _manifest_folders(workdir: Path) -> list[Path]:
    """Where a workdir's manifests are: ``manifests/`` (storage/workspace.py), and the workdir
    itself (``addgp ingest … -o DIR/X.parquet`` names any folder: migrate that folder)."""
    return [folder for folder in (workdir / "manifests", workdir) if folder.is_dir()]


def _manifests(workdir: Path) -> list[Path]:
    out = []
    for folder in _manifest_folders(workdir):
        for path in sorted(folder.glob("*.parquet")):
            if path.name.startswith((".", "_")) or path.name.endswith(REJECTS_SUFFIX):
                continue
            if set(MANIFEST_COLUMNS) <= set(pq.read_schema(path).names):
                out.append(path)
    return out


def rejects_beside_manifests(target: Target) -> StepResult:
    """Rejects tables written beside their manifest (``DIR/X.rejects.parquet``, caught by a
    manifest glob) move to ``DIR/_rejects/X.rejects.parquet``."""
    result = StepResult()
    for folder in _manifest_folders(target.workdir):
        for old in sorted(folder.glob(f"*{REJECTS_SUFFIX}")):
            if not is_rejects_table(old):
                continue
            manifest = folder / f"{old.name[: -len(REJECTS_SUFFIX)]}.parquet"
            new = Path(rejects_path_for(manifest))
            if new.exists():
                result.left.append(f"{old}: {new} exists too; keep the right one and delete the other")
                continue
            result.changed.append(f"{old} → {new}")
            if not target.dry_run:
                new.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, new)
    return result


def absolute_manifest_paths(target: Target) -> StepResult:
    """Manifests holding relative audio paths get them resolved against ``target.relative_to``
    (where they were ingested from); one none of whose relative paths exists there is left."""
    result = StepResult()
    for path in _manifests(target.workdir):
        frame = pq.read_table(path).to_pandas()
        relative = relative_paths(frame)
        if not relative.any():
            continue
        resolved = [os.path.normpath(target.relative_to / os.path.expanduser(p)) for p in frame.loc[relative, "path"]]
        found = sum(os.path.exists(p) for p in resolved)
        if not found:
            result.left.append(
                f"{path}: none of its {len(resolved)} relative audio path(s) (e.g. {frame.loc[relative, 'path'].iloc[0]!r}) "
                f"is a file under {target.relative_to}; pass --relative-to the folder it was ingested from"
            )
            continue
        result.changed.append(
            f"{path}: {len(resolved)} relative audio path(s) resolved against {target.relative_to} "
            f"({found} found there)"
        )
        if not target.dry_run:
            frame.loc[relative, "path"] = resolved
            write_manifest(frame, path)
    return result


# Rejects of earlier versions carry no kind; their reason says it. These beginnings are the
# file-access failures (libsndfile's "System error" is how those versions reported a file
# they could not open, e.g. a relative path on a worker started elsewhere): transient.
UNCLASSED_TRANSIENT_REASONS = ("audio file missing", "unreadable audio", "not a regular file")
UNCLASSED_TRANSIENT_MARKER = "System error"


def reject_kind_of(reason: str) -> str:
    """The kind of a reject written before kinds were recorded, from its reason text."""
    text = str(reason)
    transient = text.startswith(UNCLASSED_TRANSIENT_REASONS) or UNCLASSED_TRANSIENT_MARKER in text
    return TRANSIENT if transient else PERMANENT


def embed_rejects_kinds(target: Target) -> StepResult:
    """Embed rejects files without ``kind`` get it from each row's reason (``reject_kind_of``),
    so the next embed retries the transient ones."""
    result = StepResult()
    root = Path(Workspace.at(target.workdir).embeddings) / REJECTS_DIR
    for path in sorted(root.rglob("rejects-*.parquet")) if root.is_dir() else []:
        if "kind" in pq.read_schema(path).names:
            continue
        frame = pq.read_table(path).to_pandas()
        kinds = frame["reason"].map(reject_kind_of)
        result.changed.append(
            f"{path}: {int((kinds == TRANSIENT).sum())} transient, {int((kinds == PERMANENT).sum())} permanent"
        )
        if not target.dry_run:
            frame = frame.assign(kind=kinds).reindex(columns=REJECTS_SCHEMA.names)
            with atomic_write(path) as handle:
                pq.write_table(pa.Table.from_pandas(frame, schema=REJECTS_SCHEMA, preserve_index=False), handle)
    return result


def seal_model_cards(target: Target) -> StepResult:
    """Model cards of an earlier format (no digest) get ``format`` and ``digest`` of the current
    one, after their weights are checked against the card's sha256 (a card whose weights
    differ is left: sealing it would vouch for them)."""
    result = StepResult()
    models = Path(Workspace.at(target.workdir).models)
    for path in sorted(models.glob(f"*/v*/{CARD_FILE}")) if models.is_dir() else []:
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not an old format: read_card names what is wrong with it
        if not isinstance(card, dict) or card.get("format") not in OLD_FORMATS:
            continue
        weights = path.parent / WEIGHTS_FILE
        recorded = (card.get("weights") or {}).get("sha256")
        actual = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None
        if actual is None or actual != recorded:
            result.left.append(f"{path}: its {WEIGHTS_FILE} does not match the sha256 the card records; retrain it")
            continue
        result.changed.append(f"{path}: format {card['format']} → {FORMAT}, digest added")
        if not target.dry_run:
            card["format"] = FORMAT
            card[DIGEST_KEY] = card_digest(card)
            with atomic_write(path, "w") as handle:
                json.dump(card, handle, indent=2, allow_nan=False)
    return result


def _champion_detectors(state: str) -> list[str]:
    """The detectors with a champion record (current or earlier) under ``state``."""
    out = []
    for path in sorted(Path(state).glob("champion-*.json")):
        detector = path.name[len("champion-") : -len(".json")]
        record = champions.read_champions(state, detector)
        if record["current"] is not None or record["history"]:
            out.append(detector)
    return out


# Version-1 ledgers had one consumer: every nightly, whatever its detector.
LEDGER_V1_CONSUMER = "nightly"


def inbox_ledger_v2(target: Target) -> StepResult:
    """An inbox ledger of version 1 (one list, ``nightly``): each detector with a champion record
    (its nights acknowledged those batches) gets that list as its own; a detector without one
    starts from none acknowledged, so its first night absorbs every batch."""
    result = StepResult()
    state = Workspace.at(target.workdir).state
    path = ledger_path(state)
    ledger = read_state(path, None, fix="restore it from a backup")
    if not isinstance(ledger, dict) or ledger.get("version") != 1:
        return result
    shared = list(ledger.get("consumers", {}).get(LEDGER_V1_CONSUMER, []))
    detectors = _champion_detectors(state)
    consumers = {k: list(v) for k, v in ledger.get("consumers", {}).items() if k != LEDGER_V1_CONSUMER}
    for detector in detectors:
        consumers.setdefault(nightly_consumer(detector), shared)
    result.changed.append(
        f"{path}: version 1 → {LEDGER_VERSION}, the {len(shared)} acknowledged batch(es) given to "
        + (", ".join(nightly_consumer(d) for d in detectors) or "no consumer (no champion record)")
    )
    if not target.dry_run:
        write_state(path, {**ledger, "version": LEDGER_VERSION, "consumers": consumers})
    return result


def _report_detector(report: Path, detectors: list[str]) -> str | None:
    """The detector a nightly report of the shared folder is about: recorded, else the folder of
    its champion's model (``…/models/NAME/vN``), else the workdir's only champion detector."""
    document = read_report_metrics(report)
    if document.get("detector"):
        return str(document["detector"])
    model_path = (document.get("champion") or {}).get("model_path")
    if model_path:
        return Path(str(model_path)).parent.name
    return detectors[0] if len(detectors) == 1 else None


def nightly_reports_by_detector(target: Target) -> StepResult:
    """Nightly reports in the shared ``reports/nightly/RUN`` of earlier versions move to
    ``reports/nightly/DETECTOR/RUN``, the folder the nightly of that detector publishes to."""
    result = StepResult()
    workspace = Workspace.at(target.workdir)
    shared = Path(workspace.reports) / "nightly"
    runs = sorted(p.parent for p in shared.glob("*/metrics.json")) if shared.is_dir() else []
    detectors = _champion_detectors(workspace.state)
    newest: dict[str, str] = {}
    for run in runs:
        detector = _report_detector(run, detectors)
        if detector is None:
            result.left.append(f"{run}: it names no detector; move it to {shared}/DETECTOR/ by hand")
            continue
        moved = shared / detector / run.name
        if moved.exists():
            result.left.append(f"{run}: {moved} exists too; keep the right one and delete the other")
            continue
        result.changed.append(f"{run} → {moved}")
        newest[detector] = run.name
        if not target.dry_run:
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run, moved)
    for detector, run_id in newest.items():
        pointer = shared / detector / "LATEST"
        if not pointer.exists() and not target.dry_run:
            with atomic_write(pointer, "w") as handle:
                handle.write(run_id)
    if (shared / "LATEST").exists() and not result.left and runs:
        result.changed.append(f"{shared / 'LATEST'}: removed (each detector's folder has its own)")
        if not target.dry_run:
            (shared / "LATEST").unlink()
    return result


@dataclass(frozen=True)
class Migration:
    title: str
    run: Callable[[Target], StepResult]


MIGRATIONS = (
    Migration("rejects beside their manifest", rejects_beside_manifests),
    Migration("manifests with relative audio paths", absolute_manifest_paths),
    Migration("embed rejects without a kind", embed_rejects_kinds),
    Migration("model cards without a digest (addgp-model/1)", seal_model_cards),
    Migration("inbox ledger of version 1", inbox_ledger_v2),
    Migration("nightly reports in the shared folder", nightly_reports_by_detector),
)


def check_workdir(workdir: str | os.PathLike) -> Path:
    """``workdir`` as a local folder; a URL or a missing folder is a ValueError naming it."""
    if is_url(workdir):
        raise ValueError(f"{workdir}: addgp migrate works on a local workdir; migrate a local copy and upload it")
    path = Path(workdir).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"workdir {workdir} is not a folder")
    return path
