"""ELBO terms and schedules. Every schedule is a pure function of the step, so a resumed run sees the same weights.

- KL weight (beta_t): constant, linear (Bowman et al. 2016), sigmoid (Bowman et al. 2016), cyclical (Fu et al. 2019).
- Free bits (Kingma et al. 2016, as in Li et al. 2019): sum_d max(lambda, E_batch KL_d).
- Capacity control (Burgess et al. 2018): gamma * |KL - C(step)|, C rising linearly to its target.
- Categorical variables (JointVAE, Dupont 2018): their own beta or capacity (``discrete_*``), beside the Gaussian part.
- beta-TCVAE (Chen et al. 2018): KL = index-code MI + total correlation + dimension-wise KL, weighted alpha, beta,
  gamma; q(z) estimated on the minibatch by weighted (MWS) or stratified (MSS) sampling.
- Gumbel-Softmax temperature (Jang et al. 2017): exponential decay to a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Normal

from .config import LatentConfig, ObjectiveConfig


def kl_anneal(config: ObjectiveConfig, step: int) -> float:
    """The schedule's factor in [0, 1] at ``step`` (0-based); the KL weights are beta times this factor."""
    schedule = config.kl_schedule
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        warmup = max(1, config.kl_warmup_steps)
        return min(1.0, config.kl_start + (1.0 - config.kl_start) * step / warmup)
    if schedule == "sigmoid":
        # logistic curve centred at warmup/2, reaching 0.99 at warmup: k = 2 ln 99 / warmup
        warmup = max(1, config.kl_warmup_steps)
        slope = 2.0 * math.log(99.0) / warmup
        return 1.0 / (1.0 + math.exp(-slope * (step - warmup / 2.0)))
    if schedule == "cyclical":
        if step >= config.kl_total_steps:
            return 1.0
        period = config.kl_total_steps / max(1, config.kl_cycles)
        phase = (step % period) / period
        ramp = max(config.kl_ramp_ratio, 1e-8)
        return min(1.0, phase / ramp)
    raise ValueError(f"unknown KL schedule {schedule!r}")


def kl_weight(config: ObjectiveConfig, step: int) -> float:
    """The KL weight in force at ``step`` (0-based), ending at ``config.beta``."""
    return config.beta * kl_anneal(config, step)


def discrete_kl_weight(config: ObjectiveConfig, step: int) -> float:
    """The weight on categorical variables' KL: ``discrete_beta`` (or ``beta``) under the same schedule."""
    beta = config.beta if config.discrete_beta is None else config.discrete_beta
    return beta * kl_anneal(config, step)


def gumbel_temperature(config: LatentConfig, step: int) -> float:
    """Gumbel-Softmax tau at ``step``: ``temperature * exp(-temperature_anneal_rate * step)``, floored at
    ``temperature_min`` (Jang et al. 2017 anneal the same way)."""
    tau = config.temperature * math.exp(-config.temperature_anneal_rate * max(0, step))
    return max(config.temperature_min, tau)


def capacity(config: ObjectiveConfig, step: int) -> float:
    """Capacity C(step) in nats: rises linearly from 0 to ``config.capacity`` over ``capacity_steps``."""
    if config.capacity <= 0:
        return 0.0
    return config.capacity * min(1.0, step / max(1, config.capacity_steps))


def discrete_capacity(config: ObjectiveConfig, step: int, max_kl: float = math.inf) -> float:
    """Capacity for categorical variables: ``discrete_capacity`` (or ``capacity``) over ``discrete_capacity_steps``
    (or ``capacity_steps``), capped at ``max_kl`` = sum(log n), which no posterior can exceed (as in JointVAE)."""
    target = config.capacity if config.discrete_capacity is None else config.discrete_capacity
    if target <= 0:
        return 0.0
    steps = config.capacity_steps if config.discrete_capacity_steps is None else config.discrete_capacity_steps
    return min(target, max_kl) * min(1.0, step / max(1, steps))


@dataclass
class KLTerm:
    """The KL part of the loss at one step, and the weights in force (logged beside the loss)."""

    penalty: torch.Tensor  # scalar added to the mean reconstruction loss
    kl_weight: float
    capacity: float | None
    discrete_kl_weight: float | None = None  # set when the latent has categorical variables
    discrete_capacity: float | None = None


def kl_term(
    kl_per_dim: torch.Tensor,
    config: ObjectiveConfig,
    step: int,
    num_categorical: int = 0,
    max_categorical_kl: float = math.inf,
) -> KLTerm:
    """The weighted KL penalty for a batch of per-example, per-variable KLs (B, D). The last ``num_categorical``
    columns are categorical variables and get the ``discrete_*`` weight or capacity; the others the plain ones."""
    if num_categorical:
        return _mixed_kl_term(kl_per_dim, config, step, num_categorical, max_categorical_kl)
    weight = kl_weight(config, step)
    if config.capacity > 0:
        c = capacity(config, step)
        kl = kl_per_dim.sum(-1).mean()
        return KLTerm(config.capacity_gamma * (kl - c).abs(), weight, c)
    if config.free_bits > 0:
        per_dim = kl_per_dim.mean(0)  # (D,) batch-averaged, as Kingma et al. apply the hinge to groups
        penalty = torch.clamp(per_dim, min=config.free_bits).sum()
    else:
        penalty = kl_per_dim.sum(-1).mean()
    return KLTerm(weight * penalty, weight, None)


def _part_penalty(kl: torch.Tensor, weight: float, cap: float, use_capacity: bool, config: ObjectiveConfig) -> torch.Tensor:
    """One part's penalty: gamma * |KL - C| under capacity control, else weight * (free-bits hinged) KL."""
    if kl.size(-1) == 0:
        return kl.new_zeros(())
    if use_capacity:
        return config.capacity_gamma * (kl.sum(-1).mean() - cap).abs()
    if config.free_bits > 0:
        return weight * torch.clamp(kl.mean(0), min=config.free_bits).sum()
    return weight * kl.sum(-1).mean()


def _mixed_kl_term(
    kl_per_dim: torch.Tensor, config: ObjectiveConfig, step: int, num_categorical: int, max_categorical_kl: float
) -> KLTerm:
    split = kl_per_dim.size(-1) - num_categorical
    if split < 0:
        raise ValueError(f"num_categorical={num_categorical} exceeds the {kl_per_dim.size(-1)} KL columns")
    weight, d_weight = kl_weight(config, step), discrete_kl_weight(config, step)
    use_cap = config.capacity > 0
    d_target = config.capacity if config.discrete_capacity is None else config.discrete_capacity
    use_d_cap = d_target > 0
    cap = capacity(config, step)
    d_cap = discrete_capacity(config, step, max_categorical_kl)
    penalty = _part_penalty(kl_per_dim[:, :split], weight, cap, use_cap, config) + _part_penalty(
        kl_per_dim[:, split:], d_weight, d_cap, use_d_cap, config
    )
    return KLTerm(
        penalty,
        weight,
        cap if use_cap and split > 0 else None,
        discrete_kl_weight=d_weight,
        discrete_capacity=d_cap if use_d_cap else None,
    )


# ---------------------------------------------------------------- beta-TCVAE


@dataclass
class TCDecomposition:
    """Per-example estimates (B,) whose sum is log q(z|x) - log p(z), the one-sample Monte Carlo KL:
    ``mi`` = log q(z|x) - log q(z), ``tc`` = log q(z) - sum_d log q(z_d), ``dim_kl`` = sum_d log q(z_d) - log p(z_d),
    with q(z) and q(z_d) estimated by weights that sum to 1 over the batch, so each term estimates the quantity it
    names (batch means: E[mi] -> I(x; z), E[tc] -> TC, E[dim_kl] -> sum_d KL(q(z_d) || p(z_d)))."""

    mi: torch.Tensor
    tc: torch.Tensor
    dim_kl: torch.Tensor

    @property
    def kl(self) -> torch.Tensor:
        return self.mi + self.tc + self.dim_kl


def _stratified_sampling_log_weights(batch: int, dataset_size: int, device, dtype) -> torch.Tensor:
    """log w[i, j] of minibatch stratified sampling (Chen et al. 2018, appendix): sample i's own posterior gets
    1/N, its cyclic neighbour i+1 (N-M)/(NM), the other B-2 get 1/M, with M = B - 1; each row sums to 1. (The
    reference code's ``W[M-1, 0]`` gives row B-2 two neighbours, so that row sums to 1 - 1/N; we wrap row B-1.)"""
    n, m = dataset_size, batch - 1
    w = torch.full((batch, batch), 1.0 / m, device=device, dtype=dtype)
    rows = torch.arange(batch, device=device)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % batch] = (n - m) / (n * m)
    return w.log()


def tc_decomposition(q: Normal, z: torch.Tensor, dataset_size: int = 0, estimator: str = "mws") -> TCDecomposition:
    """Split KL(q(z|x) || p(z)) into index-code MI, total correlation and dimension-wise KL for a batch of
    Gaussian posteriors (B, D) and one sample z (B, D) each; q(z) is estimated on the minibatch with
    ``estimator`` "mws" (weights 1/M, M = B) or "mss" (stratified), N = ``dataset_size`` (0: the batch size).

    Chen et al.'s minibatch weighted sampling weighs each pair 1/(N M): weights that sum to 1/N, not 1, so its
    log q(z) and each log q(z_d) read log N low, and its MI, TC and dimension-wise KL are shifted by log N,
    (D - 1) log N and -D log N. The shifts are constants (the gradients are the same), so "mws" here uses the
    weights 1/M that make each term an estimate of its quantity (exact when the batch is the whole data set);
    N plays no part in it."""
    batch = z.size(0)
    n = dataset_size if dataset_size > 0 else batch
    # log q(z_i[d] | x_j)[d] for every pair (i, j): (B, B, D); the whole estimator rests on this matrix
    pair = Normal(q.loc.unsqueeze(0), q.scale.unsqueeze(0)).log_prob(z.unsqueeze(1))
    if estimator == "mws":
        log_qz = torch.logsumexp(pair.sum(-1), dim=1) - math.log(batch)
        log_qz_dims = torch.logsumexp(pair, dim=1) - math.log(batch)  # (B, D)
    elif estimator == "mss":
        if batch < 3:
            raise ValueError("minibatch stratified sampling needs a batch of at least 3")
        log_w = _stratified_sampling_log_weights(batch, max(n, batch), z.device, z.dtype)
        log_qz = torch.logsumexp(log_w + pair.sum(-1), dim=1)
        log_qz_dims = torch.logsumexp(log_w.unsqueeze(-1) + pair, dim=1)
    else:
        raise ValueError(f"unknown total-correlation estimator {estimator!r}; use mws or mss")
    log_qz_x = q.log_prob(z).sum(-1)
    log_pz = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    log_prod = log_qz_dims.sum(-1)
    return TCDecomposition(mi=log_qz_x - log_qz, tc=log_qz - log_prod, dim_kl=log_prod - log_pz)


def tcvae_term(parts: TCDecomposition, config: ObjectiveConfig, step: int) -> KLTerm:
    """beta-TCVAE penalty: a(t) * (alpha * MI + beta * TC + gamma * dimension-wise KL), batch-averaged, where a(t)
    is the KL schedule's factor; ``beta`` is the plain KL weight, so ``kl_weight`` reports beta * a(t)."""
    anneal = kl_anneal(config, step)
    penalty = anneal * (config.tc_alpha * parts.mi + config.beta * parts.tc + config.tc_gamma * parts.dim_kl).mean()
    return KLTerm(penalty, config.beta * anneal, None)
