"""The sentence VAE (Bowman et al. 2016; He et al. 2019): encoder -> q(z|x) -> z -> autoregressive decoder."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..modules.decoders import build_decoder
from ..modules.encoders import build_encoder
from ..modules.latents import build_latent
from ..objectives import kl_term
from ..registry import MODELS
from .base import BaseVAE, VAEOutput


@MODELS.register("sentence_vae")
class TextVAE(BaseVAE):
    """Sentence VAE. ``forward(batch, step)`` returns a ``VAEOutput``; ``log_prob_given_z`` gives log p(x|z)
    for any number of latent samples, which importance-weighted evaluation builds on."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        vocab = tokenizer.vocab_size
        self.encoder = build_encoder(vocab, config.encoder, pad_id=tokenizer.pad_id)
        self.latent = build_latent(self.encoder.output_size, config.latent)
        self.decoder = build_decoder(
            vocab, self.latent.code_size, config.decoder, pad_id=tokenizer.pad_id, unk_id=tokenizer.unk_id
        )

    def posterior(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.distributions.Distribution:
        """q(z|x) for a padded batch."""
        return self.latent.posterior(self.encoder(input_ids, lengths))

    def reconstruction_nll(self, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence (N,) for (N, T) ids and (N, D) z, summed over the predicted tokens
        (words and <eos>). Only real positions go through the output projection and softmax: padding costs nothing
        in the largest matrix product."""
        inputs, targets = input_ids[:, :-1], input_ids[:, 1:]
        hidden = self.decoder(inputs, z)  # (N, T-1, H)
        positions = torch.arange(targets.size(1), device=targets.device)
        mask = positions.unsqueeze(0) < (lengths - 1).unsqueeze(1)  # (N, T-1)
        logits = self.decoder.project(hidden[mask])  # (tokens, V)
        token_nll = F.cross_entropy(logits.float(), targets[mask], reduction="none")
        rows = mask.nonzero(as_tuple=True)[0]
        return torch.zeros(input_ids.size(0), device=z.device, dtype=token_nll.dtype).index_add_(0, rows, token_nll)

    def log_prob_given_z(self, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per sentence: z (B, D) -> (B,), or z (S, B, D) -> (S, B) for S samples per sentence."""
        if z.dim() == 2:
            return -self.reconstruction_nll(input_ids, lengths, z)
        samples, batch = z.shape[:2]
        ids = input_ids.unsqueeze(0).expand(samples, -1, -1).reshape(samples * batch, -1)
        lens = lengths.unsqueeze(0).expand(samples, -1).reshape(-1)
        return -self.reconstruction_nll(ids, lens, z.reshape(samples * batch, -1)).view(samples, batch)

    def forward(self, batch: dict, step: int = 0) -> VAEOutput:
        """One training or evaluation pass over a batch from ``collate``; the KL weights follow ``step``."""
        input_ids, lengths = batch["input_ids"], batch["lengths"]
        q = self.posterior(input_ids, lengths)
        z = self.latent.rsample(q)
        rec = self.reconstruction_nll(input_ids, lengths, z)
        kl_per_dim = self.latent.kl_per_dim(q)
        term = kl_term(kl_per_dim, self.config.objective, step)
        return VAEOutput(
            loss=rec.mean() + term.penalty,
            rec=rec,
            kl=kl_per_dim.sum(-1),
            kl_per_dim=kl_per_dim,
            kl_weight=term.kl_weight,
            capacity=term.capacity,
            num_tokens=(lengths - 1).sum(),
            z=z,
        )

    @torch.no_grad()
    def evaluate(self, batch: dict, step: Optional[int] = None) -> VAEOutput:
        """A forward pass in eval mode with the final KL weights (for validation during training)."""
        was_training = self.training
        self.eval()
        output = self(batch, step=step if step is not None else 10**12)
        self.train(was_training)
        return output
