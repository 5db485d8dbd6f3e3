"""Few-shot adaptation: teach a fitted detector a new attack from K = 1…100 labelled examples.

``adapt`` returns a NEW detector; the one passed in is never modified. Besides the shots it
takes a *replay* sample of the old training data, so that the adapted model is fitted to old
and new data together and does not forget what it knew.

* Logistic regression: refit (same C as the original fit) on replay + shots, each shot with
  sample weight ``shot_weight``.
* DKL GP, exact: the feature extractor g is frozen; the GP is conditioned on replay + shots
  (``set_train_data`` semantics: a new training set, same hyper-parameters), then the kernel
  hyper-parameters and constant means get ``steps`` Adam steps on the exact marginal
  likelihood. A shot's Dirichlet noise variance is divided by ``shot_weight``, the
  Gaussian-likelihood equivalent of weighting it.
* DKL GP, variational: g is frozen; ``steps`` Adam steps on the ELBO of replay + shots move the
  variational distribution, inducing points and kernel hyper-parameters. The ELBO keeps the
  original training-set size as ``num_data`` (the replay stands in for the whole training set,
  so the KL term keeps its weight) and each shot's expected log-likelihood is weighted by
  ``shot_weight``.

``shot_weight``: each shot counts as that many replay rows (default 5). Keep K x shot_weight
well below the number of replay rows, or the new attack swamps the old ones: in the toy data
of tests/test_detectors.py, K = 10 shots x 5 against 300 replay rows teach the new attack
while old-attack EER moves by at most 0.03; K = 100 x 5 against 150 rows made the SVGP's
old-attack EER go from 0.02 to 0.24.

The prior correction is each model's own (see their modules), applied to replay + shots:
logistic regression and the exact GP subtract their weighted log prior odds, the SVGP
balances their classes. A calibration fitted before adaptation is carried over unchanged;
refit it with ``calibration.calibrate`` on dev data that includes the new attack.

A frozen g only helps if its features still show how the new attack differs; an MLP trained
on the old attacks may have collapsed that direction (docs/detectors.md has measurements).
"""

from __future__ import annotations

import copy

import gpytorch
import numpy as np
import torch
from sklearn.base import clone
from tqdm.auto import tqdm

from tasks.train.calibration import class_balanced, is_spoof_target, log_prior_odds
from tasks.train.dkl_gp import MAX_EXACT_POINTS, DKLGPDetector, neg_elbo, seeded
from tasks.train.logreg import LogRegDetector

DEFAULT_SHOT_WEIGHT = 5.0


def adapt(
    detector,
    X_shots,
    y_shots,
    X_replay,
    y_replay,
    steps: int = 50,
    shot_weight: float = DEFAULT_SHOT_WEIGHT,
    lr: float | None = None,
    random_state: int = 0,
):
    """A copy of ``detector`` adapted to K labelled shots (X_shots, y_shots) plus replayed training rows.

    Labels are "bonafide"/"spoof" strings or booleans is_spoof, as for ``fit``. ``steps`` and
    ``lr`` (default: the detector's own ``lr``) apply to the GP; logistic regression refits
    to convergence.
    """
    X_shots, X_replay = np.asarray(X_shots, dtype=np.float32), np.asarray(X_replay, dtype=np.float32)
    if len(X_shots) == 0:
        raise ValueError("adapt needs at least one shot")
    if X_shots.shape[1] != X_replay.shape[1]:
        raise ValueError(f"shots have {X_shots.shape[1]} dimensions but the replay rows have {X_replay.shape[1]}")
    X = np.concatenate([X_replay, X_shots])
    is_spoof = np.concatenate([is_spoof_target(y_replay), is_spoof_target(y_shots)])
    weight = np.concatenate([np.ones(len(X_replay)), np.full(len(X_shots), float(shot_weight))])
    if isinstance(detector, LogRegDetector):
        return _adapt_logreg(detector, X, is_spoof, weight)
    if isinstance(detector, DKLGPDetector):
        lr = detector.lr if lr is None else lr
        with seeded(random_state, detector.device):
            if detector.mode == "exact":
                return _adapt_exact_gp(detector, X, is_spoof, weight, steps, lr)
            weight = class_balanced(is_spoof, weight)  # as in fit: the SVGP's prior correction
            return _adapt_variational_gp(detector, X, is_spoof, weight, steps, lr, np.random.default_rng(random_state))
    raise TypeError(f"adapt does not know how to adapt a {type(detector).__name__}")


def _adapt_logreg(detector: LogRegDetector, X, is_spoof, weight) -> LogRegDetector:
    adapted = clone(detector).set_params(C=detector.C_, calibration=None)
    adapted.fit(X, is_spoof, sample_weight=weight)
    adapted.calibration_ = detector.calibration_
    return adapted


def _adapt_exact_gp(detector: DKLGPDetector, X, is_spoof, weight, steps: int, lr: float) -> DKLGPDetector:
    if len(X) > MAX_EXACT_POINTS:
        raise ValueError(
            f"an exact GP conditions on at most {MAX_EXACT_POINTS:,} rows; got {len(X):,} replay rows + shots: "
            "pass a smaller replay sample"
        )
    adapted = copy.deepcopy(detector)
    g = adapted.model_.g.requires_grad_(False)
    model = adapted.build_exact_model(
        adapted.standardise(X),
        torch.as_tensor(~is_spoof, device=adapted.device),
        torch.as_tensor(weight, dtype=torch.float32, device=adapted.device),
        g,
    )
    model.load_state_dict(detector.model_.state_dict())  # keep the learnt kernel, means and noise as the start
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in tqdm(range(steps), desc="adapt exact GP", disable=not detector.progress):
        optimizer.zero_grad()
        loss = -mll(model(*model.train_inputs), model.likelihood.transformed_targets).sum()
        loss.backward()
        optimizer.step()
    model.eval()
    adapted.model_ = model
    adapted.n_train_ = len(X)
    adapted.log_prior_odds_ = log_prior_odds(is_spoof, weight)
    return adapted


def _adapt_variational_gp(detector: DKLGPDetector, X, is_spoof, weight, steps: int, lr: float, rng) -> DKLGPDetector:
    adapted = copy.deepcopy(detector)
    model = adapted.model_
    model.g.requires_grad_(False)
    x = adapted.standardise(X)
    is_bona = torch.as_tensor(~is_spoof, dtype=torch.float32, device=adapted.device)
    w = torch.as_tensor(weight, dtype=torch.float32, device=adapted.device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in tqdm(range(steps), desc="adapt SVGP", disable=not detector.progress):
        rows = torch.as_tensor(rng.permutation(len(X))[: detector.batch_size], device=adapted.device)
        optimizer.zero_grad()
        loss = neg_elbo(model, x[rows], is_bona[rows], w[rows], num_data=detector.n_train_)
        loss.backward()
        optimizer.step()
    model.eval()
    return adapted
