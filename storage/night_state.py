"""The nightly state files as typed values (``addgp/nightly.py``): the champion in service and
the night under way, read and written in the JSON format ``storage/champions.py`` documents
(a record round-trips to the same file)."""

from __future__ import annotations

import os
from dataclasses import asdict

from addgp.nightly import ChallengerRecord, ChampionEvaluation, ChampionRecord, Night, StepCost
from storage import champions
from storage.inbox_ledger import batch_from_json, batch_to_json
from storage.nightly_records import evidence_pool_from_json, evidence_pool_to_json

_CHAMPION_OPTIONAL = ("version", "run_id", "promoted_at", "promoted_on", "batches", "step")


def _cost_from_json(cost: dict | None) -> StepCost | None:
    return StepCost(cost["wall_s"], cost["rows_learnt"], cost["inbox_rows"]) if cost is not None else None


def champion_from_json(record: dict) -> ChampionRecord:
    return ChampionRecord(
        model_path=record["model_path"],
        version=record.get("version"),
        run_id=record.get("run_id"),
        eer=record.get("eer"),
        promoted_at=record.get("promoted_at"),
        promoted_on=record.get("promoted_on"),
        batches=record.get("batches"),
        step=record.get("step"),
        cost=_cost_from_json(record.get("cost")),
    )


def champion_to_json(champion: ChampionRecord) -> dict:
    """The record as the champion file holds it: ``eer`` always (null until measured), the rest when known."""
    record: dict = {"model_path": champion.model_path, "eer": champion.eer}
    record.update({k: getattr(champion, k) for k in _CHAMPION_OPTIONAL if getattr(champion, k) is not None})
    if champion.cost is not None:
        record["cost"] = asdict(champion.cost)
    return record


def evaluation_from_json(record: dict) -> ChampionEvaluation:
    return ChampionEvaluation(
        run_id=record["run_id"],
        evaluated_at=record["evaluated_at"],
        version=record.get("version"),
        model_path=record["model_path"],
        eer=record["eer"],
        average_eer=record.get("average_eer"),
    )


def evaluation_to_json(evaluation: ChampionEvaluation) -> dict:
    """The record as the champion file's ``evaluations`` hold it."""
    return asdict(evaluation)


def challenger_from_json(record: dict) -> ChallengerRecord:
    return ChallengerRecord(
        name=record["name"],
        kind=record["kind"],
        path=record["path"],
        version=record["version"],
        step=record.get("step"),
        cost=_cost_from_json(record.get("cost")),
    )


def challenger_to_json(challenger: ChallengerRecord) -> dict:
    record = {"name": challenger.name, "kind": challenger.kind, "path": challenger.path, "version": challenger.version}
    if challenger.step is not None:
        record["step"] = challenger.step
    if challenger.cost is not None:
        record["cost"] = asdict(challenger.cost)
    return record


def night_from_json(record: dict) -> Night:
    champion, challenger, pool = record.get("champion"), record.get("challenger"), record.get("evidence_pool")
    return Night(
        run_id=record["run_id"],
        batch_ids=list(record.get("batch_ids", [])),
        batches=[batch_from_json(b) for b in record.get("batches", [])],
        started_at=record.get("started_at"),
        champion=champion_from_json(champion) if champion is not None else None,
        challenger=challenger_from_json(challenger) if challenger is not None else None,
        evidence_pool=evidence_pool_from_json(pool) if pool is not None else None,
        resumed=int(record.get("resumed", 0)),
    )


def night_to_json(night: Night) -> dict:
    """The night file's record: the steps not done yet (challenger, evidence pool) and a night never resumed
    leave their keys out."""
    record: dict = {
        "run_id": night.run_id,
        "batch_ids": list(night.batch_ids),
        "batches": [batch_to_json(b) for b in night.batches],
        "started_at": night.started_at,
        "champion": champion_to_json(night.champion) if night.champion is not None else None,
    }
    if night.challenger is not None:
        record["challenger"] = challenger_to_json(night.challenger)
    if night.evidence_pool is not None:
        record["evidence_pool"] = evidence_pool_to_json(night.evidence_pool)
    if night.resumed:
        record["resumed"] = night.resumed
    return record


def current_champion(state_dir: str | os.PathLike, detector: str) -> ChampionRecord | None:
    record = champions.current_champion(state_dir, detector)
    return champion_from_json(record) if record is not None else None


def require_champion_model(state_dir: str | os.PathLike, detector: str, champion: ChampionRecord) -> None:
    champions.require_champion_model(state_dir, detector, champion_to_json(champion))


def promote(state_dir: str | os.PathLike, detector: str, champion: ChampionRecord) -> None:
    champions.promote(state_dir, detector, champion_to_json(champion))


def champion_evaluations(state_dir: str | os.PathLike, detector: str) -> list[ChampionEvaluation]:
    """The champion's nightly measurements, oldest first."""
    return [evaluation_from_json(e) for e in champions.read_champions(state_dir, detector)["evaluations"]]


def record_evaluation(state_dir: str | os.PathLike, detector: str, evaluation: ChampionEvaluation) -> None:
    champions.record_evaluation(state_dir, detector, evaluation_to_json(evaluation))


def night_in_progress(state_dir: str | os.PathLike, detector: str) -> Night | None:
    record = champions.night_in_progress(state_dir, detector)
    return night_from_json(record) if record is not None else None


def save_night(state_dir: str | os.PathLike, detector: str, night: Night) -> None:
    champions.save_night(state_dir, detector, night_to_json(night))
