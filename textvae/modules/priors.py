"""Conditional priors: p(z|c) as a network of the condition (the CVAE's prior network, Sohn et al. 2015)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal


class GaussianPriorNetwork(nn.Module):
    """p(z|c) = N(mu(c), diag(sigma(c)^2)) from an MLP with one tanh layer, as in Zhao et al. 2017."""

    def __init__(self, condition_size: int, hidden_size: int, latent_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(condition_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 2 * latent_size))

    def forward(self, c: torch.Tensor) -> Normal:
        """(B, C) conditions -> a (B, D) diagonal Gaussian."""
        mu, logvar = self.net(c).chunk(2, dim=-1)
        return Normal(mu, torch.exp(0.5 * logvar), validate_args=False)
