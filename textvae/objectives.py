"""ELBO terms and schedules. Every schedule is a pure function of the step, so a resumed run sees the same weights.

- KL weight (beta_t): constant, linear (Bowman et al. 2016), sigmoid (Bowman et al. 2016), cyclical (Fu et al. 2019).
- Free bits (Kingma et al. 2016, as in Li et al. 2019): sum_d max(lambda, E_batch KL_d).
- Capacity control (Burgess et al. 2018): gamma * |KL - C(step)|, C rising linearly to its target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ObjectiveConfig


def kl_weight(config: ObjectiveConfig, step: int) -> float:
    """The KL weight in force at ``step`` (0-based), ending at ``config.beta``."""
    beta, schedule = config.beta, config.kl_schedule
    if schedule == "constant":
        return beta
    if schedule == "linear":
        warmup = max(1, config.kl_warmup_steps)
        return beta * min(1.0, config.kl_start + (1.0 - config.kl_start) * step / warmup)
    if schedule == "sigmoid":
        # logistic curve centred at warmup/2, reaching 0.99 of beta at warmup: k = 2 ln 99 / warmup
        warmup = max(1, config.kl_warmup_steps)
        slope = 2.0 * math.log(99.0) / warmup
        return beta / (1.0 + math.exp(-slope * (step - warmup / 2.0)))
    if schedule == "cyclical":
        if step >= config.kl_total_steps:
            return beta
        period = config.kl_total_steps / max(1, config.kl_cycles)
        phase = (step % period) / period
        ramp = max(config.kl_ramp_ratio, 1e-8)
        return beta * min(1.0, phase / ramp)
    raise ValueError(f"unknown KL schedule {schedule!r}")


def capacity(config: ObjectiveConfig, step: int) -> float:
    """Capacity C(step) in nats: rises linearly from 0 to ``config.capacity`` over ``capacity_steps``."""
    if config.capacity <= 0:
        return 0.0
    return config.capacity * min(1.0, step / max(1, config.capacity_steps))


@dataclass
class KLTerm:
    """The KL part of the loss at one step, and the weights in force (logged beside the loss)."""

    penalty: torch.Tensor  # scalar added to the mean reconstruction loss
    kl_weight: float
    capacity: float | None


def kl_term(kl_per_dim: torch.Tensor, config: ObjectiveConfig, step: int) -> KLTerm:
    """The weighted KL penalty for a batch of per-example, per-dimension KLs (B, D)."""
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
