"""One night's bookkeeping: which batches it absorbs, under which run id, from which champion,
and which steps are done, so that a night killed part-way is resumed, not redone.

A night that finds unacknowledged batches records itself (``storage.champions.save_night``)
before it trains anything; each step that writes (baseline, challenger, promotion, report)
adds its result to that record. The next run, under the same lock, finds the record and
carries on from the last step done: the same run id, the same batches, the same
challenger, so a batch gets one model version and one report. Acknowledging the batches
ends the night and removes the record.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from addgp.nightly import ChallengerRecord, ChampionEvaluation, ChampionRecord, Night, StepCost
from storage import champions, night_state
from storage.inbox_ledger import acknowledge_inbox_batches, new_inbox_batches, nightly_consumer
from storage.models import read_card
from storage.paths import exists, join
from storage.reports import new_run_id
from tasks.nightly.compare import Comparison
from tasks.nightly.consolidation import FIT


def open_night(state_dir: str, detector: str, reports_root: str, name: str, run_id: str | None = None) -> Night:
    """Tonight's record: the unfinished night's (resumed), a new one over the unacknowledged
    batches, or an empty one (``nothing_new``) when nothing new arrived.

    Raises ChampionMissingError when the champion's model folder is gone, before anything
    is trained, and FileExistsError when ``run_id`` names a published report.
    """
    pending = new_inbox_batches(state_dir, consumer=nightly_consumer(detector))
    night = night_state.night_in_progress(state_dir, detector)
    if night is not None:
        waiting = {b.batch_id for b in pending}
        if not set(night.batch_ids) & waiting:
            # Killed after acknowledging, before removing the record: the night is done.
            champions.finish_night(state_dir, detector)
            night = None
    if night is not None:
        night = replace(night, resumed=night.resumed + 1)
        night_state.save_night(state_dir, detector, night)
        if night.champion is not None:
            night_state.require_champion_model(state_dir, detector, night.champion)
        return night
    if run_id is not None and exists(join(reports_root, run_id)):
        raise FileExistsError(
            f"--run-id {run_id}: a nightly report {join(reports_root, run_id)} exists; pick another id"
        )
    run_id = run_id or new_run_id(reports_root, name)
    if not pending:
        return Night(run_id)
    champion = night_state.current_champion(state_dir, detector)
    if champion is not None:
        night_state.require_champion_model(state_dir, detector, champion)
    night = Night(
        run_id=run_id,
        batch_ids=[b.batch_id for b in pending],
        batches=pending,
        started_at=_now(),
        champion=champion,
    )
    night_state.save_night(state_dir, detector, night)
    return night


def configured_rows(card: dict) -> int:
    """How many rows of the configured training data a model card's detector (or its chain's first) was fitted on."""
    training = card["training_data"]
    return int(training.get("n_bonafide", 0)) + int(training.get("n_spoof", 0))


def baseline_champion(model_path: str, version: int, run_id: str) -> ChampionRecord:
    """The first night's baseline as the champion record, with the chain's ``step`` and ``cost``
    of a baseline: a fit on the configured training data (its wall time is not measured:
    ``addgp nightly`` may reuse an unchanged fitted version). Its EERs come with the first decision."""
    cost = StepCost(wall_s=None, rows_learnt=configured_rows(read_card(model_path)), inbox_rows=0)
    return ChampionRecord(model_path=model_path, version=version, run_id=run_id, step=FIT, cost=cost)


def night_chain(state_dir: str, detector: str, night: Night) -> list[ChampionRecord]:
    """The champion chain a night's challenger builds on, oldest first: the promoted models, and
    on the first night the baseline not yet promoted."""
    chain = champion_chain(state_dir, detector)
    champion = night.champion
    if champion is not None and (not chain or chain[-1].model_path != champion.model_path):
        chain.append(champion)
    return chain


def champion_chain(state_dir: str, detector: str) -> list[ChampionRecord]:
    """Every model promoted, oldest first, the champion in service last."""
    record = champions.read_champions(state_dir, detector)
    promoted = [*record["history"], *([record["current"]] if record["current"] is not None else [])]
    return [night_state.champion_from_json(r) for r in promoted]


def record_step(state_dir: str, detector: str, night: Night) -> Night:
    """``night`` (with a step's result added: ``replace(night, challenger=…)``), saved before the next step starts."""
    night_state.save_night(state_dir, detector, night)
    return night


def promote_after_decision(
    state_dir: str, detector: str, night: Night, comparison: Comparison, challenger: ChallengerRecord
) -> ChampionRecord:
    """Write tonight's promotions (the first night's baseline, a winning challenger); return the champion after tonight.

    Repeating them on a resumed night changes nothing (``champions.promote`` is a no-op for
    a model already promoted).
    """
    champion = night.champion
    if champion is None:
        raise ValueError(f"night {night.run_id}: no champion to decide against (the baseline is recorded first)")
    now = _now()
    if champion.eer is None:
        champion = replace(champion, eer=comparison.champion_eer, promoted_at=night.run_id, promoted_on=now)
        night_state.promote(state_dir, detector, champion)
    if comparison.decision.promote:
        champion = ChampionRecord(
            model_path=challenger.path,
            version=challenger.version,
            run_id=night.run_id,
            promoted_at=night.run_id,
            promoted_on=now,
            eer=comparison.challenger_eer,
            batches=night.batch_ids,
            step=challenger.step,
            cost=challenger.cost,
        )
        night_state.promote(state_dir, detector, champion)
    in_service = night_state.current_champion(state_dir, detector) or champion
    tonight = comparison.challenger_eer if comparison.decision.promote else comparison.champion_eer
    record_champion_evaluation(state_dir, detector, night.run_id, in_service, tonight)
    return in_service


def record_champion_evaluation(
    state_dir: str, detector: str, run_id: str, champion: ChampionRecord, eer: dict[str, float]
) -> ChampionEvaluation:
    """Record tonight's EERs of the champion in service (once per night); return the record."""
    evaluation = ChampionEvaluation(
        run_id=run_id,
        evaluated_at=_now(),
        version=champion.version,
        model_path=champion.model_path,
        eer=dict(eer),
        average_eer=float(sum(eer.values()) / len(eer)) if eer else None,
    )
    night_state.record_evaluation(state_dir, detector, evaluation)
    return evaluation


def champion_history(state_dir: str, detector: str, nights: int = 7) -> list[ChampionEvaluation]:
    """The champion's measurements of the last ``nights`` nights, oldest first (its drift)."""
    return night_state.champion_evaluations(state_dir, detector)[-nights:]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def close_night(state_dir: str, detector: str, night: Night) -> None:
    """Acknowledge the night's batches (used once, whatever happens next) and drop its record."""
    acknowledge_inbox_batches(state_dir, night.batch_ids, consumer=nightly_consumer(detector))
    champions.finish_night(state_dir, detector)
