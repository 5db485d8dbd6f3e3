"""Score eval sets with registered detectors and compute the per-dataset metrics table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from addgp.contracts import p_spoof_from_score
from storage.embeddings import setting_shard_paths
from storage.models import DIGEST_KEY, EmbeddingSetting
from storage.reports import CONDITION_COLUMNS, TRAIN_DATASET_SEPARATOR, provenance_of_card, train_setting
from storage.score_cache import CACHED, SCORED, cache_path, dataset_snapshot, read_cached_scores, write_cached_scores
from tasks.evaluate.overlap import card_overlap_columns, eval_set_digests
from tasks.train.base import EMBEDDINGS_INPUT
from tasks.train.data import labelled_inputs, stream_labelled_embeddings


class EmbeddingWidthError(ValueError):
    """A model asked to score embeddings it cannot take (another width: other encoder or pooling)."""


def detector_scores(detector, X: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(LLR scores, variance or NaN) of ``detector`` on ``X``; ``model`` names it in errors.

    A model fitted on embeddings of another width fails inside numpy or torch with a shape
    traceback; here it becomes an ``EmbeddingWidthError`` saying what does not fit.
    """
    X = np.asarray(X)
    expected = getattr(detector, "n_features_in_", None)
    mismatch = (
        f"{model} cannot score {X.shape[1]}-dimensional embeddings"
        + (f" (it was fitted on {expected}-dimensional ones)" if expected is not None else "")
        + ": they come from another encoder, layer width or pooling than the model was trained on; "
        "embed with the model card's encoder and pooling, or score with a model trained on these embeddings"
    )
    if expected is not None and X.ndim == 2 and X.shape[1] != expected:
        raise EmbeddingWidthError(mismatch)
    try:
        score = np.asarray(detector.score_llr(X), dtype=np.float64)
        variance = (
            detector.predict_variance(X) if hasattr(detector, "predict_variance") else np.full(len(score), np.nan)
        )
    except (ValueError, RuntimeError) as exc:
        if "shape" in str(exc) or "broadcast" in str(exc) or "dimension" in str(exc):
            raise EmbeddingWidthError(f"{mismatch} ({type(exc).__name__}: {exc})") from None
        raise
    return score, np.asarray(variance, dtype=np.float64)


def score_rows(detector, name: str, data, card: dict | None = None) -> pd.DataFrame:
    """One detector's scores for a LabelledEmbeddings selection, in the score-table layout.

    Besides the contract columns (utt_id, dataset, split, label, attack, detector, score,
    p_spoof, variance) the table carries ``speaker`` (the bootstrap's resampling unit),
    the condition columns the manifest has (codec, transmission, language), the
    detector's train setting from its model card (``train_setting``, ``train_datasets``; the
    sets and content digests it trained on, ``train_sets``/``train_digests``, and the content
    digest of each row's eval set, ``eval_set_digest``, for the training-overlap check)
    and the provenance of its scores (``storage.reports.PROVENANCE_COLUMNS``: model name,
    version and card digest, encoder, its weights digest and variant, random-weights flag).
    ``variance`` is the GP's predictive variance, NaN for detectors without one.
    """
    label = f"model {name}" + (f" v{card.get('version')}" if card and card.get("version") is not None else "")
    score, variance = detector_scores(detector, data.X, label)
    rows = data.rows
    setting, datasets = train_setting(card)
    frame = pd.DataFrame(
        {
            "utt_id": rows["utt_id"].to_numpy(),
            "dataset": rows["dataset"].to_numpy(),
            "split": rows["split"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "attack": rows["attack"].to_numpy(),
            "speaker": rows["speaker"].to_numpy(),
            "detector": name,
            "score": score,
            "p_spoof": p_spoof_from_score(score),
            "variance": np.asarray(variance, dtype=np.float64),
            "train_setting": setting,
            "train_datasets": TRAIN_DATASET_SEPARATOR.join(datasets),
            # what the card says the detector trained on, and what these rows are (tasks/evaluate/overlap.py)
            **{column: repeated(value, len(rows)) for column, value in card_overlap_columns(card).items()},
            "eval_set_digest": pd.Categorical(eval_set_digests(rows)) if "sha256" in rows.columns else None,
            **provenance_of_card(card),
        }
    )
    for column in CONDITION_COLUMNS:
        if column in rows.columns and rows[column].notna().any():
            frame[column] = rows[column].to_numpy()
    return frame


def repeated(value: str, n: int) -> pd.Categorical:
    """One string on every row as a categorical: a code per row, not a copy of the string (the
    card's training sets and digests run to ~250 bytes a row, ~1 GB over 4 M scores)."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


@dataclass
class ScoredSets:
    """What ``score_sets`` returns: the score table and, per (detector, dataset), where its rows came from."""

    scores: pd.DataFrame
    # detector, dataset, rows, source (CACHED or SCORED)
    sources: pd.DataFrame
    # (detector, dataset) -> its score cache entry (absent: not cached, e.g. a model without a card digest)
    entries: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def reused(self) -> pd.DataFrame:
        return self.sources[self.sources["source"] == CACHED]


def score_eval_sets(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: Mapping[str, tuple[object, dict]],
    datasets: list[str],
    splits: list[str],
    cache: bool = True,
    client=None,
) -> pd.DataFrame:
    """Scores of every detector on every dataset's eval splits (the cross-dataset matrix rows); see ``score_sets``."""
    return score_sets(manifest, store_root, detectors, datasets, splits, cache, client).scores


def score_sets(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: Mapping[str, tuple[object, dict]],
    datasets: list[str],
    splits: list[str],
    cache: bool = True,
    client=None,
) -> ScoredSets:
    """Scores of every detector on every dataset's ``splits``, each eval set read from the store once.

    ``detectors`` maps name → (detector, model card); each is scored on the store rows of its
    own encoder, layer and pooling. Per dataset, the detectors that read the same embedding
    setting share one streaming pass over its rows (record batches, ``stream_labelled_embeddings``):
    memory is one batch plus the score table, however many corpora and models. With ``cache``, a
    (model, setting, dataset snapshot) scored before is read from the score cache
    (``storage.score_cache``) and every new result is kept there; ``sources`` says which.
    With a Dask ``client`` each shard file of a dataset is one task on the cluster (its rows
    scored by every model that needs them; only the scores come back), so a store larger than
    one machine's memory or hours is scored by the cluster. The table is in detector-major
    order, each dataset's rows in manifest order, either way.
    """
    parts: dict[tuple[str, str], pd.DataFrame] = {}
    entries: dict[tuple[str, str], str] = {}
    sources = []
    by_setting: dict[EmbeddingSetting, list[str]] = {}
    for name, (_detector, card) in detectors.items():
        by_setting.setdefault(EmbeddingSetting.of_card(card), []).append(name)
    for dataset in datasets:
        selected = manifest[(manifest["dataset"] == dataset) & manifest["split"].isin(splits)]
        for setting, names in by_setting.items():
            paths: dict[str, str] = {}
            if cache:
                snapshot = dataset_snapshot(selected, store_root, setting, dataset)
                for name in names:
                    digest = detectors[name][1].get(DIGEST_KEY)
                    if digest:
                        paths[name] = cache_path(store_root, str(digest), setting, dataset, snapshot)
            pending = []
            for name in names:
                cached = read_cached_scores(paths[name]) if name in paths else None
                if cached is None:
                    pending.append(name)
                else:
                    parts[(name, dataset)] = cached.assign(detector=name)
            scored = _score_dataset(manifest, store_root, {n: detectors[n] for n in pending}, setting, dataset, splits)
            for name, frame in scored.items():
                parts[(name, dataset)] = frame
                if name in paths:
                    write_cached_scores(paths[name], frame)
            entries.update({(name, dataset): path for name, path in paths.items()})
            for name in names:
                source = SCORED if name in scored else CACHED
                sources.append(
                    {"detector": name, "dataset": dataset, "rows": len(parts[(name, dataset)]), "source": source}
                )
    frames = [parts[(name, dataset)] for name in detectors for dataset in datasets]
    return ScoredSets(
        scores=pd.concat(frames, ignore_index=True),
        sources=pd.DataFrame(sources, columns=["detector", "dataset", "rows", "source"]),
        entries=entries,
    )


def _score_dataset(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: Mapping[str, tuple[object, dict]],
    setting: EmbeddingSetting,
    dataset: str,
    splits: list[str],
    client=None,
) -> dict[str, pd.DataFrame]:
    """Each of ``detectors`` (one embedding setting) on one dataset: embedding readers in one pass
    over the store's batches (or one cluster task per shard file), frame readers (their own
    store) one by one."""
    out: dict[str, pd.DataFrame] = {}
    streaming = {n: d for n, d in detectors.items() if getattr(d[0], "input", EMBEDDINGS_INPUT) == EMBEDDINGS_INPUT}
    for name, (detector, card) in detectors.items():
        if name not in streaming:
            data = labelled_inputs(detector, manifest, store_root, setting, datasets=[dataset], splits=splits)
            out[name] = score_rows(detector, name, data, card)
    if not streaming:
        return out
    selected = manifest[(manifest["dataset"] == dataset) & manifest["split"].isin(splits)]
    if selected.empty:
        raise ValueError(f"the manifests have no rows for datasets={[dataset]}, splits={splits}")
    if client is None:
        parts = [score_fragment(selected, store_root, setting, streaming, None)]
    else:
        files = setting_shard_paths(store_root, setting.encoder, setting.pooling, setting.crop_s, dataset)
        [models] = client.scatter([dict(streaming)], broadcast=True)
        futures = [
            client.submit(score_fragment, selected, store_root, setting, models, [path], pure=False) for path in files
        ]
        parts = client.gather(futures)
    positions = np.concatenate([where for where, _ in parts]) if parts else np.zeros(0, dtype=np.intp)
    if positions.size == 0:
        raise ValueError(
            f"none of the {len(selected)} selected manifest rows (datasets=[{dataset!r}], splits={splits}) are in the "
            f"store {store_root} for {setting}; run `addgp embed` first"
        )
    # manifest order; a row two fragments hold (duplicate commits on an object store) once
    order = np.argsort(positions, kind="stable")
    first = np.r_[True, positions[order][1:] != positions[order][:-1]]
    keep = order[first]
    # an eval set's content digest is over all its rows, not a batch's (the training-overlap check)
    digests = pd.Categorical(eval_set_digests(selected.iloc[positions[keep]])) if "sha256" in selected.columns else None
    for name in streaming:
        frames = [frames_of[name] for _, frames_of in parts if name in frames_of]
        out[name] = pd.concat(frames, ignore_index=True).iloc[keep].reset_index(drop=True)
        out[name]["eval_set_digest"] = digests
    return out


def score_fragment(
    selected: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    detectors: Mapping[str, tuple[object, dict]],
    files: list[str] | None,
) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """Every detector's scores on the ``selected`` rows the store holds (or the shard ``files``
    hold: a cluster task's fragment), read batch by batch: (the rows' positions in ``selected``,
    name → score rows in that order). A pure function of its arguments, for a Dask worker too."""
    pieces: dict[str, list[pd.DataFrame]] = {name: [] for name in detectors}
    order = []
    if files is None or files:
        for where, batch in stream_labelled_embeddings(selected, store_root, setting, files=files):
            order.append(where)
            for name, (detector, card) in detectors.items():
                pieces[name].append(score_rows(detector, name, batch, card))
    if not order:
        return np.zeros(0, dtype=np.intp), {}
    return np.concatenate(order), {name: pd.concat(frames, ignore_index=True) for name, frames in pieces.items()}
