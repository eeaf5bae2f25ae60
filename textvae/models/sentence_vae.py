"""The sentence VAE (Bowman et al. 2016; He et al. 2019): encoder -> q(z|x) -> z -> autoregressive decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config import ConfigError, ModelConfig
from ..modules.decoders import build_decoder, samples_nll, sequence_nll
from ..modules.encoders import build_encoder
from ..modules.latents import GaussianLatent, build_latent
from ..objectives import gumbel_temperature, kl_term, tc_decomposition, tcvae_term
from ..registry import MODELS
from .base import BaseVAE, VAEOutput


@dataclass
class TextVAEOutput(VAEOutput):
    """``VAEOutput`` plus the terms that only some latents and objectives have (None otherwise).

    ``temperature``: the Gumbel-Softmax tau used at this step; ``kl_categorical``: (B,) KL of the categorical
    variables (part of ``kl``); ``mi``, ``tc``, ``dim_kl``: (B,) beta-TCVAE estimates, summing to log q(z|x) - log p(z).
    """

    temperature: Optional[float] = None
    discrete_kl_weight: Optional[float] = None
    discrete_capacity: Optional[float] = None
    kl_categorical: Optional[torch.Tensor] = None
    mi: Optional[torch.Tensor] = None
    tc: Optional[torch.Tensor] = None
    dim_kl: Optional[torch.Tensor] = None

    def log_values(self) -> dict[str, float]:
        values = super().log_values()
        for name in ("temperature", "discrete_kl_weight", "discrete_capacity"):
            if getattr(self, name) is not None:
                values[name] = float(getattr(self, name))
        for name in ("kl_categorical", "mi", "tc", "dim_kl"):
            if getattr(self, name) is not None:
                values[name] = float(getattr(self, name).detach().mean())
        return values


@MODELS.register("sentence_vae")
class TextVAE(BaseVAE):
    """Sentence VAE. ``forward(batch, step)`` returns a ``VAEOutput``; ``log_prob_given_z`` gives log p(x|z)
    for any number of latent samples, which importance-weighted evaluation builds on."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        vocab = tokenizer.vocab_size
        # with no latent (a language model) there is nothing to encode
        self.encoder = (
            None if config.latent.type == "none"
            else build_encoder(vocab, config.encoder, pad_id=tokenizer.pad_id, tokenizer=tokenizer)
        )
        self.latent = build_latent(self.encoder.output_size if self.encoder else 0, config.latent)
        self.decoder = build_decoder(
            vocab, self.latent.code_size, config.decoder, pad_id=tokenizer.pad_id, unk_id=tokenizer.unk_id,
            tokenizer=tokenizer,
        )
        check_objective(config, self.latent)

    def posterior(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.distributions.Distribution:
        """q(z|x) for a padded batch."""
        if self.encoder is None:
            return self.latent.posterior(self.decoder.embedding.weight.new_zeros(input_ids.size(0), 0))
        return self.latent.posterior(self.encoder(input_ids, lengths))

    def reconstruction_nll(self, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence (N,) for (N, T) ids and (N, D) z, summed over the predicted tokens
        (words and <eos>); see ``modules.decoders.sequence_nll``."""
        return sequence_nll(self.decoder, input_ids, lengths, z)

    def log_prob_given_z(self, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per sentence: z (B, D) -> (B,), or z (S, B, D) -> (S, B) for S samples per sentence."""
        if z.dim() == 2:
            return -self.reconstruction_nll(input_ids, lengths, z)
        return -samples_nll(self.decoder, input_ids, lengths, z)

    def forward(self, batch: dict, step: int = 0) -> TextVAEOutput:
        """One training or evaluation pass over a batch from ``collate``; the KL weights and the Gumbel temperature
        follow ``step``. In eval mode categorical variables are sampled exactly (one-hot), not relaxed."""
        input_ids, lengths = batch["input_ids"], batch["lengths"]
        q = self.posterior(input_ids, lengths)
        return latent_forward(self.latent, self.config, q, step, lambda z: self.reconstruction_nll(input_ids, lengths, z),
                              num_tokens=(lengths - 1).sum())


def check_objective(config: ModelConfig, latent) -> None:
    """A ConfigError for an objective the latent cannot take (beta-TCVAE: Gaussian latents, no capacity or free bits)."""
    objective = config.objective
    if objective.tcvae:
        if not isinstance(latent, GaussianLatent):
            raise ConfigError(f"model.objective.tcvae needs model.latent.type 'gaussian', not {config.latent.type!r}")
        if objective.capacity > 0 or objective.free_bits > 0:
            raise ConfigError("model.objective.tcvae replaces the KL term; set capacity and free_bits to 0")


def latent_forward(latent, config: ModelConfig, q, step: int, reconstruction, num_tokens: torch.Tensor) -> TextVAEOutput:
    """The loss of any single-latent VAE, whatever it models: z sampled from ``q`` (the Gumbel-Softmax temperature
    following ``step``), ``reconstruction(z)`` -> -log p(x|z) per example (B,), and the KL term of the objective
    (beta and its schedule, capacity, free bits, beta-TCVAE). Text and image VAEs share it."""
    num_categorical = latent.num_categorical
    temperature = gumbel_temperature(config.latent, step) if num_categorical else None
    z = latent.rsample(q, temperature=temperature)
    rec = reconstruction(z)
    kl_per_dim = latent.kl_per_dim(q)
    objective = config.objective
    parts = None
    if objective.tcvae:
        parts = tc_decomposition(q, z, objective.tc_dataset_size, objective.tc_estimator)
        term = tcvae_term(parts, objective, step)
    else:
        term = kl_term(kl_per_dim, objective, step, num_categorical, latent.max_categorical_kl)
    return TextVAEOutput(
        loss=rec.mean() + term.penalty,
        rec=rec,
        kl=kl_per_dim.sum(-1),
        kl_per_dim=kl_per_dim,
        kl_weight=term.kl_weight,
        capacity=term.capacity,
        num_tokens=num_tokens,
        z=z,
        z_mean=latent.mean(q).detach(),
        temperature=temperature,
        discrete_kl_weight=term.discrete_kl_weight,
        discrete_capacity=term.discrete_capacity,
        kl_categorical=kl_per_dim[:, -num_categorical:].sum(-1) if num_categorical else None,
        mi=None if parts is None else parts.mi,
        tc=None if parts is None else parts.tc,
        dim_kl=None if parts is None else parts.dim_kl,
    )
