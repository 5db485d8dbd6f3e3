"""Champion vs challenger on the same data: scores on the eval corpora and the held-out new
fakes, per-dataset EERs, the bootstrap CI of the eval average, the decision and forgetting.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from addgp.contracts import BONAFIDE, SPOOF
from addgp.metrics import compute_metrics
from storage.models import EmbeddingSetting
from tasks.evaluate.bootstrap import bootstrap_distribution
from tasks.evaluate.scoring import score_rows
from tasks.nightly.challenger import select_rows, subset_rows
from tasks.nightly.promotion import decide_promotion, forgetting_table
from tasks.train.data import LabelledEmbeddings

NEW_FAKES = "new_fakes"


def score_champion_and_challenger(
    models: Mapping[str, tuple[object, dict]],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
) -> pd.DataFrame:
    """Scores of each model on each eval dataset and on the held-out new fakes (dataset ``new_fakes``).

    The new-fakes set is the held-out inbox rows; where those hold no bona fide audio, the
    bona fide rows of the eval datasets stand in (as ASVspoof scores each attack against
    the shared bona fide set). Held-out rows without a single spoof test no new fake: then
    there is no ``new_fakes`` set, and the decision says so.
    """
    frames = []
    for name, (detector, card) in models.items():
        setting = EmbeddingSetting.of_card(card)
        for dataset in eval_datasets:
            frames.append(score_rows(detector, name, select_rows(setting, manifest, store, [dataset], eval_splits)))
        if len(holdout_rows) and (holdout_rows["label"] == SPOOF).any():
            held = subset_rows(
                select_rows(setting, manifest, store, sorted(holdout_rows["dataset"].unique()), None), holdout_rows
            )
            parts = [score_rows(detector, name, held)]
            if not (held.rows["label"] == BONAFIDE).any():
                bona = select_rows(setting, manifest, store, eval_datasets, eval_splits)
                bona = LabelledEmbeddings(
                    rows=bona.rows[bona.y == BONAFIDE].reset_index(drop=True), X=bona.X[bona.y == BONAFIDE], missing=0
                )
                parts.append(score_rows(detector, name, bona))
            frames.append(pd.concat(parts, ignore_index=True).assign(dataset=NEW_FAKES))
    return pd.concat(frames, ignore_index=True)


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


def compare_champion_and_challenger(
    models: Mapping[str, tuple[object, dict]],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
    n_boot: int,
    eer_at_last_promotion: dict[str, float] | None,
) -> dict:
    """Score ``models`` (keys ``champion``, ``challenger``) on the eval sets and the held-out new
    fakes; decide; measure forgetting since the champion's promotion.

    Deterministic for the same models and rows (seeded bootstrap), so a resumed night
    reaches the decision the killed one would have.
    """
    scores = score_champion_and_challenger(models, manifest, store, eval_datasets, eval_splits, holdout_rows)
    champion, challenger = eer_by_dataset(scores, "champion"), eer_by_dataset(scores, "challenger")

    def on_eval(eers: dict[str, float]) -> dict[str, float]:
        return {d: eers[d] for d in eval_datasets}

    decision = decide_promotion(
        on_eval(champion),
        on_eval(challenger),
        average_eer_ci_half_width(scores, "champion", eval_datasets, n_boot),
        champion.get(NEW_FAKES),
        challenger.get(NEW_FAKES),
    )
    eer = pd.DataFrame({"champion": champion, "challenger": challenger})
    tonight = on_eval(challenger if decision.promote else champion)
    baseline = eer_at_last_promotion if eer_at_last_promotion is not None else on_eval(champion)
    return {
        "scores": scores,
        "eer": eer,
        "decision": decision.as_dict(),
        "forgetting": forgetting_table(baseline, tonight),
        "champion_eer": on_eval(champion),
        "challenger_eer": on_eval(challenger),
    }
