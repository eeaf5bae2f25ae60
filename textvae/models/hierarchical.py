"""VHRED, the latent variable hierarchical encoder-decoder (Serban et al. 2017): a latent per turn.

    u_n = utterance encoder(x_n);  h_n = context GRU over u_0..u_n (with floor marks);  h_{-1} = 0
    p(z_n | x_<n)      = prior network(h_{n-1})
    q(z_n | x_<=n)     = recognition network([u_n; h_{n-1}])
    p(x_n | z_n, x_<n) = decoder([h_{n-1}; z_n])
    ELBO = sum_n E_q[log p(x_n | z_n, x_<n)] - KL(q(z_n | x_<=n) || p(z_n | x_<n))

A batch row is a window of turns: the context turns, then the response (``data.dialogue``; ``windows: disjoint``
tiles each dialogue; its last window ends at the final turn and may start inside the previous one, and the
``context_only`` turns an earlier window models are read as context but left out of rec and KL, so every turn is
modelled exactly once). ``rec`` and ``kl`` are summed over the window's modelled turns. The
pieces are the CVAE's (utterance and context encoders, recognition and prior networks, decoder, optional
bag-of-words head), so responding to a context, its importance weights and ``save_pretrained`` are the CVAE's:
the response is the turn after the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch.distributions import kl_divergence

from ..config import ConfigError, ModelConfig
from ..modules.context import encode_turns
from ..modules.decoders import sequence_nll
from ..objectives import kl_term
from ..registry import MODELS
from .cvae import CVAE, CVAEOutput


@dataclass
class TurnTerms:
    """Per-turn pieces of a batch of windows, one row per modelled turn (M in all): ``rec`` (M,), ``kl_per_dim`` (M, D),
    ``bow`` (M,) or None, ``z`` and ``z_mean`` (M, D); ``row`` (M,) the window of each turn, ``last`` (M,) whether
    it is its window's response."""

    rec: torch.Tensor
    kl_per_dim: torch.Tensor
    bow: Optional[torch.Tensor]
    z: torch.Tensor
    z_mean: torch.Tensor
    row: torch.Tensor
    last: torch.Tensor
    num_tokens: torch.Tensor


def append_response(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All turns of each row: (B, N+1, T) ids, (B, N+1) lengths and floor marks, with the response placed right
    after the row's last context turn (its floor mark 1, or the batch's ``response_floor``), and (B,) turn counts."""
    ctx, ctx_len, floor, turns = batch["context_ids"], batch["context_lengths"], batch["context_floor"], batch["context_turns"]
    resp, resp_len = batch["response_ids"], batch["response_lengths"]
    b, n, t = ctx.shape
    width = max(t, resp.size(1))
    ids = ctx.new_zeros(b, n + 1, width)  # 0 is <pad> for every tokenizer here
    ids[:, :n, :t] = ctx
    rows = torch.arange(b, device=ctx.device)
    ids[rows, turns, : resp.size(1)] = resp
    lengths = torch.cat([ctx_len, ctx_len.new_zeros(b, 1)], dim=1)
    lengths[rows, turns] = resp_len
    floors = torch.cat([floor, floor.new_zeros(b, 1)], dim=1)
    # the response is the responder's own turn, unless the batch says otherwise (negotiation: THEM's closing turn)
    floors[rows, turns] = batch["response_floor"].to(floor.dtype) if "response_floor" in batch else 1
    return ids, lengths, floors, turns + 1


@MODELS.register("vhred")
class VHRED(CVAE):
    """VHRED over windows of turns; ``forward`` sums the ELBO over every turn, ``respond`` samples the next one."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        if config.dialogue.condition != "context" or config.dialogue.use_act:
            raise ConfigError("model_type vhred conditions on the context: set model.dialogue.condition=context and use_act=false")
        super().__init__(config, tokenizer)

    def turn_terms(self, batch: dict) -> TurnTerms:
        """Reconstruction and KL of every modelled turn of every window, each conditioned on the turns before it."""
        ids, lengths, floors, turns = append_response(batch)
        utterances = encode_turns(self.utterance_encoder, ids, lengths)  # (B, N+1, U)
        states = self.context_encoder.states(utterances, floors)  # (B, N+1, C): state n has read turns 0..n
        previous = torch.cat([states.new_zeros(states[:, :1].shape), states[:, :-1]], dim=1)  # h_{n-1}
        # a real turn is modelled unless an earlier window of its dialogue models it (``context_only`` leading
        # turns of a disjoint dialogue's last window): those turns stay in h as context only
        skip = batch.get("context_only", turns.new_zeros(turns.shape)).to(ids.device)
        position = torch.arange(ids.size(1), device=ids.device)
        real = (lengths > 0) & (position[None, :] >= skip[:, None])  # (B, N+1)
        row = real.nonzero(as_tuple=True)[0]  # the window of each modelled turn
        h, u = previous[real], utterances[real]  # (M, C), (M, U)
        q, p = self.recognition(u, h), self.prior(h)
        z = q.rsample()
        rec = sequence_nll(self.decoder, ids[real], lengths[real], self.decoder_input(h, z)[0])
        bow = self.bow_nll(h, z, ids[real], lengths[real]) if self.config.dialogue.bow_weight > 0 else None
        last = torch.zeros_like(real)
        last[torch.arange(ids.size(0), device=ids.device), turns - 1] = True
        return TurnTerms(rec, kl_divergence(q, p), bow, z, q.loc, row, last[real], (lengths[real] - 1).sum())

    def forward(self, batch: dict, step: int = 0) -> CVAEOutput:
        """The ELBO of each window, summed over its turns; per-turn KLs share the objective's schedule."""
        d, objective = self.config.dialogue, self.config.objective
        t = self.turn_terms(batch)
        b = batch["response_ids"].size(0)
        rec = t.rec.new_zeros(b).index_add_(0, t.row, t.rec)
        kl_per_dim = t.kl_per_dim.new_zeros(b, t.kl_per_dim.size(1)).index_add_(0, t.row, t.kl_per_dim)
        term = kl_term(kl_per_dim, objective, step)
        loss = rec.mean() + term.penalty
        bow = None
        if t.bow is not None:
            bow = t.bow.new_zeros(b).index_add_(0, t.row, t.bow)
            loss = loss + d.bow_weight * bow.mean()
        return CVAEOutput(
            loss=loss,
            rec=rec,
            kl=kl_per_dim.sum(-1),
            kl_per_dim=kl_per_dim,
            kl_weight=term.kl_weight,
            capacity=term.capacity,
            num_tokens=t.num_tokens,
            z=t.z[t.last],  # the response's z, (B, D)
            z_mean=t.z_mean[t.last].detach(),
            bow=bow,
        )
