"""Negotiation agents for Deal or No Deal: the supervised word-level agent of Lewis et al. (2017),
``model_type: negotiation_word``, and the pieces every negotiation agent shares (``NegotiationModel``).

    g   = goal encoder(counts, values)                       (``modules.context.GoalEncoder``)
    u_n = utterance encoder(turn n)
    h_n = context GRU over [u_n; g] with floor marks (1: the agent's own turns)
    c   = [h_{last context turn} (0 before the first turn); g]
    p(x | c)        the response decoder (negotiation_word); LaRL puts a latent action z between c and x
    p(items | dialogue, g) the selection module, after the dialogue's closing turn: per item type, how many the agent
                    takes (``modules.selection``: attention over every word of the dialogue, or an MLP over h and g)

A batch is ``data.dealornodeal``'s: one example per turn the agent (YOU) speaks, from both sides of every
dialogue (Lewis et al. train on both), plus THEM's closing ``<selection>`` turn where THEM closes, which only the
selection module reads (``respond`` 0). The selection module reads the dialogue up to and including the closing
turn, in training and in play alike, and runs only on the rows that select. ``rec`` is the response NLL per
example (0 for selection-only rows, which ``num_tokens`` leaves out, so the perplexity bound is per response
token); ``selection`` the cross-entropy of the agreed split (0 where the example is not the last or the dialogue
ended without an agreed split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig
from ..data.dealornodeal import NUM_ITEMS, THEM, YOU, Goal, NegotiationExample, collate_negotiation
from ..modules.context import ContextEncoder, GoalEncoder, encode_turns
from ..modules.decoders import build_decoder, sequence_nll
from ..modules.encoders import build_encoder
from ..modules.latents import build_latent
from ..modules.selection import build_selection
from ..registry import MODELS
from .base import BaseVAE, InputError, VAEOutput, evaluating
from .hierarchical import append_response

MAX_COUNT = 10  # the selection head's classes per item type: take 0..MAX_COUNT (those above the count are masked)


@dataclass
class NegotiationOutput(VAEOutput):
    """``VAEOutput`` plus the selection terms, per row (B,): ``selection`` the split's cross-entropy on rows that
    select with an agreed split (0 elsewhere), ``selection_rows`` which rows those are, and ``selection_right``
    which of them the head predicts exactly (every item count right)."""

    selection: Optional[torch.Tensor] = None
    selection_rows: Optional[torch.Tensor] = None
    selection_right: Optional[torch.Tensor] = None

    @property
    def selection_accuracy(self) -> Optional[float]:
        """Share of the rows with an agreed split whose split the head predicts exactly; None without such rows."""
        return self.batch_figures().get("selection_accuracy")

    def log_values(self) -> dict[str, float]:
        return {**super().log_values(), **self.batch_figures()}

    def figure_sums(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The selection cross-entropy and the exact splits, both over the rows that select with an agreed split."""
        if self.selection_rows is None:
            return {}
        rows = self.selection_rows.sum()
        return {"selection": (self.selection.detach().sum(), rows), "selection_accuracy": (self.selection_right.sum(), rows)}

    def batch_figures(self) -> dict[str, float]:
        """This batch's figures (``figure_sums`` divided), where the batch has a row to divide by."""
        return {name: float(num) / float(den) for name, (num, den) in self.figure_sums().items() if float(den) > 0}


@dataclass
class Pieces:
    """What one pass over the turns gives: ``c`` (B, C) the response's condition, ``selection_logits`` (B, 3,
    MAX_COUNT + 1) after the closing turn (masked above each count), ``goal`` (B, G), ``response`` (B, U)."""

    c: torch.Tensor
    selection_logits: torch.Tensor
    goal: torch.Tensor
    response: torch.Tensor  # (B, U) the response's utterance vector (what LaRL's full-ELBO posterior reads)


class NegotiationModel(BaseVAE):
    """Goal encoder, utterance encoder, context GRU and selection head; subclasses add the response model."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        n = config.negotiation
        self.utterance_encoder = build_encoder(tokenizer.vocab_size, config.encoder, pad_id=tokenizer.pad_id,
                                               tokenizer=tokenizer)
        self.goal_encoder = GoalEncoder(NUM_ITEMS, n.goal_embedding_size, n.goal_size, MAX_COUNT)
        size = config.dialogue.context_hidden_size
        self.context_encoder = ContextEncoder(self.utterance_encoder.output_size + n.goal_size, size)
        self.condition_size = size + n.goal_size
        self.selection_head = build_selection(
            n.selection, state_size=size, goal_size=n.goal_size, hidden_size=n.selection_hidden_size,
            outputs=NUM_ITEMS * (MAX_COUNT + 1), vocab_size=tokenizer.vocab_size,
            embedding_size=n.selection_embedding_size, attention_size=n.selection_attention_size,
            pad_id=tokenizer.pad_id,
        )

    # ------------------------------------------------------------------ pieces
    def pieces(self, batch: dict) -> Pieces:
        """One pass of the context GRU over the context turns and the response: c reads the state before the
        response, the selection head the state after it."""
        ids, lengths, floors, turns = append_response(batch)  # turns: context turns + 1
        goal = self.goal_encoder(batch["goal"])
        utterances = encode_turns(self.utterance_encoder, ids, lengths)  # (B, N+1, U)
        inputs = torch.cat([utterances, goal.unsqueeze(1).expand(-1, utterances.size(1), -1)], dim=-1)
        states = self.context_encoder.states(inputs, floors)  # (B, N+1, H), causal
        rows = torch.arange(ids.size(0), device=ids.device)
        context_turns = turns - 1
        before = states[rows, (context_turns - 1).clamp(min=0)] * (context_turns > 0).unsqueeze(-1).to(states.dtype)
        # the selection is read after the closing turn only: other rows' logits stay 0 (no loss reads them)
        selecting = batch["select"] > 0
        logits = states.new_zeros(ids.size(0), NUM_ITEMS * (MAX_COUNT + 1))
        if bool(selecting.any()):
            logits[selecting] = self.selection_head(ids[selecting], lengths[selecting], floors[selecting],
                                                    turns[selecting], states[selecting], goal[selecting]).to(logits.dtype)
        logits = logits.view(-1, NUM_ITEMS, MAX_COUNT + 1)
        counts = batch["goal"][:, 0::2]  # (B, 3)
        too_many = torch.arange(MAX_COUNT + 1, device=ids.device).view(1, 1, -1) > counts.unsqueeze(-1)
        return Pieces(torch.cat([before, goal], dim=-1), logits.masked_fill(too_many, -1e9), goal,
                      utterances[rows, context_turns])

    def selection_terms(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row (B,): the cross-entropy of the agreed split (0 where there is none), whether the row selects
        with an agreed split, and whether the head predicts that split exactly."""
        items = batch["items"]
        known = (batch["select"] > 0) & (items >= 0).all(-1)
        ce = F.cross_entropy(logits.float().flatten(0, 1), items.clamp(min=0).flatten(), reduction="none")
        ce = ce.view(-1, NUM_ITEMS).sum(-1) * known.to(ce.dtype)
        right = (logits.argmax(-1) == items).all(-1) & known
        return ce, known, right

    def response_rows(self, batch: dict) -> torch.Tensor:
        """(B,) float: 1 where the response is the agent's own turn (modelled), 0 for THEM's closing turn."""
        return batch["respond"].to(torch.float32) if "respond" in batch else torch.ones(batch["goal"].size(0))

    def combine(self, batch: dict, rec: torch.Tensor, penalty: torch.Tensor, pieces: Pieces
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """loss = mean rec over modelled responses + penalty + selection_weight * mean selection CE over the rows
        that select with an agreed split; also the selection terms, as ``NegotiationOutput``'s fields."""
        respond = self.response_rows(batch).to(rec.device)
        selection, known, right = self.selection_terms(pieces.selection_logits, batch)
        loss = (rec * respond).sum() / respond.sum().clamp(min=1) + penalty
        loss = loss + self.config.negotiation.selection_weight * selection.sum() / known.sum().clamp(min=1)
        return loss, {"selection": selection, "selection_rows": known, "selection_right": right}

    @staticmethod
    def response_tokens(batch: dict, respond: torch.Tensor) -> torch.Tensor:
        return ((batch["response_lengths"] - 1) * respond.to(batch["response_lengths"].device).long()).sum()

    # ------------------------------------------------------------------ playing
    def game_batch(self, goals: Sequence[Goal], histories: Sequence[Sequence[tuple[bool, str]]], closing: bool) -> dict:
        """A batch for each game as this agent sees it (``histories``: (own turn, text) per turn). ``closing``: the
        last turn is the response (what the selection head reads after); otherwise every turn is context and the
        response is empty (what ``c`` is read for)."""
        examples = []
        limit = self.config.max_length
        for goal, history in zip(goals, histories):
            turns = list(history)
            last = turns.pop() if closing and turns else None
            context = [t[:limit] for t in self.tokenizer.batch_encode([text for _, text in turns])]
            response = self.tokenizer.encode(last[1])[:limit] if last is not None else []
            examples.append(NegotiationExample(
                context, [int(own) for own, _ in turns], response, goal=goal.tokens(),
                select=int(closing), response_floor=YOU if last is None or last[0] else THEM,
            ))
        tok = self.tokenizer
        batch = collate_negotiation(examples, tok.pad_id, tok.bos_id, tok.eos_id)
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.no_grad()
    def choose(self, goals: Sequence[Goal], histories: Sequence[Sequence[tuple[bool, str]]]) -> list[tuple[int, ...]]:
        """The selection head's most likely share for each finished game."""
        with evaluating(self):
            logits = self.pieces(self.game_batch(goals, histories, closing=True)).selection_logits
        return [tuple(int(x) for x in row) for row in logits.argmax(-1).tolist()]

    def speak_from(self, pieces: Pieces, strategy: str, temperature: float, generator) -> list[str]:
        raise NotImplementedError

    @torch.no_grad()
    def speak(self, goals: Sequence[Goal], histories: Sequence[Sequence[tuple[bool, str]]], strategy: str = "sample",
              temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> list[str]:
        """The next utterance of each game (``<selection>`` ends it)."""
        with evaluating(self):
            return self.speak_from(self.pieces(self.game_batch(goals, histories, closing=False)), strategy,
                                   temperature, generator)

    def posterior(self, input_ids: torch.Tensor, lengths: torch.Tensor):
        raise InputError("a negotiation agent reads goals and dialogues: use forward(batch) or NegotiationAgent")

    def sample(self, n: int, strategy: str = "greedy", seed: Optional[int] = None, **kwargs) -> list[str]:
        raise InputError("a negotiation agent speaks in a game: use NegotiationAgent with tasks.negotiation.play")


@MODELS.register("negotiation_word")
class NegotiationWordModel(NegotiationModel):
    """Lewis et al.'s supervised agent: the response decoder reads c = [context; goal] directly."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        if config.latent.type != "none":
            raise ConfigError(f"model_type negotiation_word has no latent: set model.latent.type 'none', not "
                              f"{config.latent.type!r} (model_type larl has latent actions)")
        self.latent = build_latent(self.condition_size, config.latent)  # no latent: code_size 0, as a language model's
        self.decoder = build_decoder(tokenizer.vocab_size, self.condition_size, config.decoder,
                                     pad_id=tokenizer.pad_id, unk_id=tokenizer.unk_id, tokenizer=tokenizer)

    @property
    def decoder_input_size(self) -> int:
        return self.condition_size

    def forward(self, batch: dict, step: int = 0) -> NegotiationOutput:
        pieces = self.pieces(batch)
        respond = self.response_rows(batch).to(pieces.c.device)
        rec = sequence_nll(self.decoder, batch["response_ids"], batch["response_lengths"], pieces.c) * respond
        zero = rec.new_zeros(rec.size(0), 0)
        loss, selection = self.combine(batch, rec, rec.new_zeros(()), pieces)
        return NegotiationOutput(
            loss=loss, rec=rec, kl=rec.new_zeros(rec.shape), kl_per_dim=zero, kl_weight=0.0, capacity=None,
            num_tokens=self.response_tokens(batch, respond), z=zero, z_mean=zero, **selection,
        )

    def speak_from(self, pieces: Pieces, strategy: str, temperature: float, generator) -> list[str]:
        ids = self.generate(pieces.c, strategy=strategy, temperature=temperature, generator=generator)
        return self.tokenizer.batch_decode(ids)

    def token_log_probs(self, ids: Sequence[Sequence[int]], c: torch.Tensor, temperature: float = 1.0
                        ) -> list[torch.Tensor]:
        """log p(token | earlier tokens, c) of each word of ``generate``'s output (and its <eos>, unless the row ran to
        ``max_length`` without one), under softmax(logits / temperature) with <pad>/<bos> banned as ``generate``
        bans them: one 1-D tensor per row, with gradients (word-level RL's actions)."""
        tok, limit = self.tokenizer, self.config.max_length
        rows = [[tok.bos_id, *row] + ([tok.eos_id] if len(row) < limit else []) for row in ids]
        width = max(len(r) for r in rows)
        padded = torch.tensor([r + [tok.pad_id] * (width - len(r)) for r in rows], device=c.device)
        logits = self.decoder.project(self.decoder(padded[:, :-1], c)).float() / temperature
        logits[..., self._never_generated()] = -torch.inf
        picked = logits.log_softmax(-1).gather(-1, padded[:, 1:].unsqueeze(-1)).squeeze(-1)  # (N, width - 1)
        return [picked[i, : len(r) - 1] for i, r in enumerate(rows)]


class NegotiationAgent:
    """A model as a player of ``tasks.negotiation.play``: it speaks by ``strategy`` (sampling at ``temperature``
    0.5 by default, as Lewis et al.'s self-play and RL scripts do) and selects with its own selection module."""

    def __init__(self, model: NegotiationModel, strategy: str = "sample", temperature: float = 0.5,
                 seed: Optional[int] = None) -> None:
        if not temperature > 0:  # NaN too: fail here, not in the middle of a game
            raise InputError(f"temperature must be positive, got {temperature}")
        self.model, self.strategy, self.temperature = model, strategy, temperature
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def respond(self, games: list[int], goals: list[Goal], histories: list) -> list[str]:
        return self.model.speak(goals, histories, self.strategy, self.temperature, self.generator)

    def select(self, games: list[int], goals: list[Goal], histories: list) -> list[tuple[int, ...]]:
        return self.model.choose(goals, histories)
