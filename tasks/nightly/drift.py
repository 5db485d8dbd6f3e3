"""How far new, unlabelled audio lies from a model's training data: drift seen before labels.

Two measurements, neither of which reads a label:

- **MMD on the embeddings** (Gretton et al. 2012): the unbiased squared maximum mean
  discrepancy between a sample of the model's training rows and a sample of the new rows,
  with a Gaussian (RBF) kernel whose bandwidth is the median pairwise distance of the pooled
  sample (the median heuristic). Its threshold is the (1 − alpha) quantile of the same
  statistic over random relabellings of the pooled rows (a permutation test), so on a night
  whose rows come from the training distribution it fires with probability about alpha,
  whatever the embedding's dimension or scale. Each side is subsampled to ``max_rows``: the
  kernel matrix costs the square of the rows.
- **Predictive variance** (GP detectors): the share of new rows whose posterior variance lies
  above the 95th percentile of the variance on held-out rows of the training corpora (their
  dev split when the card names one: the training rows themselves sit where the GP is most
  certain). Without drift about 5 % do; a one-sided binomial test at ``alpha`` says when
  markedly more do. A model without a predictive variance (logistic regression) says so.

The nightly loop records one result per night (``storage.nightly_records``) and raises the
Prefect event ``addgp.run.drift`` when either test fires; ``addgp drift`` runs the same on a
folder of unlabelled audio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from addgp.drift import DriftMeasurement, MmdTest, VarianceTest, VarianceUnmeasured
from storage.models import EmbeddingSetting
from tasks.nightly.challenger import select_rows

# Fewer rows than this on a side and neither test has the power to say anything.
MIN_ROWS = 10
VARIANCE_QUANTILE = 0.95


def _subsample(X: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(X) <= max_rows:
        return X
    return X[np.sort(rng.choice(len(X), size=max_rows, replace=False))]


def _mmd2_of_splits(K: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each column of ``first`` (a boolean matrix rows × splits: True = first sample).

    With K's diagonal zeroed, Σ_xx = aᵀKa, Σ_yy = bᵀKb and Σ_xy = aᵀKb for the indicator
    vectors a, b of the two samples: every split costs one matrix product.
    """
    a = first.astype(float)
    b = 1.0 - a
    m, n = a.sum(axis=0), b.sum(axis=0)
    Ka = K @ a
    xx = (a * Ka).sum(axis=0) / (m * (m - 1))
    yy = (b * (K @ b)).sum(axis=0) / (n * (n - 1))
    xy = (b * Ka).sum(axis=0) / (m * n)
    return xx + yy - 2 * xy


def mmd_test(
    reference: np.ndarray,
    tonight: np.ndarray,
    *,
    max_rows: int,
    n_permutations: int,
    alpha: float,
    seed: int = 0,
) -> MmdTest:
    """The MMD permutation test of ``tonight`` against ``reference`` (rows × features): drifted
    when MMD² lies above the permutation quantile at 1 − alpha. With fewer than ``MIN_ROWS`` on
    a side there is no test: the figures are None and ``drifted`` False.
    """
    rng = np.random.default_rng(seed)
    X = _subsample(np.asarray(reference, dtype=float), max_rows, rng)
    Y = _subsample(np.asarray(tonight, dtype=float), max_rows, rng)
    if len(X) < MIN_ROWS or len(Y) < MIN_ROWS:
        return MmdTest(n_reference=len(X), n_tonight=len(Y), alpha=alpha)
    Z = np.concatenate([X, Y])
    squares = (Z**2).sum(axis=1)
    distances2 = np.maximum(squares[:, None] + squares[None, :] - 2 * Z @ Z.T, 0.0)
    off_diagonal = distances2[np.triu_indices(len(Z), k=1)]
    bandwidth = float(np.sqrt(np.median(off_diagonal[off_diagonal > 0]))) if (off_diagonal > 0).any() else 1.0
    K = np.exp(-distances2 / (2 * bandwidth**2))
    np.fill_diagonal(K, 0.0)
    observed = np.zeros((len(Z), 1), dtype=bool)
    observed[: len(X)] = True
    mmd2 = float(_mmd2_of_splits(K, observed)[0])
    splits = np.zeros((len(Z), n_permutations), dtype=bool)
    for j in range(n_permutations):
        splits[rng.permutation(len(Z))[: len(X)], j] = True
    null = _mmd2_of_splits(K, splits)
    threshold = float(np.quantile(null, 1 - alpha))
    p_value = float((1 + np.sum(null >= mmd2)) / (1 + n_permutations))
    return MmdTest(
        n_reference=len(X),
        n_tonight=len(Y),
        alpha=alpha,
        mmd2=mmd2,
        threshold=threshold,
        p_value=p_value,
        bandwidth=bandwidth,
        drifted=bool(mmd2 > threshold),
    )


def predictive_variance(detector, X: np.ndarray) -> np.ndarray | None:
    """The detector's posterior variance at ``X``, or None for a model that has none."""
    method = getattr(detector, "predict_variance", None)
    return None if method is None else np.asarray(method(X), dtype=float)


def variance_test(
    reference: np.ndarray | None, tonight: np.ndarray | None, *, alpha: float, kind: str
) -> VarianceTest | VarianceUnmeasured:
    """Tonight's predictive variances against the reference rows' (module docstring); unmeasured
    (and why) for a model without variance or too few rows."""
    if reference is None or tonight is None:
        return VarianceUnmeasured(f"a {kind} model has no predictive variance")
    if len(reference) < MIN_ROWS or len(tonight) < MIN_ROWS:
        return VarianceUnmeasured(f"fewer than {MIN_ROWS} rows on a side")
    cut = float(np.quantile(reference, VARIANCE_QUANTILE))
    above = int((tonight > cut).sum())
    expected = 1 - VARIANCE_QUANTILE
    p_value = float(binomtest(above, len(tonight), expected, alternative="greater").pvalue)
    return VarianceTest(
        reference_median=float(np.median(reference)),
        tonight_median=float(np.median(tonight)),
        reference_q95=cut,
        share_above_q95=above / len(tonight),
        expected_share=expected,
        p_value=p_value,
        alpha=alpha,
        drifted=bool(p_value <= alpha),
    )


def measure_drift(
    detector,
    kind: str,
    reference: np.ndarray,
    variance_reference: np.ndarray,
    tonight: np.ndarray,
    *,
    max_rows: int,
    n_permutations: int,
    alpha: float,
    seed: int = 0,
) -> DriftMeasurement:
    """Both tests of ``tonight`` (embeddings) against the model's reference rows.

    ``reference``: training rows (the MMD's); ``variance_reference``: held-out rows of the
    training corpora (the variance test's).
    """
    rng = np.random.default_rng(seed)
    tonight_rows = _subsample(np.asarray(tonight, dtype=float), max_rows, rng)
    held = _subsample(np.asarray(variance_reference, dtype=float), max_rows, rng)
    mmd = mmd_test(reference, tonight, max_rows=max_rows, n_permutations=n_permutations, alpha=alpha, seed=seed)
    variance = variance_test(
        predictive_variance(detector, held) if len(held) else None,
        predictive_variance(detector, tonight_rows) if len(tonight_rows) else None,
        alpha=alpha,
        kind=kind,
    )
    return DriftMeasurement(n_rows=len(tonight), mmd=mmd, variance=variance)


def reference_embeddings(card: dict, manifest: pd.DataFrame, store: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(training rows, held-out rows for the variance test, where the latter come from) of the
    model ``card`` describes: its training corpora and splits, and their dev splits when named."""
    setting = EmbeddingSetting.of_card(card)
    training = card["training_data"]
    trained = select_rows(setting, manifest, store, training["datasets"], training["splits"])
    dev_splits = training.get("dev_splits") or []
    if dev_splits:
        dev = select_rows(setting, manifest, store, training["datasets"], dev_splits)
        return trained.X, dev.X, f"{'/'.join(dev_splits)} split of {', '.join(training['datasets'])}"
    return trained.X, trained.X, f"training rows of {', '.join(training['datasets'])} (no dev split named)"
