"""Latent-action negotiation agents (LaRL; Zhao, Xie and Eskenazi, NAACL 2019), ``model_type: larl``.

The context and goal pieces and the selection head are ``NegotiationModel``'s; between the context c and the words
sits a latent action z, and the decoder reads z only, so z is all a turn's words depend on:

    p(z | c)     the policy: ``model.latent`` on c (``gumbel``: ``category_sizes`` categorical variables, LaRL's
                 default 10 of 20 categories at temperature 1; ``gaussian``: ``size`` dimensions, LaRL's 200)
    p(x | z)     the response decoder
    lite ELBO    rec + beta * KL(p(z|c) || uniform or N(0, I)) with z ~ p(z|c)   (``negotiation.elbo: lite``)
    full ELBO    rec + beta * KL(q(z|x,c) || p(z|c)) with z ~ q(z|x,c), q a recognition network on [x; c]

beta is ``model.objective.beta`` (LaRL: 0.01) with its schedule. Both KLs are >= 0 and are *added* to the NLL:
the loss is -ELBO. (Issue #16 reports that LaRL's released Deal code subtracts the KL, which would reward a
spread-out policy instead of penalising it; not checked against that code here. We follow the paper's objective,
and a test pins the sign.)
Reinforcement learning then updates only the policy p(z|c): ``policy`` gives the distribution, ``log_prob`` the
log-probability of a sampled action summed over its variables.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Distribution, Normal, kl_divergence

from ..config import ConfigError, ModelConfig
from ..modules.decoders import build_decoder, sequence_nll
from ..modules.latents import CategoricalPosterior, build_latent
from ..objectives import gumbel_temperature, kl_term
from ..registry import MODELS
from .negotiation import NegotiationModel, NegotiationOutput, Pieces


def categorical_kl(q: CategoricalPosterior, p: CategoricalPosterior) -> torch.Tensor:
    """KL(q || p) per categorical variable: (B, V)."""
    return torch.stack([(lq.exp() * (lq - lp)).sum(-1) for lq, lp in zip(q.log_probs, p.log_probs)], dim=-1)


@MODELS.register("larl")
class LatentActionModel(NegotiationModel):
    """A negotiation agent whose turns are latent actions z ~ p(z|c), spoken by a decoder that reads z alone."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        if config.latent.type not in ("gumbel", "gaussian"):
            raise ConfigError(f"model_type larl needs model.latent.type gumbel or gaussian, not {config.latent.type!r}")
        self.latent = build_latent(self.condition_size, config.latent)  # the policy p(z|c)
        if config.negotiation.elbo == "full":
            self.recognition = build_latent(self.utterance_encoder.output_size + self.condition_size, config.latent)
        self.decoder = build_decoder(tokenizer.vocab_size, self.latent.code_size, config.decoder,
                                     pad_id=tokenizer.pad_id, unk_id=tokenizer.unk_id, tokenizer=tokenizer)

    def policy(self, c: torch.Tensor) -> Distribution:
        """p(z | c): a ``CategoricalPosterior`` (gumbel) or a diagonal ``Normal`` (gaussian)."""
        return self.latent.posterior(c)

    def log_prob(self, policy: Distribution, z: torch.Tensor) -> torch.Tensor:
        """log p(z | c) of actions z (B, D), summed over the latent variables: (B,)."""
        return self.latent.log_q(policy, z)

    def kl(self, q: Distribution, p: Optional[Distribution]) -> torch.Tensor:
        """KL per latent variable (B, V): against the fixed prior (p None, lite) or the policy p (full)."""
        if p is None:
            return self.latent.kl_per_dim(q)
        if isinstance(q, Normal):
            return kl_divergence(q, p)
        return categorical_kl(q, p)

    def forward(self, batch: dict, step: int = 0) -> NegotiationOutput:
        pieces = self.pieces(batch)
        respond = self.response_rows(batch).to(pieces.c.device)
        p = self.policy(pieces.c)
        if self.config.negotiation.elbo == "full":
            q = self.recognition.posterior(torch.cat([pieces.response, pieces.c], dim=-1))
            kl_per_dim = self.kl(q, p)
        else:
            q = p
            kl_per_dim = self.kl(q, None)
        z = self.latent.rsample(q, temperature=gumbel_temperature(self.config.latent, step))
        rec = sequence_nll(self.decoder, batch["response_ids"], batch["response_lengths"], z) * respond
        modelled = respond > 0
        term = kl_term(kl_per_dim[modelled] if bool(modelled.any()) else kl_per_dim[:0].sum(0, keepdim=True),
                       self.config.objective, step)
        kl_per_dim = kl_per_dim * respond.unsqueeze(-1)
        loss, selection = self.combine(batch, rec, term.penalty, pieces)
        return NegotiationOutput(
            loss=loss, rec=rec, kl=kl_per_dim.sum(-1), kl_per_dim=kl_per_dim, kl_weight=term.kl_weight,
            capacity=term.capacity, num_tokens=self.response_tokens(batch, respond), z=z,
            z_mean=self.latent.mean(q).detach(), **selection,
        )

    def act(self, c: torch.Tensor, greedy: bool = False, generator: Optional[torch.Generator] = None
            ) -> tuple[torch.Tensor, Distribution]:
        """Latent actions for conditions c: exact samples from p(z|c) (one-hot codes for gumbel), or the mode."""
        p = self.policy(c)
        if greedy:
            return self.latent.mode(p), p
        if isinstance(p, Normal):
            noise = torch.randn(p.loc.shape, generator=generator).to(c.device)
            return (p.loc + p.scale * noise).detach(), p
        picks = [torch.multinomial(lp.exp(), 1, generator=generator).squeeze(-1) for lp in p.log_probs]
        return self.latent.codes_from_indices(torch.stack(picks, dim=-1)).to(c.dtype), p

    def speak_from(self, pieces: Pieces, strategy: str, temperature: float, generator) -> list[str]:
        """z ~ p(z|c) (its mode when ``strategy`` is greedy), then the words greedily from z, as LaRL decodes."""
        z, _ = self.act(pieces.c, greedy=strategy == "greedy", generator=generator)
        return self.tokenizer.batch_decode(self.generate(z, strategy="greedy"))
