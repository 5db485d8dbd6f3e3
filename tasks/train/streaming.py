"""Streaming update of a sparse variational GP: fold new labelled rows into q(u), at a fixed cost.

A variational DKL GP (``dkl_gp``, ``mode="variational"``) keeps everything it learnt from its
training set in ``q(u)``, a Gaussian over the GP's values at M inducing points. A nightly update
must learn new rows without a cost that grows with the nights; conditioning on every row ever
learnt (the earlier ``_adapt``) costs O(rows³) time and O(rows²) state. This module instead
treats the previous posterior as the prior for tonight's rows (Bui, Nguyen & Turner 2017,
"Streaming sparse Gaussian process approximations", with the hyper-parameters and g frozen):

    q_new(u)  ∝  q_old(u) · Π_n p(y_n | u)^w,      p(y | u) = ∫ p(y | f) p(f | u) df

so the old evidence lives on in ``q_old`` and nothing else is kept. Three steps, each bounded
by the inducing budget M and tonight's rows N, never by the nights before:

1. **Extend** (``extend``): ``new_inducing`` inducing points at the k-means centres of the new
   rows in g's space, so a family far from every inducing point can be represented. The new
   values u₊ get the GP's conditional ``p(u₊ | u)``; in gpytorch's whitened coordinates
   (u = μ + L v, v ~ N(0, I) a priori, L the Cholesky factor of K_zz) the block Cholesky factor
   of the extended K_zz keeps L in its top-left corner, so extending is exact and is just
   appending zeros to q's mean and an identity block to its covariance.
2. **Update** (``fold_in``): with the SVGP's own (factorised) likelihood,
   ``f_n | v ~ N(μ + a_nᵀ v, k_nn − a_nᵀ a_n)`` with ``a_n = L⁻¹ k_zn``, the new rows' latent
   values have the Gaussian prior ``N(μ + Aᵀ m, Aᵀ S A + diag(k_nn − a_nᵀ a_n))`` under
   q_old = N(m, S), and the probit likelihood of their labels (each row raised to ``weight``).
   Laplace's method on those N values (``dkl_gp._laplace``, the one the conditioning update
   uses) gives ``alpha`` and ``P``, and Gaussian conditioning carries them to v:
   ``m' = m + S A alpha``, ``S' = S − S A P Aᵀ S``. Rows go in chunks of at most
   ``CHUNK_ROWS`` (each chunk's posterior is the next one's prior), so a night costs
   O(N · (M² + CHUNK_ROWS²)) whatever its size.
3. **Prune** (``prune``): back to the budget by dropping, one at a time, the inducing point
   whose posterior mean its neighbours predict best (what only it learnt is least). Dropping
   marginalises q exactly (delete its row and column in u-space, then re-whiten); what is lost
   is only what the dropped value added beyond its neighbours.

Rows far from the new ones (in g's space) keep their posterior up to what the pruning loses:
the update is local in the kernel, like the conditioning update, but its state is M values.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

CHUNK_ROWS = 512  # rows per Laplace step: bounds the O(rows³) part of a night's update
DEFAULT_NEW_INDUCING = 32  # inducing points added per update at the new rows (0 = keep Z fixed)


def _whitening(model, Z: torch.Tensor) -> torch.Tensor:
    """L with L Lᵀ = K_zz + jitter (double), as gpytorch's VariationalStrategy factorises it."""
    strategy = model.gp.variational_strategy
    K = model.gp.covar_module(Z).to_dense().double()
    return torch.linalg.cholesky(K + strategy.jitter_val * torch.eye(len(Z), dtype=K.dtype, device=K.device))


def variational_state(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Z, m, S) of the whitened q(v) = N(m, S), in double."""
    strategy = model.gp.variational_strategy
    q = strategy._variational_distribution
    chol = q.chol_variational_covar.detach().double().tril()
    return strategy.inducing_points.detach(), q.variational_mean.detach().double(), chol @ chol.mT


def extend(model, Z: torch.Tensor, m: torch.Tensor, S: torch.Tensor, Z_new: torch.Tensor):
    """Add inducing points Z_new with the GP's conditional p(u_new | u): in whitened coordinates v_new ~ N(0, I)."""
    k = len(Z_new)
    S_ext = torch.zeros(len(Z) + k, len(Z) + k, dtype=S.dtype, device=S.device)
    S_ext[: len(Z), : len(Z)] = S
    S_ext[len(Z) :, len(Z) :] = torch.eye(k, dtype=S.dtype, device=S.device)
    return torch.cat([Z, Z_new.to(Z.dtype)]), torch.cat([m, m.new_zeros(k)]), S_ext


def fold_in(model, Z, m, S, z_rows: torch.Tensor, is_bona: torch.Tensor, weight: torch.Tensor, laplace):
    """q(v) after the labelled rows at g-space points ``z_rows`` (step 2 of the module docstring)."""
    L = _whitening(model, Z)
    mean_const = model.gp.mean_module.constant.detach().double()
    kernel = model.gp.covar_module
    jitter = model.gp.variational_strategy.jitter_val
    for start in range(0, len(z_rows), CHUNK_ROWS):
        z = z_rows[start : start + CHUNK_ROWS]
        A = torch.linalg.solve_triangular(L, kernel(Z, z).to_dense().double(), upper=False)  # M x n
        k_nn = kernel(z, diag=True).double() + jitter
        SA = S @ A
        prior_mean = mean_const + A.mT @ m
        prior_cov = A.mT @ SA + torch.diag((k_nn - (A * A).sum(0)).clamp_min(0.0))
        sign = 2 * is_bona[start : start + CHUNK_ROWS] - 1
        alpha, precision = laplace(prior_mean, prior_cov, sign, weight[start : start + CHUNK_ROWS], probit=True)
        m = m + SA @ alpha
        S = S - SA @ precision @ SA.mT
        S = (S + S.mT) / 2
    return m, S


def prune(model, Z, m, S, budget: int):
    """Drop inducing points, least informative first, until ``budget`` remain; q is marginalised exactly.

    The loss of dropping u_i: after marginalising it, prediction at z_i falls back on the GP's
    conditional given the others, whose mean is ``u_i - (Q u)_i / Q_ii`` (Q = K_zz⁻¹, u taken
    at q's mean). The score ``(Q m_u)_i² / Q_ii`` is that mean's error squared in units of the
    conditional prior variance ``1 / Q_ii``: near zero for a point whose posterior its
    neighbours already imply (a redundant point, or one no data has moved from the prior), large
    for one that carries what only it learnt. Greedy, one point at a time, O(M²) each.
    """
    if len(Z) <= budget:
        return Z, m, S
    L = _whitening(model, Z)
    mean_u, cov_u = L @ m, L @ S @ L.mT  # u − μ in unwhitened coordinates
    precision = torch.cholesky_inverse(L)
    keep = list(range(len(Z)))
    while len(keep) > budget:
        loss = (precision @ mean_u[keep]) ** 2 / precision.diagonal()
        drop = int(torch.argmin(loss))
        # Precision of the others after marginalising one value out: a Schur complement, O(M²).
        rest = [i for i in range(len(precision)) if i != drop]
        precision = (
            precision[rest][:, rest]
            - torch.outer(precision[rest, drop], precision[drop, rest]) / (precision[drop, drop])
        )
        del keep[drop]
    index = torch.as_tensor(keep, device=Z.device)
    Z, mean_u, cov_u = Z[index], mean_u[index], cov_u[index][:, index]
    L = _whitening(model, Z)
    m = torch.linalg.solve_triangular(L, mean_u[:, None], upper=False)[:, 0]
    half = torch.linalg.solve_triangular(L, cov_u, upper=False)
    S = torch.linalg.solve_triangular(L, half.mT, upper=False)
    return Z, m, (S + S.mT) / 2


def new_inducing_points(z_rows: torch.Tensor, count: int, random_state: int) -> torch.Tensor:
    """``count`` k-means centres of the new rows in g's space (fewer when there are fewer rows)."""
    count = min(count, len(z_rows))
    if count == 0:
        return z_rows[:0]
    points = z_rows.detach().cpu().double().numpy()
    centres = KMeans(n_clusters=count, n_init=1, random_state=random_state).fit(points).cluster_centers_
    return torch.as_tensor(np.asarray(centres), dtype=z_rows.dtype, device=z_rows.device)


def write_back(model, Z: torch.Tensor, m: torch.Tensor, S: torch.Tensor) -> None:
    """Set ``model``'s inducing points to Z and its q(v) to N(m, S) (``model`` has len(Z) inducing points)."""
    strategy = model.gp.variational_strategy
    q = strategy._variational_distribution
    eye = torch.eye(len(S), dtype=S.dtype, device=S.device)
    jitter = 1e-10 * float(S.diagonal().mean())
    for _ in range(8):  # S is PSD up to rounding: add the smallest jitter that factorises it
        chol, info = torch.linalg.cholesky_ex(S + jitter * eye)
        if int(info) == 0:
            break
        jitter *= 100
    with torch.no_grad():
        strategy.inducing_points.copy_(Z.to(strategy.inducing_points.dtype))
        q.variational_mean.copy_(m.to(q.variational_mean.dtype))
        q.chol_variational_covar.copy_(chol.to(q.chol_variational_covar.dtype))
        strategy.variational_params_initialized.fill_(1)
    strategy._clear_cache()  # gpytorch memoises K_zz's Cholesky factor and q in eval mode
