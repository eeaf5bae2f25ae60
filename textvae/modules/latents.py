"""Bottlenecks: the posterior q(z|x) from the encoder state h, reparameterised samples, KL per variable against
the prior, and the densities log q(z|x), log p(z) that importance sampling needs.

- ``GaussianLatent``: diagonal Gaussian against N(0, I).
- ``GumbelLatent(category_sizes)``: independent categorical variables, each with its own number of categories,
  against uniform priors; z is the concatenation of their one-hot codes (Gumbel-Softmax / Concrete samples in
  training, Jang et al. 2017, Maddison et al. 2017).
- ``JointLatent``: Gaussian dimensions and categorical variables side by side (JointVAE, Dupont 2018).

Categorical densities are exact, not relaxed. In training, z is a relaxed one-hot sample at temperature tau (or a
straight-through one-hot with ``hard``) and the KL is the exact categorical KL, log n - H(q), as in JointVAE. In eval
mode ``rsample`` draws exact one-hot samples (the Gumbel-max trick) and ``log_q``/``log_p`` are categorical
log-masses, so importance-weighted NLL bounds log p(x) of the discrete model that ``sample`` and ``decode`` use
(one-hot codes in, text out). The Concrete density would bound a different, temperature-dependent model, and its
log-density diverges as tau -> 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, Normal, RelaxedOneHotCategorical, constraints, kl_divergence

from ..config import LatentConfig
from ..registry import LATENTS


class Latent(nn.Module):
    """Interface every bottleneck implements; ``code_size`` is the width of the z the decoder reads."""

    code_size: int
    num_categorical: int = 0  # categorical variables: the last ``num_categorical`` columns of ``kl_per_dim``
    max_categorical_kl: float = 0.0  # sum of log n over them, the most KL they can carry

    def posterior(self, h: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def rsample(
        self, q: torch.distributions.Distribution, num_samples: int | None = None, temperature: float | None = None
    ) -> torch.Tensor:
        """Reparameterised sample: (B, D), or (S, B, D) with ``num_samples=S``; ``temperature`` is the Gumbel-Softmax
        tau for categorical variables (ignored by Gaussians)."""
        raise NotImplementedError

    def kl_per_dim(self, q: torch.distributions.Distribution) -> torch.Tensor:
        """KL(q(z|x) || p(z)) for each latent variable: (B, V), Gaussian dimensions first, then categorical variables."""
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

    def mean(self, q: torch.distributions.Distribution) -> torch.Tensor:
        """E_q[z] in code space (B, D): the Gaussian mean, the category probabilities of a categorical variable
        (not ``mode``'s argmax one-hot); what active units are counted on."""
        return q.mean


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

    def rsample(self, q: Normal, num_samples: int | None = None, temperature: float | None = None) -> torch.Tensor:
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

    def mean(self, q: Normal) -> torch.Tensor:
        return q.loc


@LATENTS.register("none")
class NoLatent(GaussianLatent):
    """No latent variable: z has zero dimensions, so the sentence VAE is its decoder alone, a language model with
    exact likelihood (KL 0, every importance weight equal). The baseline row of the PTB table."""

    def __init__(self, input_size: int, config: LatentConfig) -> None:
        Latent.__init__(self)
        self.size = self.code_size = 0

    def posterior(self, h: torch.Tensor) -> Normal:
        empty = h.new_zeros(h.size(0), 0)
        return Normal(empty, empty + 1.0, validate_args=False)

    def sample_prior(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, 0, device=device)


class CategoricalPosterior(Distribution):
    """Independent categorical variables with different numbers of categories, as one distribution over the
    concatenation of their one-hot codes. ``logits``: (B, sum(category_sizes)), unnormalised per variable."""

    arg_constraints = {"logits": constraints.real_vector}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, category_sizes: Sequence[int]) -> None:
        self.category_sizes = [int(n) for n in category_sizes]
        if logits.size(-1) != sum(self.category_sizes):
            raise ValueError(f"logits have {logits.size(-1)} columns, category sizes {self.category_sizes} need "
                             f"{sum(self.category_sizes)}")
        self.logits = logits
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A tensor (..., sum n) cut into one block (..., n_i) per variable."""
        return torch.split(x, self.category_sizes, dim=-1)

    @property
    def log_probs(self) -> list[torch.Tensor]:
        """Normalised log-probabilities, one (B, n_i) tensor per variable."""
        return [F.log_softmax(block, dim=-1) for block in self.split(self.logits)]

    @property
    def probs(self) -> torch.Tensor:
        return torch.cat([lp.exp() for lp in self.log_probs], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return one_hot_blocks([block.argmax(-1) for block in self.split(self.logits)], self.category_sizes, self.logits)

    def variables(self) -> list[Categorical]:
        """One ``torch.distributions.Categorical`` per variable."""
        return [Categorical(logits=block) for block in self.split(self.logits)]

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Exact one-hot samples (no gradient): (*sample_shape, B, sum n)."""
        with torch.no_grad():
            picks = [c.sample(torch.Size(sample_shape)) for c in self.variables()]
            return one_hot_blocks(picks, self.category_sizes, self.logits)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Categorical log-mass of one-hot codes (…, sum n), summed over variables. For a relaxed (soft) code this
        is sum_i <z_i, log q_i>, a cross-entropy, not a density."""
        return sum((z * lp).sum(-1) for z, lp in zip(self.split(value), self.log_probs))

    def entropy(self) -> torch.Tensor:
        """Summed entropy of the variables: (B,)."""
        return self.entropy_per_variable().sum(-1)

    def entropy_per_variable(self) -> torch.Tensor:
        return torch.stack([-(lp.exp() * lp).sum(-1) for lp in self.log_probs], dim=-1)


def one_hot_blocks(indices: Sequence[torch.Tensor], category_sizes: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Concatenated one-hot codes (…, sum n) of category indices, one (…) long tensor per variable."""
    return torch.cat([F.one_hot(i, n).to(like.dtype) for i, n in zip(indices, category_sizes)], dim=-1)


def check_category_sizes(sizes: Sequence[int], where: str = "model.latent.category_sizes") -> list[int]:
    sizes = list(sizes)
    if not sizes:
        raise ValueError(f"{where} is empty: give one number of categories per variable, e.g. [2, 3, 5, 10]")
    bad = [n for n in sizes if not isinstance(n, int) or n < 2]
    if bad:
        raise ValueError(f"{where} must hold integers >= 2 (a variable with one category carries nothing), got {sizes}")
    return sizes


@LATENTS.register("gumbel")
class GumbelLatent(Latent):
    """Independent categorical variables with per-variable category sizes against uniform priors.

    z = concatenated one-hot codes (code_size = sum(category_sizes)); relaxed Gumbel-Softmax samples at temperature
    tau in training (straight-through one-hot with ``hard``), exact one-hot samples in eval mode."""

    def __init__(self, input_size: int, config: LatentConfig) -> None:
        super().__init__()
        self.category_sizes = check_category_sizes(config.category_sizes)
        self.num_variables = self.num_categorical = len(self.category_sizes)
        self.code_size = sum(self.category_sizes)
        self.max_categorical_kl = float(sum(math.log(n) for n in self.category_sizes))
        self.hard = config.hard
        self.default_temperature = config.temperature_min  # where the schedule ends; used when none is passed
        self.proj = nn.Linear(input_size, self.code_size)
        self.register_buffer("_log_sizes", torch.tensor([math.log(n) for n in self.category_sizes]), persistent=False)

    def posterior(self, h: torch.Tensor) -> CategoricalPosterior:
        return CategoricalPosterior(self.proj(h), self.category_sizes)

    def rsample(
        self, q: CategoricalPosterior, num_samples: int | None = None, temperature: float | None = None
    ) -> torch.Tensor:
        shape = torch.Size() if num_samples is None else torch.Size((num_samples,))
        if not self.training:
            return q.sample(shape)
        tau = self.default_temperature if temperature is None else float(temperature)
        if tau <= 0:
            raise ValueError(f"Gumbel-Softmax temperature must be positive, got {tau}")
        tau_t = q.logits.new_tensor(tau)
        blocks = []
        for logits, n in zip(q.split(q.logits), self.category_sizes):
            y = RelaxedOneHotCategorical(tau_t, logits=logits).rsample(shape)
            if self.hard:  # forward: the one-hot of the relaxed sample's argmax; backward: the relaxed gradient
                y = F.one_hot(y.argmax(-1), n).to(y.dtype) - y.detach() + y
            blocks.append(y)
        return torch.cat(blocks, dim=-1)

    def kl_per_dim(self, q: CategoricalPosterior) -> torch.Tensor:
        """KL(q_i || uniform(n_i)) = log n_i - H(q_i) per variable: (B, V), each in [0, log n_i]."""
        return self._log_sizes.to(q.logits.dtype) - q.entropy_per_variable()

    def log_q(self, q: CategoricalPosterior, z: torch.Tensor) -> torch.Tensor:
        return q.log_prob(z)

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        """Uniform categorical prior: -sum(log n) for any one-hot code."""
        return z.new_full(z.shape[:-1], -self.max_categorical_kl)

    def sample_prior(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        picks = [torch.randint(0, k, (n,), device=device, generator=generator) for k in self.category_sizes]
        return one_hot_blocks(picks, self.category_sizes, torch.empty(0, device=device))

    def mode(self, q: CategoricalPosterior) -> torch.Tensor:
        """The argmax one-hot code of each variable."""
        return q.mode

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Category index of each variable in codes (…, sum n): (…, V) long."""
        return torch.stack([block.argmax(-1) for block in torch.split(z, self.category_sizes, dim=-1)], dim=-1)

    def codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """One-hot codes (…, sum n) of category indices (…, V): the inverse of ``indices``."""
        return one_hot_blocks(indices.unbind(-1), self.category_sizes, torch.empty(0, device=indices.device))


class JointPosterior(NamedTuple):
    """q(z|x) of a ``JointLatent``: the Gaussian part and the categorical part, independent given x."""

    continuous: Normal
    discrete: CategoricalPosterior

    @property
    def mean(self) -> torch.Tensor:
        return torch.cat([self.continuous.mean, self.discrete.mean], dim=-1)


@LATENTS.register("joint")
class JointLatent(Latent):
    """Gaussian dimensions (``size``) and categorical variables (``category_sizes``) side by side, as JointVAE.
    z = [Gaussian z, one-hot codes]; ``kl_per_dim`` has one column per Gaussian dimension, then per variable."""

    def __init__(self, input_size: int, config: LatentConfig) -> None:
        super().__init__()
        self.continuous = GaussianLatent(input_size, config)
        self.discrete = GumbelLatent(input_size, config)
        self.num_continuous = self.continuous.code_size
        self.category_sizes = self.discrete.category_sizes
        self.num_categorical = self.discrete.num_categorical
        self.max_categorical_kl = self.discrete.max_categorical_kl
        self.code_size = self.num_continuous + self.discrete.code_size

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z[..., : self.num_continuous], z[..., self.num_continuous :]

    def posterior(self, h: torch.Tensor) -> JointPosterior:
        return JointPosterior(self.continuous.posterior(h), self.discrete.posterior(h))

    def rsample(self, q: JointPosterior, num_samples: int | None = None, temperature: float | None = None) -> torch.Tensor:
        return torch.cat(
            [self.continuous.rsample(q.continuous, num_samples), self.discrete.rsample(q.discrete, num_samples, temperature)],
            dim=-1,
        )

    def kl_per_dim(self, q: JointPosterior) -> torch.Tensor:
        return torch.cat([self.continuous.kl_per_dim(q.continuous), self.discrete.kl_per_dim(q.discrete)], dim=-1)

    def log_q(self, q: JointPosterior, z: torch.Tensor) -> torch.Tensor:
        zc, zd = self._split(z)
        return self.continuous.log_q(q.continuous, zc) + self.discrete.log_q(q.discrete, zd)

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        zc, zd = self._split(z)
        return self.continuous.log_p(zc) + self.discrete.log_p(zd)

    def sample_prior(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.cat(
            [self.continuous.sample_prior(n, device, generator), self.discrete.sample_prior(n, device, generator)], dim=-1
        )

    def mode(self, q: JointPosterior) -> torch.Tensor:
        return torch.cat([self.continuous.mode(q.continuous), self.discrete.mode(q.discrete)], dim=-1)

    def mean(self, q: JointPosterior) -> torch.Tensor:
        return torch.cat([self.continuous.mean(q.continuous), self.discrete.mean(q.discrete)], dim=-1)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Category index of each categorical variable: (…, V) long."""
        return self.discrete.indices(self._split(z)[1])


def build_latent(input_size: int, config: LatentConfig) -> Latent:
    """The bottleneck named by ``config.type``."""
    return LATENTS.get(config.type)(input_size, config)
