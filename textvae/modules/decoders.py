"""Autoregressive decoders p(x|z). z enters by a named mode; ``step`` carries incremental state for generation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import torch.nn.functional as F

from ..config import DecoderConfig
from ..registry import DECODERS
from .encoders import RNN_CLASSES

Z_MODES = ("init", "concat", "init+concat")


def word_dropout(input_ids: torch.Tensor, rate: float, unk_id: int, pad_id: int) -> torch.Tensor:
    """Replace a ``rate`` fraction of tokens with <unk> (Bowman et al. 2016); never the first token nor padding."""
    if rate <= 0.0:
        return input_ids
    drop = torch.rand(input_ids.shape, device=input_ids.device) < rate
    drop[:, 0] = False
    drop &= input_ids != pad_id
    return input_ids.masked_fill(drop, unk_id)


@DECODERS.register("lstm", "gru")
class RNNDecoder(nn.Module):
    """LSTM or GRU language model conditioned on z: ``init`` sets the initial state from z, ``concat`` feeds z with
    every input embedding, ``init+concat`` does both (He et al. 2019)."""

    def __init__(self, vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3) -> None:
        super().__init__()
        if config.z_mode not in Z_MODES:
            raise ValueError(f"model.decoder.z_mode must be one of {', '.join(Z_MODES)}, got {config.z_mode!r}")
        self.config = config
        self.pad_id, self.unk_id = pad_id, unk_id
        self.is_lstm = config.type == "lstm"
        # with no latent (z_size 0) the decoder is a plain language model starting from a zero state
        self.use_init = "init" in config.z_mode and z_size > 0
        self.use_concat = "concat" in config.z_mode and z_size > 0
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.rnn = RNN_CLASSES[config.type](
            config.embedding_size + (z_size if self.use_concat else 0),
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
        )
        if self.use_init:
            self.z_to_state = nn.Linear(z_size, config.num_layers * config.hidden_size)
        self.output_dropout = nn.Dropout(config.output_dropout)
        self.output = nn.Linear(config.hidden_size, vocab_size)
        if config.tie_embeddings:
            if config.embedding_size != config.hidden_size:
                raise ValueError(
                    "model.decoder.tie_embeddings needs embedding_size == hidden_size, "
                    f"got {config.embedding_size} and {config.hidden_size}"
                )
            self.output.weight = self.embedding.weight

    def initial_state(self, z: torch.Tensor) -> Any:
        """The RNN state before the first token: from z in ``init`` mode, zeros otherwise."""
        if not self.use_init:
            return None
        layers, hidden = self.config.num_layers, self.config.hidden_size
        c0 = self.z_to_state(z).view(z.size(0), layers, hidden).transpose(0, 1).contiguous()
        h0 = torch.tanh(c0)
        return (h0, c0) if self.is_lstm else h0

    def _inputs(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding_dropout(self.embedding(input_ids))
        if self.use_concat:
            embedded = torch.cat([embedded, z.unsqueeze(1).expand(-1, input_ids.size(1), -1)], dim=-1)
        return embedded

    def forward(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced hidden states: (N, T) inputs and (N, D) z -> (N, T, hidden). Padding needs no packing:
        the model is causal, so positions after a sentence's end never affect the ones before it."""
        if self.training:
            input_ids = word_dropout(input_ids, self.config.word_dropout, self.unk_id, self.pad_id)
        outputs, _ = self.rnn(self._inputs(input_ids, z), self.initial_state(z))
        return self.output_dropout(outputs)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states -> vocabulary logits."""
        return self.output(hidden)

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One generation step: (N,) previous tokens -> (N, V) logits and the new state."""
        outputs, state = self.rnn(self._inputs(tokens.unsqueeze(1), z), state)
        return self.project(outputs[:, 0]), state

    @staticmethod
    def select_state(state: Any, index: torch.Tensor) -> Any:
        """Reorder or subset the incremental state along the batch (for beam search and finished rows)."""
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)


def sequence_nll(decoder: nn.Module, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per sentence (N,) for (N, T) ids ``<bos> w.. <eos> <pad>..`` and (N, D) z, summed over the
    predicted tokens (words and <eos>). Only real positions go through the output projection and softmax: padding
    costs nothing in the largest matrix product."""
    inputs, targets = input_ids[:, :-1], input_ids[:, 1:]
    hidden = decoder(inputs, z)  # (N, T-1, H)
    positions = torch.arange(targets.size(1), device=targets.device)
    mask = positions.unsqueeze(0) < (lengths - 1).unsqueeze(1)  # (N, T-1)
    logits = decoder.project(hidden[mask])  # (tokens, V)
    token_nll = F.cross_entropy(logits.float(), targets[mask], reduction="none")
    rows = mask.nonzero(as_tuple=True)[0]
    return torch.zeros(input_ids.size(0), device=z.device, dtype=token_nll.dtype).index_add_(0, rows, token_nll)


def build_decoder(vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3) -> nn.Module:
    """The decoder named by ``config.type``."""
    return DECODERS.get(config.type)(vocab_size, z_size, config, pad_id=pad_id, unk_id=unk_id)
