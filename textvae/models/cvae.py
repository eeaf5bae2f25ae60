"""Conditional VAE for responses (Sohn et al. 2015; Zhao et al. 2017's CVAE and kgCVAE).

    c = context RNN over the utterance vectors of the previous turns (or a label's embedding, ``condition=label``)
    q(z | x, c [, y])  recognition network: one linear layer on [utterance vector of x; c; y's embedding]
    p(z | c)           prior network: an MLP (``modules.priors``)
    p(x | c, z [, y])  the response decoder, conditioned on [c; z (; y's embedding)]
    loss = rec + w_KL(step) * KL(q || p) + bow_weight * bag-of-words NLL [+ act_weight * CE(y | c, z)]

The bag-of-words loss predicts every word of the response at once from [c; z], so z must carry the response's
content (against posterior collapse). kgCVAE (``use_act``) predicts the dialogue act y from [c; z]; the decoder
reads the true act's embedding in training and the predicted distribution's mean embedding when generating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from ..config import ConfigError, ModelConfig
from ..data.dialogue import UNKNOWN, DialogueExample, collate_dialogues
from ..modules.context import ContextEncoder, encode_turns
from ..modules.decoders import build_decoder, sequence_nll
from ..modules.encoders import build_encoder
from ..modules.latents import build_latent
from ..modules.priors import GaussianPriorNetwork
from ..objectives import kl_term
from ..registry import MODELS
from .base import BaseVAE, InputError, VAEOutput, evaluating


@dataclass
class CVAEOutput(VAEOutput):
    """``VAEOutput`` (``kl`` is KL(q(z|x,c) || p(z|c))) plus the auxiliary terms, (B,) each, None when off.

    ``bow``: -log p(words of x | c, z) of the bag-of-words head; ``act_loss``: cross-entropy of the label y predicted
    from [c, z] (0 where y is unknown); ``act_accuracy``: share of known labels predicted right.
    """

    bow: Optional[torch.Tensor] = None
    act_loss: Optional[torch.Tensor] = None
    act_accuracy: Optional[float] = None

    def log_values(self) -> dict[str, float]:
        values = super().log_values()
        for name in ("bow", "act_loss"):
            if getattr(self, name) is not None:
                values[name] = float(getattr(self, name).detach().mean())
        if self.act_accuracy is not None:
            values["act_accuracy"] = self.act_accuracy
        return values


def label_key(config: ModelConfig) -> str:
    """The batch field holding y: ``acts`` or ``emotions``."""
    return config.dialogue.act_label + "s"


@MODELS.register("cvae")
class CVAE(BaseVAE):
    """A CVAE over (context, response) batches from ``data.dialogue``; ``respond`` samples responses from the prior
    network. With ``dialogue.condition=label`` the condition is a label's embedding and the context is ignored."""

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__(config, tokenizer)
        d, vocab = config.dialogue, tokenizer.vocab_size
        if config.latent.type != "gaussian":
            raise ConfigError(f"model_type cvae needs model.latent.type 'gaussian', not {config.latent.type!r}")
        if d.condition == "label" and d.use_act:
            raise ConfigError("model.dialogue.use_act predicts the label that condition=label already gives; use one")
        if d.num_acts < 1:
            raise ConfigError(f"model.dialogue.num_acts must be at least 1, got {d.num_acts}")
        self.utterance_encoder = build_encoder(vocab, config.encoder, pad_id=tokenizer.pad_id, tokenizer=tokenizer)
        utterance_size, size = self.utterance_encoder.output_size, d.context_hidden_size
        if d.condition == "context":
            self.context_encoder = ContextEncoder(utterance_size, size)
        else:  # one row per class and one for an unknown label
            self.label_embedding = nn.Embedding(d.num_acts + 1, size)
        act_size = d.act_embedding_size if d.use_act else 0
        if d.use_act:
            self.act_embedding = nn.Embedding(d.num_acts, act_size)
            self.act_predictor = nn.Sequential(
                nn.Linear(size + config.latent.size, d.prior_hidden_size), nn.Tanh(), nn.Linear(d.prior_hidden_size, d.num_acts)
            )
        self.latent = build_latent(utterance_size + size + act_size, config.latent)  # the recognition network
        self.prior = GaussianPriorNetwork(size, d.prior_hidden_size, config.latent.size)
        if d.bow_weight > 0:
            hidden = config.decoder.hidden_size
            self.bow_head = nn.Sequential(nn.Linear(size + config.latent.size, hidden), nn.Tanh(), nn.Linear(hidden, vocab))
        self.condition_size = size
        self.decoder = build_decoder(
            vocab, size + config.latent.size + act_size, config.decoder, pad_id=tokenizer.pad_id, unk_id=tokenizer.unk_id,
            tokenizer=tokenizer,
        )

    @property
    def decoder_input_size(self) -> int:
        return self.decoder_condition_size

    @property
    def decoder_condition_size(self) -> int:
        d = self.config.dialogue
        return self.condition_size + self.config.latent.size + (d.act_embedding_size if d.use_act else 0)

    # ------------------------------------------------------------------ pieces
    def labels(self, batch: dict) -> torch.Tensor:
        """y (B,) from the batch; -1 where unknown."""
        labels = batch[label_key(self.config)]
        if labels.numel() and int(labels.max()) >= self.config.dialogue.num_acts:
            raise InputError(
                f"label {int(labels.max())} in {label_key(self.config)!r} is outside model.dialogue.num_acts="
                f"{self.config.dialogue.num_acts}"
            )
        return labels

    def condition(self, batch: dict) -> torch.Tensor:
        """c (B, C): the context RNN's state after the last real turn, or the label's embedding."""
        if self.config.dialogue.condition == "label":
            labels = self.labels(batch)
            return self.label_embedding(labels.masked_fill(labels < 0, self.config.dialogue.num_acts))
        utterances = encode_turns(self.utterance_encoder, batch["context_ids"], batch["context_lengths"])
        return self.context_encoder(utterances, batch["context_floor"], batch["context_turns"])

    def _act_input(self, labels: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """y's embedding for the recognition network: zeros where y is unknown, or (B, 0) without kgCVAE."""
        if not self.config.dialogue.use_act:
            return like.new_zeros(like.size(0), 0)
        known = labels >= 0
        return self.act_embedding(labels.clamp(min=0)) * known.unsqueeze(-1).to(like.dtype)

    def recognition(self, x: torch.Tensor, c: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Normal:
        """q(z | x, c [, y]) from the response's utterance vector x (B, U) and c (B, C)."""
        return self.latent.posterior(torch.cat([x, c, self._act_input(labels, c)], dim=-1))

    def decoder_input(
        self, c: torch.Tensor, z: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """[c; z (; y's embedding)] for the decoder, and the act logits (None without kgCVAE). Known labels are
        teacher-forced; unknown ones (and ``labels=None``, generation) use the predicted distribution's mean
        embedding, as Zhao et al. do at test time."""
        if not self.config.dialogue.use_act:
            return torch.cat([c, z], dim=-1), None
        logits = self.act_predictor(torch.cat([c, z], dim=-1))
        embedding = torch.softmax(logits, dim=-1) @ self.act_embedding.weight
        if labels is not None:
            known = (labels >= 0).unsqueeze(-1)
            embedding = torch.where(known, self.act_embedding(labels.clamp(min=0)), embedding)
        return torch.cat([c, z, embedding], dim=-1), logits

    def bow_nll(self, c: torch.Tensor, z: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """-sum_t log p_bow(x_t | c, z) per response (B,) over its words and <eos>, order ignored."""
        log_probs = torch.log_softmax(self.bow_head(torch.cat([c, z], dim=-1)).float(), dim=-1)  # (B, V)
        targets = ids[:, 1:]
        mask = torch.arange(targets.size(1), device=ids.device).unsqueeze(0) < (lengths - 1).unsqueeze(1)
        return -(log_probs.gather(1, targets) * mask).sum(-1)

    def posterior(self, input_ids: torch.Tensor, lengths: torch.Tensor):
        raise InputError("a CVAE's posterior q(z|x,c) needs the context: use forward(batch) or respond(contexts)")

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, step: int = 0) -> CVAEOutput:
        """One pass over a dialogue batch; the KL weight follows ``step`` (``objective`` schedules, free bits)."""
        d, objective = self.config.dialogue, self.config.objective
        ids, lengths = batch["response_ids"], batch["response_lengths"]
        c = self.condition(batch)
        labels = self.labels(batch) if d.use_act else None
        q = self.recognition(self.utterance_encoder(ids, lengths), c, labels)
        p = self.prior(c)
        z = q.rsample()
        decoder_input, act_logits = self.decoder_input(c, z, labels)
        rec = sequence_nll(self.decoder, ids, lengths, decoder_input)
        kl_per_dim = kl_divergence(q, p)  # (B, D)
        term = kl_term(kl_per_dim, objective, step)
        loss = rec.mean() + term.penalty
        bow = act_loss = accuracy = None
        if d.bow_weight > 0:
            bow = self.bow_nll(c, z, ids, lengths)
            loss = loss + d.bow_weight * bow.mean()
        if d.use_act:
            act_loss = F.cross_entropy(act_logits.float(), labels, ignore_index=UNKNOWN, reduction="none")
            known = (labels >= 0).sum().clamp(min=1)
            loss = loss + d.act_weight * act_loss.sum() / known
            accuracy = float(((act_logits.argmax(-1) == labels) & (labels >= 0)).sum() / known)
        return CVAEOutput(
            loss=loss,
            rec=rec,
            kl=kl_per_dim.sum(-1),
            kl_per_dim=kl_per_dim,
            kl_weight=term.kl_weight,
            capacity=term.capacity,
            num_tokens=(lengths - 1).sum(),
            z=z,
            z_mean=q.loc.detach(),
            bow=bow,
            act_loss=act_loss,
            act_accuracy=accuracy,
        )

    @torch.no_grad()
    def response_kl(self, batch: dict) -> torch.Tensor:
        """KL(q(z|x,c) || p(z|c)) of each response (B,), in nats."""
        ids, lengths = batch["response_ids"], batch["response_lengths"]
        c = self.condition(batch)
        labels = self.labels(batch) if self.config.dialogue.use_act else None
        q = self.recognition(self.utterance_encoder(ids, lengths), c, labels)
        return kl_divergence(q, self.prior(c)).sum(-1)

    def response_iw_log_weights(self, batch: dict, num_samples: int) -> torch.Tensor:
        """Log importance weights of the responses' IW bound on log p(x|c): log w_k = log p(x|c,z_k) + log p(z_k|c)
        - log q(z_k|x,c) for z_k ~ q: (K, B). The decoder reads the predicted act (kgCVAE), as when generating, so
        the weights bound log p(x|c) of the model ``respond`` uses."""
        ids, lengths = batch["response_ids"], batch["response_lengths"]
        c = self.condition(batch)
        labels = self.labels(batch) if self.config.dialogue.use_act else None
        q = self.recognition(self.utterance_encoder(ids, lengths), c, labels)
        p = self.prior(c)
        z = q.rsample((num_samples,))  # (K, B, D)
        k, b = z.shape[:2]
        cc = c.unsqueeze(0).expand(k, -1, -1).reshape(k * b, -1)
        decoder_input, _ = self.decoder_input(cc, z.reshape(k * b, -1))
        rec = sequence_nll(
            self.decoder, ids.repeat(k, 1), lengths.repeat(k), decoder_input
        ).view(k, b)
        return -rec + p.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)

    log_importance_weights = response_iw_log_weights  # the former name, which callers may still use

    # ------------------------------------------------------------------ generation
    def context_batch(self, contexts: Sequence[Sequence[str]], labels: Optional[Sequence[int]] = None) -> dict:
        """A batch from context texts (oldest turn first; the responder spoke the turns an even number of turns
        before the response) and, for ``condition=label``, the labels."""
        examples = []
        for i, context in enumerate(contexts):
            context = [context] if isinstance(context, str) else list(context)
            if self.config.dialogue.condition == "context" and not context:
                raise InputError(f"context {i} has no turns")
            ids = self.token_ids(context) if context else []
            n = len(ids)
            label = UNKNOWN if labels is None else int(labels[i])
            examples.append(DialogueExample(ids, [int((n - k) % 2 == 0) for k in range(n)], [], label, label))
        tok = self.tokenizer
        batch = collate_dialogues(examples, tok.pad_id, tok.bos_id, tok.eos_id)
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.no_grad()
    def respond(
        self,
        contexts: Optional[Sequence[Sequence[str]]] = None,
        num_samples: int = 10,
        strategy: str = "greedy",
        seed: Optional[int] = None,
        labels: Optional[Sequence[int]] = None,
        **kwargs,
    ) -> list[list[str]]:
        """``num_samples`` responses per context, each from its own z ~ p(z|c) of the prior network; ``kwargs`` go
        to ``generate`` (temperature, top_k, top_p, beam_size, max_length). ``condition=label`` models take
        ``labels`` (class ids) instead of contexts. ``seed`` fixes the latents and sampled tokens."""
        if num_samples < 1:
            raise InputError(f"num_samples must be at least 1, got {num_samples}")
        if self.config.dialogue.condition == "label":
            if labels is None:
                raise InputError("a label-conditioned CVAE responds to labels=[class ids], not contexts")
            contexts = [[] for _ in labels]
        elif not contexts:
            raise InputError("no contexts given: expected a list of contexts, each a list of turns")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.respond_to_batch(self.context_batch(contexts, labels), num_samples, strategy, generator, **kwargs)

    @torch.no_grad()
    def respond_to_batch(
        self, batch: dict, num_samples: int = 10, strategy: str = "greedy", generator: Optional[torch.Generator] = None,
        **kwargs,
    ) -> list[list[str]]:
        """``respond`` for a collated dialogue batch (its responses are not read): ``num_samples`` texts per row."""
        with evaluating(self):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            c = self.condition(batch).repeat_interleave(num_samples, dim=0)
            p = self.prior(c)
            noise = torch.randn(p.loc.shape, generator=generator).to(c.device)
            decoder_input, _ = self.decoder_input(c, p.loc + p.scale * noise)
            texts = self.decode(decoder_input, strategy=strategy, generator=generator, **kwargs)
        return [texts[i : i + num_samples] for i in range(0, len(texts), num_samples)]

    def sample(self, n: int, strategy: str = "greedy", seed: Optional[int] = None, **kwargs) -> list[str]:
        raise InputError("a CVAE samples responses to a condition: use respond(contexts) (or labels=...)")
