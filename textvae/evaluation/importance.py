"""How far to trust an importance-sampling estimate, from its log weights alone: the effective sample size and the
Pareto k-hat diagnostic.

An IW-NLL with K samples approaches log p(x) from below and can sit far above the truth when q(z|x) is narrower
than the posterior (a few rare z carry the integral); the K numbers of one sentence say so before any ground truth
does. Pareto smoothed importance sampling (Vehtari, Simpson, Gelman, Yao and Gabry, JMLR 2024) fits a generalised
Pareto distribution to the largest weights: its shape k-hat estimates how heavy their tail is. Below 0.5 the
weights have finite variance; above 0.7 the estimate is unreliable at any practical K (the paper's threshold for
K of a few hundred or more is min(1 - 1/log10 K, 0.7)). ``pareto_k`` computes k-hat as ArviZ's ``psislw`` does
(tail of min(K/5, 3 sqrt(K)) weights, Zhang and Stephens' 2009 estimator with its weakly informative prior).
"""

from __future__ import annotations

import math

import numpy as np
import torch

PARETO_K_RELIABLE = 0.7
"""k-hat above which an importance-sampling estimate is unreliable (Vehtari et al. 2024)."""


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size of importance weights, (sum w)^2 / sum w^2, from log weights (K, ...) -> (...):
    K when every weight is equal, near 1 when one sample carries the estimate."""
    log_w = log_weights.double()
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


def pareto_k(log_weights: torch.Tensor) -> torch.Tensor:
    """Pareto k-hat of each column of log weights (K, ...) -> (...), float64: the shape of a generalised Pareto
    distribution fitted to the largest min(K/5, 3 sqrt(K)) weights, as ArviZ's ``psislw`` fits it (r_eff = 1).
    -inf where those weights are all equal (no tail: every sample counts alike); +inf where fewer than five
    weights exceed the tail's threshold (one or a few samples carry the estimate), as ArviZ returns it."""
    log_w = log_weights.detach().double().cpu()
    columns = log_w.reshape(log_w.size(0), -1).numpy()
    k_hat = np.array([_column_k_hat(columns[:, j]) for j in range(columns.shape[1])])
    return torch.from_numpy(k_hat).reshape(log_w.shape[1:])


def _column_k_hat(log_w: np.ndarray) -> float:
    n = log_w.size
    if n < 5 or not np.all(np.isfinite(log_w)):
        return math.inf if n >= 5 else math.nan
    tail_size = math.ceil(min(0.2 * n, 3 * math.sqrt(n)))
    x = log_w - log_w.max()
    cutoff = max(np.sort(x)[-tail_size - 1], np.log(np.finfo(float).tiny))
    tail = x[x > cutoff]
    if tail.size == 0:
        return -math.inf
    if tail.size <= 4:
        return math.inf
    return _gpd_fit_shape(np.sort(np.exp(tail) - np.exp(cutoff)))


def _gpd_fit_shape(sorted_excesses: np.ndarray) -> float:
    """Shape of a generalised Pareto distribution fitted to increasing positive excesses: Zhang and Stephens'
    (2009) posterior-mean estimator, shrunk towards 0.5 by ArviZ's prior (10 pseudo-observations)."""
    x = sorted_excesses
    n = x.size
    m = 30 + int(n**0.5)
    b = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b /= 3 * x[int(n / 4 + 0.5) - 1]
    b += 1 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = n * (np.log(-(b / k)) - k - 1)
    weights = 1 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    b_post = np.sum(b * weights / weights.sum())
    k_post = np.log1p(-b_post * x).mean()
    return float((n * k_post + 10 * 0.5) / (n + 10))
