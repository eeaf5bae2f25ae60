"""Behaviour every VAE shares: tokenize, encode, decode (greedy or sampled, batched, incremental state),
reconstruct, sample, interpolate, and ``save_pretrained`` / ``from_pretrained``."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..config import Config, ConfigError, ModelConfig, from_dict
from ..data.batching import collate
from ..registry import MODELS
from ..training.checkpoint import CheckpointError, load_weights, read_config, save_model_folder

STRATEGIES = ("greedy", "sample")


class InputError(ValueError):
    """Sentences or latents the model cannot take; the message says which and why."""


@dataclass
class VAEOutput:
    """What a forward pass returns: the scalar loss and its named terms.

    Shapes: ``rec``, ``kl``: (B,) per sentence, in nats; ``kl_per_dim``: (B, D); ``z``: (B, D).
    """

    loss: torch.Tensor
    rec: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    kl_weight: float
    capacity: Optional[float]
    num_tokens: torch.Tensor  # predicted tokens in the batch (words + one <eos> per sentence)
    z: Optional[torch.Tensor] = None

    @property
    def elbo(self) -> torch.Tensor:
        """Per-sentence ELBO, -(rec + kl), in nats (unweighted, whatever the schedule)."""
        return -(self.rec + self.kl)

    def log_values(self) -> dict[str, float]:
        """Batch means of the named terms as plain floats, for progress bars and logs."""
        values = {
            "loss": float(self.loss.detach()),
            "rec": float(self.rec.detach().mean()),
            "kl": float(self.kl.detach().mean()),
            "elbo": float(self.elbo.detach().mean()),
            "kl_weight": float(self.kl_weight),
        }
        if self.capacity is not None:
            values["capacity"] = float(self.capacity)
        return values


def as_model_config(config: "Config | ModelConfig | dict") -> ModelConfig:
    """Accept a full ``Config``, a ``ModelConfig`` or its dict form."""
    if isinstance(config, Config):
        return config.model
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, dict):
        return from_dict(ModelConfig, config, prefix="model.")
    raise TypeError(f"expected a Config or ModelConfig, got {type(config).__name__}")


class BaseVAE(nn.Module):
    """A VAE over sentences. Subclasses provide ``posterior(input_ids, lengths)``, ``latent``, ``decoder`` and
    ``forward(batch, step)``; this class turns them into the user-facing API."""

    config: ModelConfig
    api_batch_size = 256

    def __init__(self, config: ModelConfig, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer

    # ------------------------------------------------------------------ building and saving
    @classmethod
    def from_config(cls, config: "Config | ModelConfig | dict", tokenizer) -> "BaseVAE":
        """Build the model ``config.model_type`` names (``cls`` itself when called on a concrete class)."""
        model_config = as_model_config(config)
        model_cls = MODELS.get(model_config.model_type)
        if cls is not BaseVAE and not issubclass(model_cls, cls):
            raise ConfigError(f"model_type {model_config.model_type!r} builds {model_cls.__name__}, not {cls.__name__}")
        return model_cls(model_config, tokenizer)

    def save_pretrained(self, folder: "str | Path") -> Path:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer files into ``folder``, atomically."""
        return save_model_folder(folder, self, dataclasses.asdict(self.config), self.tokenizer)

    @classmethod
    def from_pretrained(cls, folder: "str | Path", device: "str | torch.device | None" = None) -> "BaseVAE":
        """Restore a model folder exactly (in eval mode); never unpickles anything."""
        from ..data.tokenization import load_tokenizer

        folder = Path(folder)
        raw = read_config(folder)
        try:
            model_config = from_dict(ModelConfig, raw, prefix="model.")
        except ConfigError as exc:
            raise CheckpointError(f"{folder / 'config.json'} does not describe a model: {exc}") from None
        try:
            tokenizer = load_tokenizer(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"model folder {folder}: cannot load the tokenizer: {exc}") from None
        model = cls.from_config(model_config, tokenizer)
        load_weights(model, folder)
        if device is not None:
            model.to(device)
        return model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ pieces subclasses provide
    def posterior(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    # ------------------------------------------------------------------ text in
    def _check_sentences(self, sentences: "str | Sequence[str]") -> list[str]:
        if isinstance(sentences, str):
            sentences = [sentences]
        sentences = list(sentences)
        if not sentences:
            raise InputError("no sentences given: expected a non-empty list of strings")
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise InputError(f"sentence {i} is a {type(s).__name__}, not a string")
            if not s.strip():
                raise InputError(f"sentence {i} is empty")
        return sentences

    def tokenize(self, sentences: "str | Sequence[str]") -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> (input_ids (B, T) as ``<bos> w.. <eos> <pad>..``, lengths (B,)), as the model consumes them."""
        sentences = self._check_sentences(sentences)
        ids = self.tokenizer.batch_encode(sentences)
        limit = self.config.max_length
        for i, row in enumerate(ids):
            if not row:
                raise InputError(f"sentence {i} ({sentences[i]!r}) has no tokens after tokenization")
            if len(row) > limit:
                if self.config.overlong == "error":
                    raise InputError(f"sentence {i} has {len(row)} tokens, more than max_length={limit}")
                warnings.warn(f"sentence {i} has {len(row)} tokens; truncated to max_length={limit}", stacklevel=3)
                ids[i] = row[:limit]
        tok = self.tokenizer
        batch = collate(ids, tok.pad_id, tok.bos_id, tok.eos_id)
        return batch["input_ids"], batch["lengths"]

    def _batches(self, sentences: Sequence[str]):
        for start in range(0, len(sentences), self.api_batch_size):
            input_ids, lengths = self.tokenize(sentences[start : start + self.api_batch_size])
            yield input_ids.to(self.device), lengths.to(self.device)

    @torch.no_grad()
    def encode(self, sentences: "str | Sequence[str]", sample: bool = False) -> torch.Tensor:
        """Sentences -> latent codes (N, D): posterior means, or one posterior sample each with ``sample=True``."""
        sentences = self._check_sentences(sentences)
        was_training = self.training
        self.eval()
        codes = []
        for input_ids, lengths in self._batches(sentences):
            q = self.posterior(input_ids, lengths)
            codes.append(self.latent.rsample(q) if sample else self.latent.mode(q))
        self.train(was_training)
        return torch.cat(codes)

    # ------------------------------------------------------------------ text out
    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        strategy: str = "greedy",
        temperature: float = 1.0,
        max_length: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> list[list[int]]:
        """Decode latents (N, D) to token id lists, batched with incremental decoder state; stops at <eos>."""
        if strategy not in STRATEGIES:
            raise InputError(f"unknown decoding strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        if z.dim() != 2 or z.size(1) != self.latent.code_size:
            raise InputError(f"z must have shape (N, {self.latent.code_size}), got {tuple(z.shape)}")
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        max_length = max_length or self.config.max_length
        tok = self.tokenizer
        was_training = self.training
        self.eval()
        z = z.to(self.device)
        n = z.size(0)
        tokens = torch.full((n,), tok.bos_id, dtype=torch.long, device=self.device)
        finished = torch.zeros(n, dtype=torch.bool, device=self.device)
        state = self.decoder.initial_state(z)
        steps = []
        for _ in range(max_length + 1):
            logits, state = self.decoder.step(tokens, z, state)
            if strategy == "greedy":
                tokens = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                tokens = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            tokens = tokens.masked_fill(finished, tok.pad_id)
            steps.append(tokens)
            finished |= tokens == tok.eos_id
            if bool(finished.all()):
                break
        self.train(was_training)
        out = torch.stack(steps, dim=1).tolist()
        result = []
        for row in out:
            cut = row.index(tok.eos_id) if tok.eos_id in row else len(row)
            result.append([t for t in row[:cut] if t != tok.pad_id])
        return result

    def decode(self, z: torch.Tensor, strategy: str = "greedy", **kwargs) -> list[str]:
        """Latents (N, D) -> sentences."""
        chunks = []
        for start in range(0, z.size(0), self.api_batch_size):
            chunks += self.generate(z[start : start + self.api_batch_size], strategy=strategy, **kwargs)
        return self.tokenizer.batch_decode(chunks)

    def reconstruct(self, sentences: "str | Sequence[str]", strategy: str = "greedy", **kwargs) -> list[str]:
        """Encode to posterior means and decode back."""
        return self.decode(self.encode(sentences), strategy=strategy, **kwargs)

    def sample(self, n: int, strategy: str = "greedy", seed: Optional[int] = None, **kwargs) -> list[str]:
        """Decode ``n`` latents drawn from the prior."""
        if n < 1:
            raise InputError(f"n must be at least 1, got {n}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.latent.sample_prior(n, generator=generator)
        return self.decode(z, strategy=strategy, generator=generator, **kwargs)

    def interpolate(self, a: str, b: str, steps: int = 5, strategy: str = "greedy") -> list[str]:
        """Decode ``steps`` evenly spaced points on the line between the posterior means of ``a`` and ``b``."""
        if steps < 2:
            raise InputError(f"steps must be at least 2 (the two ends), got {steps}")
        za, zb = self.encode([a, b])
        t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
        return self.decode((1 - t) * za + t * zb, strategy=strategy)


def load_pretrained(folder: "str | Path", device: "str | torch.device | None" = None) -> BaseVAE:
    """Load any model folder written by ``save_pretrained``; the class comes from its config's ``model_type``."""
    return BaseVAE.from_pretrained(folder, device=device)
