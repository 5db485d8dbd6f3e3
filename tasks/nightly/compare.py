"""Champion vs challenger on the same data: scores on the eval corpora and the held-out new
fakes, per-dataset EERs, the bootstrap CI of the eval average, the decision and forgetting;
the held-out evidence per slice (rows, paired bootstrap CI of the EER difference); and the
champion alone re-evaluated on a night without new data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from addgp.config import GateConfig
from addgp.contracts import BONAFIDE, SPOOF
from addgp.metrics import compute_metrics
from addgp.nightly import GatedDecision, GateRecord
from storage.models import EmbeddingSetting
from storage.score_cache import CACHED, SCORED, read_cached_summary, summary_path, write_cached_summary
from tasks.evaluate.bootstrap import bootstrap_ci, bootstrap_distribution
from tasks.evaluate.robustness import paired_delta_distribution
from tasks.evaluate.scoring import score_rows, score_sets
from tasks.nightly.challenger import rows_embeddings
from tasks.nightly.gate import apply_gate
from tasks.nightly.promotion import decide_promotion, forgetting_table

NEW_FAKES = "new_fakes"
# where the bona fide rows of the new-fakes slice come from (held-out evidence, ``bonafide_from``)
HELD_OUT, EVAL_CORPORA = "held-out inbox rows", "eval corpora (no bona fide held out)"
HELD_OUT_AND_EVAL = "held-out inbox rows + eval corpora (too few held out)"


def score_champion_and_challenger(
    models: Mapping[str, tuple[object, dict]],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
    min_bonafide: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores of each model on each eval dataset and on the held-out new fakes (dataset
    ``new_fakes``), where the eval sets' scores came from: ``ScoredSets.sources``).

    The eval sets are scored through the score cache (``tasks.evaluate.scoring.score_sets``):
    a model scored on an unchanged eval set before (the champion, night after night) reuses
    its scores; each eval set is read once for all models that need it.
    The new-fakes set is the held-out inbox rows; where those hold fewer than
    ``min_bonafide`` bona fide rows (by default: none), the bona fide rows of the eval
    datasets join them (as ASVspoof scores each attack against the shared bona fide set), so
    a mostly-spoof inbox does not starve the promotion gate of bona fide rows. Held-out rows
    without a single spoof (or none of them in the store: the embed step rejected them all)
    test no new fake: then there is no ``new_fakes`` set, and the decision says so.
    """
    scored = score_sets(manifest, store, models, eval_datasets, eval_splits)
    frames = [scored.scores]
    if len(holdout_rows) and (holdout_rows["label"] == SPOOF).any():
        helds = {
            name: rows_embeddings(EmbeddingSetting.of_card(card), manifest, store, holdout_rows)
            for name, (_, card) in models.items()
        }
        if not all(len(held.rows) for held in helds.values()):
            helds = {}  # the embed step rejected every held-out row: no new fakes tested tonight
        for name, held in helds.items():
            detector = models[name][0]
            parts = [score_rows(detector, name, held)]
            if int((held.rows["label"] == BONAFIDE).sum()) < max(min_bonafide, 1):
                bona = scored.scores[(scored.scores["detector"] == name) & (scored.scores["label"] == BONAFIDE)]
                parts.append(bona.assign(borrowed=True))
            slice_ = pd.concat(parts, ignore_index=True)
            # the corpus a row came from: an utterance id is unique within it, the bootstrap's unit
            frames.append(slice_.assign(source_dataset=slice_["dataset"], dataset=NEW_FAKES))
    return pd.concat(frames, ignore_index=True), scored.sources


def _by_row(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``utt_id`` made unique across the corpora a slice draws on (the paired unit)."""
    origin = frame["source_dataset"].fillna(frame["dataset"]) if "source_dataset" in frame else frame["dataset"]
    return frame.assign(utt_id=origin.astype(str) + "/" + frame["utt_id"].astype(str))


def held_out_evidence(scores: pd.DataFrame, n_boot: int, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Per slice (each eval corpus, then ``new_fakes``): the rows both models were scored on,
    their EERs, and the paired bootstrap (1 - alpha) interval of the EER difference
    champion − challenger (positive = the challenger is better).

    Paired: one resample draws each row for both models, so what the two share (the rows'
    difficulty) cancels and the interval measures the models' difference alone.
    ``bonafide_from`` says where the new-fakes slice's bona fide rows come from.
    """
    rows = []
    slices = sorted(scores["dataset"].unique(), key=lambda d: (d == NEW_FAKES, d))
    for i, dataset in enumerate(slices):
        part = scores[scores["dataset"] == dataset]
        champion = _by_row(part[part["detector"] == "champion"])
        challenger = _by_row(part[part["detector"] == "challenger"])
        metrics = [compute_metrics(f["score"].to_numpy(), f["label"].to_numpy()) for f in (champion, challenger)]
        eers = [m["eer"] for m in metrics]
        draws = paired_delta_distribution(challenger, champion, ("eer",), n_boot, seed + i)["eer"]
        low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        borrowed = "borrowed" in part and bool(part["borrowed"].eq(True).any())
        held_bona = (part["label"] == BONAFIDE) & (part["borrowed"].ne(True) if "borrowed" in part else True)
        source = (HELD_OUT_AND_EVAL if held_bona.any() else EVAL_CORPORA) if borrowed else HELD_OUT
        rows.append(
            {
                "dataset": dataset,
                "n_bonafide": int(metrics[0]["n_bonafide"]),
                "n_spoof": int(metrics[0]["n_spoof"]),
                "champion_eer": eers[0],
                "challenger_eer": eers[1],
                "difference": eers[0] - eers[1],
                "difference_ci_low": float(low),
                "difference_ci_high": float(high),
                "bonafide_from": source if dataset == NEW_FAKES else None,
            }
        )
    return pd.DataFrame(rows)


def reevaluate_champion(
    model: tuple[object, dict],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    n_boot: int,
    eer_at_promotion: dict[str, float] | None,
    seed: int = 0,
) -> pd.DataFrame:
    """The champion alone on tonight's eval sets (a night without new data): per corpus the rows,
    the EER with its bootstrap 95 % interval (by speaker where known), the EER recorded at
    its promotion, the change since (positive = worse) and where the scores came from.

    Through the score cache: a corpus neither the champion nor the data changed on since the
    last night reads its scores, and its EER and interval too (a summary kept beside the
    cached scores, keyed by ``n_boot`` and the seed), so a quiet night scores and resamples
    nothing again."""
    scored = score_sets(manifest, store, {"champion": model}, eval_datasets, eval_splits)
    scores = scored.scores
    reused = set(scored.sources.loc[scored.sources["source"] == CACHED, "dataset"])
    rows = []
    for i, dataset in enumerate(eval_datasets):
        entry = scored.entries.get(("champion", dataset))
        kept = summary_path(entry, f"reevaluation-boot{n_boot}-seed{seed + i}") if entry else None
        summary = read_cached_summary(kept) if kept else None
        if summary is None:
            part = scores[scores["dataset"] == dataset]
            metrics = compute_metrics(part["score"].to_numpy(), part["label"].to_numpy())
            low, high = bootstrap_ci(part, "eer", n_boot=n_boot, seed=seed + i)
            summary = {
                "n_bonafide": int(metrics["n_bonafide"]),
                "n_spoof": int(metrics["n_spoof"]),
                "eer": float(metrics["eer"]),
                "eer_ci_low": float(low),
                "eer_ci_high": float(high),
            }
            if kept:
                write_cached_summary(kept, summary)
        then = (eer_at_promotion or {}).get(dataset)
        rows.append(
            {
                "dataset": dataset,
                **summary,
                "eer_at_promotion": then,
                "change": None if then is None else summary["eer"] - then,
                "scores": CACHED if dataset in reused else SCORED,
            }
        )
    return pd.DataFrame(rows)


def eer_by_dataset(scores: pd.DataFrame, detector: str) -> dict[str, float]:
    mine = scores[scores["detector"] == detector]
    return {
        d: compute_metrics(g["score"].to_numpy(), g["label"].to_numpy())["eer"]
        for d, g in mine.groupby("dataset", sort=True)
    }


def average_eer_ci_half_width(
    scores: pd.DataFrame, detector: str, datasets: list[str], n_boot: int, seed: int = 0
) -> float:
    """Half-width of the bootstrap 95 % interval of the detector's EER averaged over ``datasets``.

    Each dataset is resampled on its own (by speaker where known); the average is taken per
    resample, so the interval reflects the average's own spread.
    """
    mine = scores[scores["detector"] == detector]
    draws = np.mean(
        [bootstrap_distribution(mine[mine["dataset"] == d], "eer", n_boot=n_boot, seed=seed) for d in datasets], axis=0
    )
    low, high = np.percentile(draws, [2.5, 97.5])
    return float((high - low) / 2)


@dataclass(frozen=True)
class Comparison:
    """Champion vs challenger tonight: the scores, EER per eval set (dataset × {champion,
    challenger}), the held-out evidence, the decision after the promotion gate, and forgetting
    since the champion's promotion."""

    scores: pd.DataFrame
    eer: pd.DataFrame
    evidence: pd.DataFrame  # per slice, with paired CIs (held_out_evidence)
    decision: GatedDecision
    gate: GateRecord
    forgetting: pd.DataFrame
    champion_eer: dict[str, float]  # per eval corpus
    challenger_eer: dict[str, float]
    score_sources: pd.DataFrame  # per (model, eval corpus): reused from the score cache or scored


def compare_champion_and_challenger(
    models: Mapping[str, tuple[object, dict]],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
    n_boot: int,
    eer_at_last_promotion: dict[str, float] | None,
    gate: GateConfig | None = None,
    nights_pooled: int = 1,
) -> Comparison:
    """Score ``models`` (keys ``champion``, ``challenger``) on the eval sets and the held-out new
    fakes; decide, through the promotion ``gate`` (tasks/nightly/gate.py; default: off) with
    ``nights_pooled`` nights of held-out rows; measure forgetting since the champion's promotion.

    Deterministic for the same models and rows (seeded bootstrap), so a resumed night
    reaches the decision the killed one would have.
    """
    gate = gate if gate is not None else GateConfig(min_spoof=0, min_bonafide=0, ci_level=None)
    scores, sources = score_champion_and_challenger(
        models, manifest, store, eval_datasets, eval_splits, holdout_rows, gate.min_bonafide
    )
    champion, challenger = eer_by_dataset(scores, "champion"), eer_by_dataset(scores, "challenger")

    def on_eval(eers: dict[str, float]) -> dict[str, float]:
        return {d: eers[d] for d in eval_datasets}

    point = decide_promotion(
        on_eval(champion),
        on_eval(challenger),
        average_eer_ci_half_width(scores, "champion", eval_datasets, n_boot),
        champion.get(NEW_FAKES),
        challenger.get(NEW_FAKES),
    )
    evidence = held_out_evidence(scores, n_boot, alpha=1 - (gate.ci_level or 0.95))
    new_fakes = evidence[evidence["dataset"] == NEW_FAKES]
    decision, gate_record = apply_gate(
        point, new_fakes.iloc[0].to_dict() if len(new_fakes) else None, nights_pooled, gate
    )
    eer = pd.DataFrame({"champion": champion, "challenger": challenger})
    tonight = on_eval(challenger if decision.promote else champion)
    baseline = eer_at_last_promotion if eer_at_last_promotion is not None else on_eval(champion)
    return Comparison(
        scores=scores,
        eer=eer,
        evidence=evidence,
        decision=decision,
        gate=gate_record,
        forgetting=forgetting_table(baseline, tonight),
        champion_eer=on_eval(champion),
        challenger_eer=on_eval(challenger),
        score_sources=sources,
    )
