"""Bottlenecks: the posterior q(z|x) from the encoder state h, reparameterised samples, KL per variable against
the prior, and the densities log q(z|x), log p(z) that importance sampling needs."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from ..config import LatentConfig
from ..registry import LATENTS


class Latent(nn.Module):
    """Interface every bottleneck implements; ``code_size`` is the width of the z the decoder reads."""

    code_size: int

    def posterior(self, h: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def rsample(self, q: torch.distributions.Distribution, num_samples: int | None = None) -> torch.Tensor:
        """Reparameterised sample: (B, D), or (S, B, D) with ``num_samples=S``."""
        raise NotImplementedError

    def kl_per_dim(self, q: torch.distributions.Distribution) -> torch.Tensor:
        """KL(q(z|x) || p(z)) for each latent variable: (B, D)."""
        raise NotImplementedError

    def log_q(self, q: torch.distributions.Distribution, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over variables; z is (B, D) or (S, B, D)."""
        raise NotImplementedError

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the prior, summed over variables."""
        raise NotImplementedError

    def sample_prior(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def mode(self, q: torch.distributions.Distribution) -> torch.Tensor:
        """The point code of a posterior (the mean for Gaussians): what ``encode`` returns."""
        raise NotImplementedError


@LATENTS.register("gaussian")
class GaussianLatent(Latent):
    """Diagonal Gaussian posterior N(mu, diag(sigma^2)) against a standard normal prior."""

    def __init__(self, input_size: int, config: LatentConfig) -> None:
        super().__init__()
        if config.size < 1:
            raise ValueError(f"model.latent.size must be at least 1, got {config.size}")
        self.size = self.code_size = config.size
        self.proj = nn.Linear(input_size, 2 * config.size)

    def posterior(self, h: torch.Tensor) -> Normal:
        mu, logvar = self.proj(h).chunk(2, dim=-1)
        # no argument validation: it costs time every step, and a diverged run must reach the trainer's NaN check
        return Normal(mu, torch.exp(0.5 * logvar), validate_args=False)

    def rsample(self, q: Normal, num_samples: int | None = None) -> torch.Tensor:
        return q.rsample() if num_samples is None else q.rsample((num_samples,))

    def _prior(self, like: torch.Tensor) -> Normal:
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return Normal(zero, zero + 1.0, validate_args=False)

    def kl_per_dim(self, q: Normal) -> torch.Tensor:
        return kl_divergence(q, self._prior(q.loc))

    def log_q(self, q: Normal, z: torch.Tensor) -> torch.Tensor:
        return q.log_prob(z).sum(-1)

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        return self._prior(z).log_prob(z).sum(-1)

    def sample_prior(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.size, device=device, generator=generator)

    def mode(self, q: Normal) -> torch.Tensor:
        return q.loc


def build_latent(input_size: int, config: LatentConfig) -> Latent:
    """The bottleneck named by ``config.type``."""
    return LATENTS.get(config.type)(input_size, config)
