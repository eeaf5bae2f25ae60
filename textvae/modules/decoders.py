"""Autoregressive decoders p(x|z): RNNs, a transformer written here, and pretrained Hugging Face causal LMs (GPT-2
style). z enters by a named mode (``z_mode``), each decoder type taking its own; ``step`` carries incremental state.

Every decoder has the same interface: ``forward(input_ids, z)`` -> hidden states (N, T, H), with word dropout in
training; ``project(hidden)`` -> logits; ``initial_state(z)``; ``step(tokens, z, state)`` -> (logits, state), one
new position per call; ``select_state(state, index)`` reorders or subsets the state along the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

import torch.nn.functional as F

from ..config import ConfigError, DecoderConfig
from ..registry import DECODERS
from .encoders import RNN_CLASSES
from .fused import Dropout, linear_cross_entropy
from .sample_rnn import rnn_over_samples, rnn_step
from .transformer import KV, Block, build_positions, init_weights

Z_MODES = ("init", "concat", "init+concat")  # RNN decoders
TRANSFORMER_Z_MODES = (
    "memory", "prefix", "embedding", "memory+prefix", "memory+embedding", "prefix+embedding", "memory+prefix+embedding"
)
PRETRAINED_Z_MODES = ("memory", "embedding", "memory+embedding")


def check_z_mode(config: DecoderConfig, valid: tuple[str, ...]) -> set[str]:
    """The parts of ``config.z_mode`` ("memory+embedding" -> {"memory", "embedding"}) if this decoder takes it."""
    if config.z_mode not in valid:
        raise ConfigError(f"model.decoder.z_mode {config.z_mode!r} does not apply to the {config.type} decoder; "
                          f"use one of {', '.join(valid)}")
    return set(config.z_mode.split("+"))


def word_dropout(input_ids: torch.Tensor, rate: float, unk_id: int, pad_id: int) -> torch.Tensor:
    """Replace a ``rate`` fraction of tokens with <unk> (Bowman et al. 2016); never the first token nor padding."""
    if rate <= 0.0:
        return input_ids
    drop = torch.rand(input_ids.shape, device=input_ids.device) < rate
    drop[:, 0] = False
    drop &= input_ids != pad_id
    return input_ids.masked_fill(drop, unk_id)


class LinearOutput:
    """``project`` and ``token_nll`` of a decoder whose ``output`` is an ``nn.Linear`` from hidden states to the
    vocabulary (the RNN and transformer decoders)."""

    output: nn.Linear

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states -> vocabulary logits."""
        return self.output(hidden)

    def token_nll(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target | hidden) per token: (T, H), (T,) -> (T,), fused (``modules.fused.linear_cross_entropy``)."""
        return linear_cross_entropy(hidden, self.output.weight, self.output.bias, targets)


@DECODERS.register("lstm", "gru")
class RNNDecoder(LinearOutput, nn.Module):
    """LSTM or GRU language model conditioned on z: ``init`` sets the initial state from z, ``concat`` feeds z with
    every input embedding, ``init+concat`` does both (He et al. 2019)."""

    def __init__(self, vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3) -> None:
        super().__init__()
        modes = check_z_mode(config, Z_MODES)
        self.config = config
        self.pad_id, self.unk_id = pad_id, unk_id
        self.is_lstm = config.type == "lstm"
        # with no latent (z_size 0) the decoder is a plain language model starting from a zero state
        self.use_init = "init" in modes and z_size > 0
        self.use_concat = "concat" in modes and z_size > 0
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_id)
        self.embedding_dropout = Dropout(config.embedding_dropout)
        self.rnn = RNN_CLASSES[config.type](
            config.embedding_size + (z_size if self.use_concat else 0),
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
        )
        if self.use_init:
            self.z_to_state = nn.Linear(z_size, config.num_layers * config.hidden_size)
        self.output_dropout = Dropout(config.output_dropout)
        self.output = nn.Linear(config.hidden_size, vocab_size, bias=config.output_bias)
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

    def forward_samples(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``forward`` in eval mode for S latent samples of each sentence: (B, T) inputs and (S, B, D) z ->
        (S * B, T, hidden), sample-major, sharing the embeddings' input projection across samples
        (``sample_rnn``)."""
        if self.training:
            raise RuntimeError("forward_samples is for evaluation: call model.eval() first")
        samples, batch = z.shape[:2]
        flat = z.reshape(samples * batch, z.size(-1))
        return rnn_over_samples(self.rnn, self.embedding(input_ids), z if self.use_concat else None,
                                self.initial_state(flat), samples=samples)

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One generation step: (N,) previous tokens -> (N, V) logits and the new state (``rnn_step``: the fused
        cells, not ``nn.LSTM``/``nn.GRU`` over a sequence of one)."""
        outputs, state = rnn_step(self.rnn, self._inputs(tokens.unsqueeze(1), z)[:, 0], state)
        return self.project(outputs), state

    @staticmethod
    def select_state(state: Any, index: torch.Tensor) -> Any:
        """Reorder or subset the incremental state along the batch (for beam search and finished rows)."""
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)


@dataclass
class TransformerState:
    """Incremental state of a ``TransformerDecoder``: each block's self-attention keys/values so far (prefix
    included), each block's memory keys/values (computed once from z), and the position of the next token."""

    self_kv: list[KV]
    memory_kv: list[Optional[KV]]
    position: int

    def select(self, index: torch.Tensor) -> "TransformerState":
        """The state of batch rows ``index`` (reordered or a subset)."""

        def pick(kv: Optional[KV]) -> Optional[KV]:
            return None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))

        return TransformerState([pick(kv) for kv in self.self_kv], [pick(kv) for kv in self.memory_kv], self.position)


@DECODERS.register("transformer")
class TransformerDecoder(LinearOutput, nn.Module):
    """Causal pre-norm transformer language model conditioned on z. Modes (``z_mode``, combined with '+'):
    ``memory``: z becomes ``memory_slots`` vectors that a cross-attention layer in every block reads (texar's
    transformer VAE uses one); ``prefix``: z becomes ``prefix_slots`` embeddings placed before <bos>;
    ``embedding``: a projection of z is added to every input embedding (as Optimus does).

    ``step`` keeps each block's keys and values, so a new token costs one position, not the whole prefix.
    """

    def __init__(self, vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3) -> None:
        super().__init__()
        modes = check_z_mode(config, TRANSFORMER_Z_MODES)
        if z_size == 0:  # no latent: z enters nowhere and the decoder is a plain language model
            modes = set()
        self.config = config
        self.pad_id, self.unk_id = pad_id, unk_id
        size = self.size = config.hidden_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_id)
        self.embedding_projection = (
            nn.Linear(config.embedding_size, size) if config.embedding_size != size else nn.Identity()
        )
        self.positions = build_positions(config.positions, config.max_positions, size)
        self.embedding_dropout = Dropout(config.embedding_dropout)
        for mode in ("memory", "prefix"):
            if mode in modes and getattr(config, f"{mode}_slots") < 1:
                raise ConfigError(f"model.decoder.{mode}_slots must be at least 1 in z_mode {config.z_mode!r}")
        self.use_memory = "memory" in modes
        self.memory_slots = config.memory_slots if self.use_memory else 0
        self.prefix_slots = config.prefix_slots if "prefix" in modes else 0
        self.z_to_memory = nn.Linear(z_size, self.memory_slots * size) if self.use_memory else None
        # memory normalised as an encoder's output is, so that cross-attention reads z at full scale from the start
        self.memory_norm = nn.LayerNorm(size) if self.use_memory else None
        self.z_to_prefix = nn.Linear(z_size, self.prefix_slots * size) if self.prefix_slots else None
        self.z_to_embedding = nn.Linear(z_size, size) if "embedding" in modes else None
        self.blocks = nn.ModuleList(
            Block(size, config.num_heads, config.feedforward_size, config.dropout, cross=self.use_memory)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(size)
        self.output_dropout = Dropout(config.output_dropout)
        self.output = nn.Linear(size, vocab_size, bias=config.output_bias)
        init_weights(self)
        if config.tie_embeddings:
            if config.embedding_size != size:
                raise ConfigError(
                    "model.decoder.tie_embeddings needs embedding_size == hidden_size, "
                    f"got {config.embedding_size} and {size}"
                )
            self.output.weight = self.embedding.weight

    def _embed(self, input_ids: torch.Tensor, z: torch.Tensor, start: int) -> torch.Tensor:
        """Token embeddings at positions ``start``.. with positions and (``embedding`` mode) z added: (N, T, H)."""
        end = start + input_ids.size(1)
        if end > self.config.max_positions:
            raise ValueError(f"position {end - 1} is beyond model.decoder.max_positions ({self.config.max_positions})")
        x = self.embedding_projection(self.embedding(input_ids))
        x = x + self.positions(torch.arange(start, end, device=input_ids.device))
        if self.z_to_embedding is not None:
            x = x + self.z_to_embedding(z).unsqueeze(1)
        return self.embedding_dropout(x)

    def _prefix(self, z: torch.Tensor) -> torch.Tensor:
        """(N, prefix_slots, H) embeddings of z that precede <bos> (no position vectors: each slot has its own
        projection)."""
        return self.embedding_dropout(self.z_to_prefix(z).view(z.size(0), self.prefix_slots, self.size))

    def _memory(self, z: torch.Tensor) -> list[Optional[KV]]:
        """Each block's cross-attention keys/values of the memory slots made from z (None without memory)."""
        if not self.use_memory:
            return [None] * len(self.blocks)
        memory = self.memory_norm(self.z_to_memory(z).view(z.size(0), self.memory_slots, self.size))
        return [block.cross.keys_values(memory) for block in self.blocks]

    def forward(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced hidden states: (N, T) inputs and (N, D) z -> (N, T, hidden). Causal, so padding after a
        sentence's end never reaches the positions before it."""
        if self.training:
            input_ids = word_dropout(input_ids, self.config.word_dropout, self.unk_id, self.pad_id)
        x = self._embed(input_ids, z, 0)
        if self.prefix_slots:
            x = torch.cat([self._prefix(z), x], dim=1)
        for block, memory in zip(self.blocks, self._memory(z)):
            x, _ = block(x, causal=True, memory=memory)
        return self.output_dropout(self.norm(x[:, self.prefix_slots :]))

    def initial_state(self, z: torch.Tensor) -> TransformerState:
        """Memory keys/values from z, and the prefix run through the blocks into the self-attention cache."""
        memory = self._memory(z)
        heads, size = self.config.num_heads, self.size
        empty = z.new_zeros(z.size(0), heads, 0, size // heads)
        cache = [(empty, empty)] * len(self.blocks)
        if self.prefix_slots:
            x = self._prefix(z)
            for i, block in enumerate(self.blocks):
                x, cache[i] = block(x, causal=True, memory=memory[i])
        return TransformerState(cache, memory, 0)

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state: TransformerState) -> tuple[torch.Tensor, TransformerState]:
        """One generation step: (N,) previous tokens -> (N, V) logits and the state one position longer."""
        x = self._embed(tokens.unsqueeze(1), z, state.position)
        cache = []
        for block, kv, memory in zip(self.blocks, state.self_kv, state.memory_kv):
            x, kv = block(x, causal=True, cache=kv, memory=memory)
            cache.append(kv)
        logits = self.project(self.norm(x[:, 0]))
        return logits, TransformerState(cache, state.memory_kv, state.position + 1)

    @staticmethod
    def select_state(state: TransformerState, index: torch.Tensor) -> TransformerState:
        """Reorder or subset the cached keys/values along the batch (for beam search and finished rows)."""
        return state.select(index)


@dataclass
class PretrainedState:
    """Incremental state of a ``PretrainedDecoder``: the Hugging Face key/value cache (z's memory first) and the
    position of the next token."""

    cache: Any
    position: int


@DECODERS.register("pretrained")
class PretrainedDecoder(nn.Module):
    """A Hugging Face causal language model (GPT-2 style) from the local folder ``path``, conditioned on z as
    Optimus does (Li et al. 2020). ``memory``: z becomes ``memory_slots`` extra keys and values at every layer,
    placed in the cache before the sentence (``past_key_values``), that every position attends to; ``embedding``:
    a projection of z is added to every input embedding. The model's tokenizer must be the checkpoint's own
    (``data.tokenizer: {type: pretrained, path: <the decoder's path>}``): the decoder predicts its vocabulary."""

    uses_tokenizer = True

    def __init__(
        self, vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3, tokenizer: Any = None
    ) -> None:
        from transformers import AutoModelForCausalLM

        from .pretrained import load_backbone, same_vocabulary

        super().__init__()
        modes = check_z_mode(config, PRETRAINED_Z_MODES)
        if not config.output_bias:
            raise ConfigError("model.decoder.output_bias: false applies to lstm, gru and transformer decoders; a "
                              "pretrained decoder keeps its checkpoint's output layer")
        if z_size == 0:  # no latent: the checkpoint's language model as it is
            modes = set()
        self.config = config
        self.pad_id, self.unk_id, self.vocab_size = pad_id, unk_id, vocab_size
        self.lm, self.backbone_tokenizer = load_backbone("decoder", config.path, AutoModelForCausalLM)
        if tokenizer is not None and not same_vocabulary(tokenizer, self.backbone_tokenizer):
            raise ConfigError(f"model.decoder.path {config.path}: a pretrained decoder predicts its checkpoint's own "
                              "tokens; set data.tokenizer to {type: pretrained, path: <the same folder>}")
        hf = self.lm.config
        size = hf.hidden_size
        self.num_layers = hf.num_hidden_layers
        self.kv_heads = getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads
        self.head_size = getattr(hf, "head_dim", None) or size // hf.num_attention_heads
        if "memory" in modes and config.memory_slots < 1:
            raise ConfigError(f"model.decoder.memory_slots must be at least 1 in z_mode {config.z_mode!r}")
        self.memory_slots = config.memory_slots if "memory" in modes else 0
        kv_size = self.memory_slots * self.kv_heads * self.head_size
        self.z_to_memory = nn.Linear(z_size, self.num_layers * 2 * kv_size) if self.memory_slots else None
        self.z_to_embedding = nn.Linear(z_size, size) if "embedding" in modes else None

    @property
    def embedding(self) -> nn.Embedding:
        """The checkpoint's input embedding (as ``embedding`` of the other decoders)."""
        return self.lm.get_input_embeddings()

    def _memory(self, z: torch.Tensor) -> Any:
        """A fresh key/value cache holding z's memory slots at every layer (empty without ``memory``)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        if self.z_to_memory is not None:
            # (N, layers * 2 * slots * heads * d) -> per layer keys and values (N, heads, slots, d)
            kv = self.z_to_memory(z).view(z.size(0), self.num_layers, 2, self.memory_slots, self.kv_heads, self.head_size)
            kv = kv.permute(1, 2, 0, 4, 3, 5)
            for layer in range(self.num_layers):
                cache.update(kv[layer, 0], kv[layer, 1], layer)
        return cache

    def _run(self, input_ids: torch.Tensor, z: torch.Tensor, cache: Any, start: int) -> torch.Tensor:
        """Final hidden states (N, T, H) of tokens at positions ``start``.., after what ``cache`` holds."""
        x = self.embedding(input_ids)
        if self.z_to_embedding is not None:
            x = x + self.z_to_embedding(z).unsqueeze(1).to(x.dtype)
        positions = torch.arange(start, start + input_ids.size(1), device=input_ids.device).unsqueeze(0)
        body = self.lm.base_model  # the network under the language-model head (GPT2Model in GPT2LMHeadModel)
        return body(inputs_embeds=x, past_key_values=cache, position_ids=positions, use_cache=True).last_hidden_state

    def forward(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced hidden states: (N, T) inputs and (N, D) z -> (N, T, hidden)."""
        if self.training:
            input_ids = word_dropout(input_ids, self.config.word_dropout, self.unk_id, self.pad_id)
        return self._run(input_ids, z, self._memory(z), 0)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states -> logits over the tokenizer's ids (a checkpoint may pad its output layer beyond them)."""
        return self.lm.get_output_embeddings()(hidden)[..., : self.vocab_size]

    def token_nll(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target | hidden) per token: (T, H), (T,) -> (T,)."""
        return F.cross_entropy(self.project(hidden).float(), targets, reduction="none")

    def initial_state(self, z: torch.Tensor) -> PretrainedState:
        return PretrainedState(self._memory(z), 0)

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state: PretrainedState) -> tuple[torch.Tensor, PretrainedState]:
        """One generation step: (N,) previous tokens -> (N, V) logits; the cache grows by one position in place."""
        hidden = self._run(tokens.unsqueeze(1), z, state.cache, state.position)
        return self.project(hidden[:, 0]), PretrainedState(state.cache, state.position + 1)

    @staticmethod
    def select_state(state: PretrainedState, index: torch.Tensor) -> PretrainedState:
        """Reorder or subset the cache along the batch (in place: callers drop the old state)."""
        state.cache.batch_select_indices(index)
        return state

    def save_backbone(self, folder: Path) -> None:
        """Write the checkpoint's config and tokenizer (the model folder's safetensors hold the weights)."""
        from .pretrained import save_backbone

        save_backbone(folder, "decoder", self.lm, self.backbone_tokenizer)


class RecomputingDecoder(nn.Module):
    """A decoder without incremental state: every ``step`` reruns the wrapped decoder over all tokens so far. The
    reference that cached decoding must equal, and the baseline of the generation benchmark."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner = decoder

    def forward(self, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids, z)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.inner.project(hidden)

    def token_nll(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.inner.token_nll(hidden, targets)

    def initial_state(self, z: torch.Tensor) -> Optional[torch.Tensor]:
        return None

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """State: the (N, t) tokens read so far."""
        seen = tokens.unsqueeze(1) if state is None else torch.cat([state, tokens.unsqueeze(1)], dim=1)
        return self.project(self.inner(seen, z)[:, -1]), seen

    @staticmethod
    def select_state(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)


def build_decoder(
    vocab_size: int, z_size: int, config: DecoderConfig, pad_id: int = 0, unk_id: int = 3, tokenizer: Optional[Any] = None
) -> nn.Module:
    """The decoder named by ``config.type``; decoders tied to a checkpoint's vocabulary (``uses_tokenizer``) get
    the model's tokenizer to check it."""
    cls = DECODERS.get(config.type)
    extra = {"tokenizer": tokenizer} if getattr(cls, "uses_tokenizer", False) else {}
    return cls(vocab_size, z_size, config, pad_id=pad_id, unk_id=unk_id, **extra)


def sequence_nll(decoder: nn.Module, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per sentence (N,) for (N, T) ids ``<bos> w.. <eos> <pad>..`` and (N, D) z, summed over the
    predicted tokens (words and <eos>). Only real positions go through the output projection and softmax: padding
    costs nothing in the largest matrix product. Decoders with a ``token_nll`` (all of ours) fuse projection and
    loss; for any other, the logits go through ``F.cross_entropy``."""
    return _hidden_nll(decoder, decoder(input_ids[:, :-1], z), input_ids, lengths)


def samples_nll(decoder: nn.Module, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``sequence_nll`` for S samples of z per sentence: (B, T) ids and (S, B, D) z -> (S, B). On a CPU a decoder in
    eval mode with a ``forward_samples`` (the RNNs) runs the samples without repeating what they share; a GPU keeps
    the fused recurrence of ``nn.LSTM``/``nn.GRU`` (cuDNN): the step-by-step loop was measured on a CPU only."""
    if not (z.device.type == "cpu" and not decoder.training and hasattr(decoder, "forward_samples")):
        return expanded_samples_nll(decoder, input_ids, lengths, z)
    samples, batch = z.shape[:2]
    hidden = decoder.forward_samples(input_ids[:, :-1], z)  # sample-major, as z.reshape
    return _hidden_nll(decoder, hidden, input_ids.repeat(samples, 1), lengths.repeat(samples)).view(samples, batch)


def expanded_samples_nll(decoder: nn.Module, input_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``samples_nll`` the plain way: every sentence repeated once per sample through ``decoder.forward``."""
    samples, batch = z.shape[:2]
    return sequence_nll(decoder, input_ids.repeat(samples, 1), lengths.repeat(samples),
                        z.reshape(samples * batch, z.size(-1))).view(samples, batch)


def _hidden_nll(decoder: nn.Module, hidden: torch.Tensor, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per sentence from the decoder's teacher-forced hidden states (N, T-1, H)."""
    targets = input_ids[:, 1:]
    positions = torch.arange(targets.size(1), device=targets.device)
    mask = positions.unsqueeze(0) < (lengths - 1).unsqueeze(1)  # (N, T-1)
    if hasattr(decoder, "token_nll"):
        token_nll = decoder.token_nll(hidden[mask], targets[mask])
    else:
        token_nll = F.cross_entropy(decoder.project(hidden[mask]).float(), targets[mask], reduction="none")
    rows = mask.nonzero(as_tuple=True)[0]
    return torch.zeros(input_ids.size(0), device=hidden.device, dtype=token_nll.dtype).index_add_(0, rows, token_nll)
