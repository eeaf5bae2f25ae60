"""Transformer pieces written from scratch: positions, multi-head attention on ``F.scaled_dot_product_attention``,
pre-norm blocks that carry a key/value cache for incremental decoding, and pooling of token states to one vector.

Shapes: ``B`` batch, ``T`` query positions, ``S`` key positions, ``H`` model width, ``h`` heads, ``d = H / h``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .fused import Dropout

KV = tuple[torch.Tensor, torch.Tensor]  # keys and values, each (B, h, S, d)


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine position vectors (Vaswani et al. 2017); nothing to learn, any position below the maximum."""

    def __init__(self, max_positions: int, size: int) -> None:
        super().__init__()
        position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
        rate = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))
        table = torch.zeros(max_positions, size)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)[:, : size // 2]
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


def build_positions(kind: str, max_positions: int, size: int) -> nn.Module:
    """``learned`` (an embedding per position, as GPT/BERT) or ``sinusoidal`` position vectors."""
    if kind == "learned":
        return nn.Embedding(max_positions, size)
    if kind == "sinusoidal":
        return SinusoidalPositions(max_positions, size)
    raise ValueError(f"positions must be learned or sinusoidal, got {kind!r}")


class Attention(nn.Module):
    """Multi-head attention. Self-attention projects queries, keys and values in one matrix product; cross-attention
    (``cross=True``) projects queries from x and keys/values from a context once (``keys_values``), so a decoder
    computes them for its memory a single time per sentence."""

    def __init__(self, size: int, num_heads: int, dropout: float = 0.0, cross: bool = False) -> None:
        super().__init__()
        if size % num_heads:
            raise ValueError(f"hidden_size {size} is not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout, self.cross = num_heads, dropout, cross
        if cross:
            self.query = nn.Linear(size, size)
            self.key_value = nn.Linear(size, 2 * size)
        else:
            self.qkv = nn.Linear(size, 3 * size)
        self.out = nn.Linear(size, size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, h, T, d)."""
        b, t, size = x.shape
        return x.view(b, t, self.num_heads, size // self.num_heads).transpose(1, 2)

    def keys_values(self, context: torch.Tensor) -> KV:
        """Keys and values of a context (B, S, H) for cross-attention."""
        k, v = self.key_value(context).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, causal: bool) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        b, _, t, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, t, -1))

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        causal: bool = False,
        cache: Optional[KV] = None,
    ) -> tuple[torch.Tensor, KV]:
        """Self-attention over x (B, T, H), after the ``cache`` of earlier positions when given. ``mask`` (bool,
        broadcast to (B, h, T, S), True = may attend) or ``causal``. Returns the output and the keys/values of all
        positions seen, the cache for the next call."""
        q, k, v = (self._heads(part) for part in self.qkv(x).chunk(3, dim=-1))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            if causal and q.size(2) > 1:  # new positions see the cache and the new positions up to themselves
                t, s = q.size(2), k.size(2)
                mask = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(s - t)
            causal = False  # one new position sees every cached one
        return self._attend(q, k, v, mask, causal), (k, v)

    def attend_to(self, x: torch.Tensor, memory: KV) -> torch.Tensor:
        """Cross-attention from x (B, T, H) to precomputed memory keys/values (``keys_values``)."""
        return self._attend(self._heads(self.query(x)), memory[0], memory[1], None, False)


class Block(nn.Module):
    """Pre-norm transformer block (GPT-2 style): self-attention, cross-attention to a memory when built with
    ``cross=True``, then a feed-forward network; each is a residual branch with dropout."""

    def __init__(self, size: int, num_heads: int, feedforward_size: int, dropout: float = 0.0, cross: bool = False) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(size)
        self.attention = Attention(size, num_heads, dropout)
        if cross:
            self.cross_norm = nn.LayerNorm(size)
            self.cross = Attention(size, num_heads, dropout, cross=True)
        else:
            self.cross = None
        self.feedforward_norm = nn.LayerNorm(size)
        self.feedforward = nn.Sequential(
            nn.Linear(size, feedforward_size), nn.GELU(), Dropout(dropout), nn.Linear(feedforward_size, size)
        )
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        causal: bool = False,
        cache: Optional[KV] = None,
        memory: Optional[KV] = None,
    ) -> tuple[torch.Tensor, KV]:
        """x (B, T, H) -> (B, T, H) and this block's self-attention keys/values (see ``Attention.forward``)."""
        h, kv = self.attention(self.attention_norm(x), mask=mask, causal=causal, cache=cache)
        x = x + self.dropout(h)
        if self.cross is not None:
            x = x + self.dropout(self.cross.attend_to(self.cross_norm(x), memory))
        x = x + self.dropout(self.feedforward(self.feedforward_norm(x)))
        return x, kv


class Pooling(nn.Module):
    """Token states (B, T, H) and a mask of real tokens (B, T) -> one vector per sentence: ``mean`` over real
    tokens, the ``first`` token's state (<bos>, or [CLS] in BERT), or ``attention`` with a learned query. Padding
    gets no weight in any of them, so a padded sentence pools as the sentence alone."""

    KINDS = ("mean", "first", "attention")

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"pooling must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind = kind
        self.score = nn.Linear(size, 1) if kind == "attention" else None

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.kind == "first":
            return states[:, 0]
        if self.kind == "mean":
            weights = keep.to(states.dtype) / keep.sum(1, keepdim=True).to(states.dtype)
        else:
            weights = torch.softmax(self.score(states).squeeze(-1).masked_fill(~keep, -torch.inf), dim=-1)
        return torch.einsum("bt,bth->bh", weights, states)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2's initialisation: normal(0, std) weights, zero biases, unit LayerNorms; padding rows stay zero."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
