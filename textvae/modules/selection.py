"""Selection modules of negotiation agents: after the dialogue's closing turn, how many of each item type the agent
takes (one classifier per item type over 0..max_count).

- ``head``: an MLP over [the context GRU's state after the closing turn; goal]. It sees the dialogue only through
  that one state.
- ``attention``: after Lewis et al. (2017)'s selection module. A bidirectional GRU reads the words of each turn,
  each word's input being [word embedding; the context GRU's state after its turn; own/partner turn]. Attention
  pools its outputs over every word of the dialogue, and a tanh layer over [pooled; goal] feeds the per-item
  classifiers. The split is usually stated in a few words ("i'll take the hats and a ball"), which this module can
  point at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..registry import SELECTIONS


@SELECTIONS.register("head")
class SelectionHead(nn.Sequential):
    """An MLP over [the context state after the closing turn; goal] (a ``Sequential``, so that its weights keep the
    names of the models saved before the attention module existed)."""

    def __init__(self, state_size: int, goal_size: int, hidden_size: int, outputs: int, **_) -> None:
        super().__init__(nn.Linear(state_size + goal_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, outputs))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, floors: torch.Tensor, turns: torch.Tensor,
                states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, outputs) logits from the state after each row's last turn (``turns`` counts the turns)."""
        rows = torch.arange(states.size(0), device=states.device)
        return super().forward(torch.cat([states[rows, turns - 1], goal], dim=-1))


@SELECTIONS.register("attention")
class AttentionSelection(nn.Module):
    """Lewis et al.'s selection module, read turn by turn: a bidirectional GRU over each turn's words, attention
    over every word of the dialogue, then a tanh layer over [pooled; goal] and the classifiers. Lewis et al.'s GRU
    runs over the whole dialogue at once; here what a word knows of the turns around it comes from its turn's
    context state, so the GRU takes as many steps as the longest turn, not the longest dialogue (on CPU, its cost
    is in the steps)."""

    def __init__(self, state_size: int, goal_size: int, hidden_size: int, outputs: int, vocab_size: int,
                 embedding_size: int, attention_size: int, pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.rnn = nn.GRU(embedding_size + state_size + 2, attention_size, batch_first=True, bidirectional=True)
        self.score = nn.Sequential(nn.Linear(2 * attention_size, attention_size), nn.Tanh(),
                                   nn.Linear(attention_size, 1))
        self.net = nn.Sequential(nn.Linear(2 * attention_size + goal_size, hidden_size), nn.Tanh(),
                                 nn.Linear(hidden_size, outputs))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, floors: torch.Tensor, turns: torch.Tensor,
                states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, outputs) logits from the words of each row's first ``turns`` turns."""
        counted = (torch.arange(ids.size(1), device=ids.device).unsqueeze(0) < turns.unsqueeze(1)) & (lengths > 0)
        if bool(counted.any()):
            pooled = self.pool(ids, lengths, floors, counted, states)
        else:  # no row has a word yet: nothing to attend to, the goal alone decides
            pooled = goal.new_zeros(ids.size(0), 2 * self.rnn.hidden_size)
        return self.net(torch.cat([pooled, goal], dim=-1))

    def pool(self, ids: torch.Tensor, lengths: torch.Tensor, floors: torch.Tensor, counted: torch.Tensor,
             states: torch.Tensor) -> torch.Tensor:
        """(B, 2A): the attention-weighted GRU outputs over the words of the ``counted`` (B, N) turns."""
        b, n, t = ids.shape
        words = ids[counted]  # (M, T): every counted turn of every row
        inputs = torch.cat([self.embedding(words),
                            states[counted].unsqueeze(1).expand(-1, t, -1),
                            F.one_hot(floors[counted], 2).to(states.dtype).unsqueeze(1).expand(-1, t, -1)], dim=-1)
        packed = pack_padded_sequence(inputs, lengths[counted].cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=t)  # (M, T, 2A)
        every = outputs.new_zeros(b, n, t, outputs.size(-1))
        every[counted] = outputs
        inside = counted.unsqueeze(-1) & (torch.arange(t, device=ids.device).view(1, 1, t) < lengths.unsqueeze(-1))
        scores = self.score(every).squeeze(-1).float().masked_fill(~inside, -torch.inf).flatten(1)  # (B, N*T)
        weights = scores.softmax(-1).nan_to_num(0.0).to(every.dtype)  # a row with no word pools to 0
        return (weights.unsqueeze(-1) * every.flatten(1, 2)).sum(1)


def build_selection(kind: str, **sizes) -> nn.Module:
    """The selection module ``kind`` (``model.negotiation.selection``) with the given sizes."""
    return SELECTIONS.get(kind)(**sizes)
