"""What the nightly loop carries from night to night besides the champion: the held-out
evidence pooled until the promotion gate can decide, and the drift scores of recent nights.

``STATE/evidence-<detector>.json`` — the rows of nights that ended "not enough evidence yet",
kept for the champion they were gathered against::

    {"champion": MODEL_PATH, "nights": [RUN_ID, …],
     "held_out": [[dataset, utt_id], …], "learn": [[dataset, utt_id], …]}

Only row keys are kept (the rows themselves stay in the inbox manifest and the embedding
store). A pool gathered against another champion is not this champion's evidence and reads
as empty; a decided night clears the pool.

``STATE/drift-<detector>.json`` — ``{"nights": [drift record, …]}``, oldest first, at most
``keep`` nights (``nightly.drift.history_nights``), one per run id. A drift record
(``addgp.drift.NightDrift``; ``addgp drift --json`` prints the same tests, the nightly report's
metrics.json and the ``drift`` webhook carry the same record)::

    {"run_id", "champion_version", "variance_reference", "n_rows",
     "mmd": {"n_reference", "n_tonight", "alpha", "mmd2", "threshold", "p_value", "bandwidth", "drifted"},
     "variance": {"available": true, "reference_median", "tonight_median", "reference_q95",
                  "share_above_q95", "expected_share", "p_value", "alpha", "drifted"}
                 or {"available": false, "why", "drifted": false},
     "drifted"}

``STATE/learnt-<detector>.json`` — ``{"rows": [[dataset, utt_id], …]}``: every inbox row a
challenger of this detector was built to learn from (never a held-out row, never an eval copy),
in the order taken in, each once. A scheduled consolidation refits on the configured training
data plus these rows (tasks/nightly/consolidation.py). Row keys only: about 60 bytes a row,
like the batch ledger's list of files.
"""

from __future__ import annotations

import os
from dataclasses import asdict

from addgp.drift import DriftMeasurement, MmdTest, NightDrift, VarianceTest, VarianceUnmeasured
from addgp.nightly import EvidencePool
from storage.state import parse_state, read_state, remove_state, state_lock, state_path, write_state


def _evidence_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"evidence-{detector}.json")


def _learnt_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"learnt-{detector}.json")


def _drift_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"drift-{detector}.json")


def evidence_pool_from_json(record: dict) -> EvidencePool:
    return EvidencePool(
        champion=record.get("champion"),
        nights=list(record.get("nights", [])),
        held_out=[list(k) for k in record.get("held_out", [])],
        learn=[list(k) for k in record.get("learn", [])],
    )


def evidence_pool_to_json(pool: EvidencePool) -> dict:
    return asdict(pool)


def read_evidence_pool(state_dir: str | os.PathLike, detector: str, champion_path: str) -> EvidencePool:
    """The pooled evidence gathered against the champion at ``champion_path`` (empty for another)."""
    fix = "move it away: the pooled rows of undecided nights are then forgotten and the next night starts a new pool"
    path = _evidence_path(state_dir, detector)
    record = read_state(path, None, fix=fix)
    pool = None if record is None else parse_state(path, record, evidence_pool_from_json, fix=fix)
    if pool is None or pool.champion != champion_path:
        return EvidencePool(champion=champion_path)
    return pool


def save_evidence_pool(state_dir: str | os.PathLike, detector: str, pool: EvidencePool) -> None:
    write_state(_evidence_path(state_dir, detector), evidence_pool_to_json(pool))


def clear_evidence_pool(state_dir: str | os.PathLike, detector: str) -> None:
    remove_state(_evidence_path(state_dir, detector))


def drift_measurement_to_json(measured: DriftMeasurement) -> dict:
    """The two tests' record (module docstring) without the night's keys: ``addgp drift --json``'s."""
    variance = measured.variance
    return {
        "n_rows": measured.n_rows,
        "mmd": asdict(measured.mmd),
        "variance": {"available": variance.available, **asdict(variance)}
        if isinstance(variance, VarianceTest)
        else {"available": False, "why": variance.why, "drifted": False},
        "drifted": measured.drifted,
    }


def night_drift_to_json(night: NightDrift) -> dict:
    return {
        "run_id": night.run_id,
        "champion_version": night.champion_version,
        "variance_reference": night.variance_reference,
        **drift_measurement_to_json(night.measured),
    }


def night_drift_from_json(record: dict) -> NightDrift:
    variance = record["variance"]
    fields = {k: v for k, v in variance.items() if k != "available"}
    return NightDrift(
        run_id=record["run_id"],
        champion_version=record["champion_version"],
        variance_reference=record["variance_reference"],
        measured=DriftMeasurement(
            n_rows=record["n_rows"],
            mmd=MmdTest(**record["mmd"]),
            variance=VarianceTest(**fields) if variance["available"] else VarianceUnmeasured(variance["why"]),
        ),
    )


def read_drift_history(state_dir: str | os.PathLike, detector: str) -> list[NightDrift]:
    fix = "move it away: the report's drift trend then starts again from tonight"
    path = _drift_path(state_dir, detector)
    document = read_state(path, {"nights": []}, fix=fix)
    return parse_state(path, document, lambda d: [night_drift_from_json(r) for r in d["nights"]], fix=fix)


def record_drift(state_dir: str | os.PathLike, detector: str, night: NightDrift, keep: int) -> list[NightDrift]:
    """Add tonight's drift record (keyed by ``run_id``; a resumed night's repeat replaces it); the history."""
    with state_lock(state_dir, f"drift-{detector}.json"):
        nights = [r for r in read_drift_history(state_dir, detector) if r.run_id != night.run_id]
        nights = [*nights, night][-keep:]
        write_state(_drift_path(state_dir, detector), {"nights": [night_drift_to_json(r) for r in nights]})
    return nights


def read_learnt_rows(state_dir: str | os.PathLike, detector: str) -> list[list[str]]:
    """The keys ``[dataset, utt_id]`` of every inbox row learnt so far, oldest first."""
    fix = (
        "restore it from a backup; moving it away makes the next consolidation refit on the configured "
        "training data and tonight's rows only"
    )
    return read_state(_learnt_path(state_dir, detector), {"rows": []}, fix=fix)["rows"]


def record_learnt_rows(state_dir: str | os.PathLike, detector: str, keys: list[list[str]]) -> list[list[str]]:
    """Add ``keys`` not yet recorded (a resumed night's repeat adds nothing); every key, oldest first."""
    with state_lock(state_dir, f"learnt-{detector}.json"):
        rows = read_learnt_rows(state_dir, detector)
        known = {tuple(k) for k in rows}
        added = [list(k) for k in dict.fromkeys(tuple(k) for k in keys) if k not in known]
        if added:
            rows = [*rows, *added]
            write_state(_learnt_path(state_dir, detector), {"rows": rows})
    return rows
