"""Prefect tasks of the nightly loop's evaluation: champion vs challenger on the same data."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.manifests import read_manifests
from tasks.train.challenge import NEW_FAKES, average_eer_ci_half_width, eer_by_dataset, score_champion_and_challenger
from tasks.train.detectors import load_detector
from tasks.train.promotion import decide_promotion, forgetting_table


@task(name="champion-vs-challenger", retries=1, cache_policy=NO_CACHE)
def compare_task(
    champion_path: str,
    challenger_path: str,
    manifest_paths: list[str],
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
    n_boot: int,
    eer_at_last_promotion: dict[str, float] | None,
) -> dict:
    """Score both models on the eval sets and the held-out new fakes; decide; measure forgetting."""
    models = {"champion": load_detector(champion_path), "challenger": load_detector(challenger_path)}
    scores = score_champion_and_challenger(models, read_manifests(manifest_paths), store, eval_datasets, eval_splits, holdout_rows)
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
