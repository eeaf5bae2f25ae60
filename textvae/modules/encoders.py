"""Sequence encoders: token ids and lengths -> one vector h per sentence. RNNs (LSTM/GRU), a transformer written
here, and pretrained Hugging Face encoders (BERT style) loaded from a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..config import ConfigError, EncoderConfig
from ..registry import ENCODERS
from .fused import Dropout
from .transformer import Block, Pooling, build_positions, init_weights

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU}


@ENCODERS.register("lstm", "gru")
class RNNEncoder(nn.Module):
    """LSTM or GRU over the embedded sentence; h is the last layer's final hidden state (both directions).

    A padded sentence encodes exactly as the same sentence alone. One direction runs over the padded batch (oneDNN's
    fused kernel, about twice as fast as packed sequences on a CPU) and reads the output at each sentence's last
    token, which padding after it cannot reach; two directions pack, as the backward pass must start at the end.
    """

    def __init__(self, vocab_size: int, config: EncoderConfig, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_id)
        self.dropout = Dropout(config.dropout)
        self.rnn = RNN_CLASSES[config.type](
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_size = config.hidden_size * (2 if config.bidirectional else 1)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and (B,) lengths -> (B, output_size)."""
        embedded = self.dropout(self.embedding(input_ids))
        if not self.config.bidirectional:
            outputs, _ = self.rnn(embedded)  # (B, T, H), causal
            rows = torch.arange(input_ids.size(0), device=input_ids.device)
            return outputs[rows, lengths.to(input_ids.device) - 1]
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, H)
        directions = 2 if self.config.bidirectional else 1
        last_layer = h_n[-directions:]  # (directions, B, H)
        return last_layer.transpose(0, 1).reshape(input_ids.size(0), self.output_size)


def real_tokens(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) bool, True at the first ``lengths`` positions of each row (the rest is padding)."""
    positions = torch.arange(input_ids.size(1), device=input_ids.device)
    return positions.unsqueeze(0) < lengths.to(input_ids.device).unsqueeze(1)


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    """Pre-norm transformer over the sentence (``num_layers`` blocks of ``hidden_size``, ``num_heads`` heads),
    learned or sinusoidal positions; padding is masked out of attention and pooling (``pooling``: mean, first,
    attention), so a padded sentence encodes exactly as the sentence alone."""

    def __init__(self, vocab_size: int, config: EncoderConfig, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        size = config.hidden_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_id)
        self.embedding_projection = (
            nn.Linear(config.embedding_size, size) if config.embedding_size != size else nn.Identity()
        )
        self.positions = build_positions(config.positions, config.max_positions, size)
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(size, config.num_heads, config.feedforward_size, config.dropout) for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(size)
        self.pool = Pooling(config.pooling, size)
        self.output_size = size
        init_weights(self)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and (B,) lengths -> (B, hidden_size)."""
        length = input_ids.size(1)
        if length > self.config.max_positions:
            raise ValueError(f"a batch of {length} tokens is longer than model.encoder.max_positions "
                             f"({self.config.max_positions})")
        keep = real_tokens(input_ids, lengths)
        positions = torch.arange(length, device=input_ids.device)
        x = self.dropout(self.embedding_projection(self.embedding(input_ids)) + self.positions(positions))
        mask = keep[:, None, None, :]  # (B, 1, 1, T): every query sees the real tokens only
        for block in self.blocks:
            x, _ = block(x, mask=mask)
        return self.pool(self.norm(x), keep)


@ENCODERS.register("pretrained")
class PretrainedEncoder(nn.Module):
    """A Hugging Face encoder (BERT style) from the local folder ``path``, its last hidden states pooled to h
    (``pooling``: mean, first = [CLS], attention).

    When the model's tokenizer is this checkpoint's (same vocabulary), the encoder reads the model's ids directly:
    <bos>/<eos> are then BERT's [CLS]/[SEP]. Otherwise (a BERT encoder beside a GPT-2 decoder, whose tokenizer the
    model uses, as in Optimus) it decodes the ids to text and re-tokenizes it with its own tokenizer.
    """

    uses_tokenizer = True

    def __init__(self, vocab_size: int, config: EncoderConfig, pad_id: int = 0, tokenizer: Any = None) -> None:
        from transformers import AutoModel

        from .pretrained import load_backbone, same_vocabulary

        super().__init__()
        self.config = config
        self.backbone, self.backbone_tokenizer = load_backbone("encoder", config.path, AutoModel)
        if getattr(self.backbone, "pooler", None) is not None:  # unused: h comes from ``pool``; unused weights break DDP
            self.backbone.pooler = None
        self.source_tokenizer = None if tokenizer is None or same_vocabulary(tokenizer, self.backbone_tokenizer) else tokenizer
        if self.source_tokenizer is None and vocab_size > self.backbone.get_input_embeddings().num_embeddings:
            raise ConfigError(f"model.encoder.path {config.path}: the tokenizer has {vocab_size} ids, more than the "
                              f"checkpoint's {self.backbone.get_input_embeddings().num_embeddings} embeddings")
        size = self.backbone.config.hidden_size
        self.pool = Pooling(config.pooling, size)
        self.output_size = size

    def _retokenize(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text of the model's ids in this checkpoint's own ids, with its specials ([CLS] .. [SEP]) and padding."""
        texts = self.source_tokenizer.batch_decode(input_ids)
        limit = getattr(self.backbone.config, "max_position_embeddings", None)
        encoded = self.backbone_tokenizer(texts, padding=True, truncation=limit is not None, max_length=limit,
                                          return_tensors="pt")
        return encoded["input_ids"].to(input_ids.device), encoded["attention_mask"].to(input_ids.device).bool()

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and (B,) lengths -> (B, hidden size of the checkpoint)."""
        if self.source_tokenizer is not None:
            input_ids, keep = self._retokenize(input_ids)
        else:
            keep = real_tokens(input_ids, lengths)
        states = self.backbone(input_ids=input_ids, attention_mask=keep.long()).last_hidden_state
        return self.pool(states, keep)

    def save_backbone(self, folder: Path) -> None:
        """Write the checkpoint's config and tokenizer (not its weights: the model folder's safetensors hold them)."""
        from .pretrained import save_backbone

        save_backbone(folder, "encoder", self.backbone, self.backbone_tokenizer)


def build_encoder(vocab_size: int, config: EncoderConfig, pad_id: int = 0, tokenizer: Optional[Any] = None) -> nn.Module:
    """The encoder named by ``config.type``; encoders that read text themselves (``uses_tokenizer``) get the
    model's tokenizer."""
    cls = ENCODERS.get(config.type)
    extra = {"tokenizer": tokenizer} if getattr(cls, "uses_tokenizer", False) else {}
    return cls(vocab_size, config, pad_id=pad_id, **extra)
