"""Dialogue contexts: every turn through the utterance encoder, then an RNN over the turns (Serban et al. 2016;
Zhao et al. 2017), with a floor feature saying which turns the responder spoke."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def encode_turns(encoder: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, N, T) token ids and (B, N) lengths -> (B, N, U) utterance vectors; padding turns (length 0) are never
    encoded and stay zero, so they cannot leak into anything."""
    batch, turns, width = ids.shape
    real = lengths > 0  # (B, N)
    vectors = encoder(ids[real], lengths[real])  # (M, U) for the M real turns
    out = vectors.new_zeros(batch, turns, vectors.size(-1))
    out[real] = vectors
    return out


class ContextEncoder(nn.Module):
    """A GRU over [utterance vector; floor one-hot] per turn; the context is its state after the last real turn."""

    def __init__(self, utterance_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(utterance_size + 2, hidden_size, batch_first=True)
        self.output_size = hidden_size

    def states(self, utterances: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        """(B, N, U) utterance vectors and (B, N) floor marks -> (B, N, H) states; state n has seen turns 0..n
        only (the RNN is causal)."""
        inputs = torch.cat([utterances, F.one_hot(floor, 2).to(utterances.dtype)], dim=-1)
        outputs, _ = self.rnn(inputs)
        return outputs

    def forward(self, utterances: torch.Tensor, floor: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
        """(B, N, U), (B, N) and (B,) real turns -> (B, H), read after each context's last real turn, which the
        padding turns after it cannot reach."""
        outputs = self.states(utterances, floor)
        rows = torch.arange(outputs.size(0), device=outputs.device)
        return outputs[rows, (turns - 1).clamp(min=0).to(outputs.device)]


class GoalEncoder(nn.Module):
    """A negotiation goal, (B, 2k) ints ``c0 v0 c1 v1 ...`` (count and value per item type, each 0..max_number), ->
    (B, size): count and value embeddings of every item, concatenated, through a tanh layer (Lewis et al. 2017)."""

    def __init__(self, num_items: int, embedding_size: int, size: int, max_number: int = 10) -> None:
        super().__init__()
        self.max_number = max_number
        self.count = nn.Embedding(max_number + 1, embedding_size)
        self.value = nn.Embedding(max_number + 1, embedding_size)
        self.proj = nn.Linear(2 * num_items * embedding_size, size)
        self.output_size = size

    def forward(self, goal: torch.Tensor) -> torch.Tensor:
        goal = goal.clamp(0, self.max_number)
        pieces = torch.cat([self.count(goal[:, 0::2]), self.value(goal[:, 1::2])], dim=-1)  # (B, k, 2E)
        return torch.tanh(self.proj(pieces.flatten(1)))
