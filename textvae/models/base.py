"""Behaviour every VAE shares: tokenize, encode, decode (greedy or sampled, batched, incremental state),
reconstruct, sample, interpolate, and ``save_pretrained`` / ``from_pretrained``."""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..config import Config, ModelConfig, from_dict
from ..config_migration import migrate_saved_model
from ..errors import CheckpointError, ConfigError, InputError
from ..data.batching import collate, fit_length, warn_length_report
from ..modules.initialization import uniform_init
from ..modules.paths import interpolation_points
from ..registry import MODELS
from ..serialization import backbones_from, load_weights, read_config, save_model_folder

STRATEGIES = ("greedy", "sample", "beam")


@dataclass
class VAEOutput:
    """What a forward pass returns: the scalar loss and its named terms.

    Shapes: ``rec``, ``kl``: (B,) per sentence, in nats; ``kl_per_dim``: (B, D); ``z``: (B, D); ``z_mean``: (B, D),
    E_q[z] (``Latent.mean``: category probabilities, not the one-hot mode; no gradient), which validation reads
    for active units.
    """

    loss: torch.Tensor
    rec: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    kl_weight: float
    capacity: Optional[float]
    num_tokens: torch.Tensor  # predicted tokens in the batch (words + one <eos> per sentence)
    z: Optional[torch.Tensor] = None
    z_mean: Optional[torch.Tensor] = None

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

    def figure_sums(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """A model's own figures as (numerator, denominator) tensors, which training log lines and validation
        (``forward_elbo``) sum over batches and divide; none for most models."""
        return {}


def as_model_config(config: "Config | ModelConfig | dict") -> ModelConfig:
    """Accept a full ``Config``, a ``ModelConfig`` or its dict form."""
    if isinstance(config, Config):
        return config.model
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, dict):
        return from_dict(ModelConfig, config, prefix="model.")
    raise TypeError(f"expected a Config or ModelConfig, got {type(config).__name__}")


class evaluating:
    """``with evaluating(model):`` runs the block with ``model`` in eval mode (no dropout, no word dropout) and
    puts back the mode it had, also when the block raises. Gradients are the caller's business."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.was_training = self.model.training
        return self.model.eval()

    def __exit__(self, *exc_info) -> None:
        self.model.train(self.was_training)


class VAEModel(nn.Module):
    """What every model shares, text or images: built from its config by ``model_type`` (``from_config``), evaluated
    with the final KL weights (``evaluate``), saved as a model folder and restored exactly (``save_pretrained`` /
    ``from_pretrained``). ``uses_tokenizer``: whether the model reads text (its folder then holds the tokenizer)."""

    config: ModelConfig
    uses_tokenizer = True

    def __init__(self, config: ModelConfig, tokenizer=None) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer

    # ------------------------------------------------------------------ building and saving
    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Settings this model type needs before it can be built; a ConfigError names the missing one."""

    @classmethod
    def from_config(cls, config: "Config | ModelConfig | dict", tokenizer=None) -> "VAEModel":
        """Build the model ``config.model_type`` names (``cls`` itself when called on a concrete class; any model from
        ``VAEModel`` or ``BaseVAE``), initialised as ``model.init`` says (``default``: each module's own;
        ``uniform``: ``modules.initialization.uniform_init``)."""
        model_config = as_model_config(config)
        model_cls = MODELS.get(model_config.model_type)
        if cls not in (VAEModel, BaseVAE) and not issubclass(model_cls, cls):
            raise ConfigError(f"model_type {model_config.model_type!r} builds {model_cls.__name__}, not {cls.__name__}")
        model_cls.check_config(model_config)
        model = model_cls(model_config, tokenizer)
        if model_config.init == "uniform":
            uniform_init(model, model_config.init_range, model_config.embedding_init_range)
        return model

    @torch.no_grad()
    def evaluate(self, batch: dict, step: Optional[int] = None) -> VAEOutput:
        """A forward pass in eval mode with the final KL weights (for validation during training); every model
        takes ``forward(batch, step)``, so this serves them all."""
        with evaluating(self):
            return self(batch, step=step if step is not None else 10**12)

    def save_pretrained(self, folder: "str | Path") -> Path:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer files into ``folder``, atomically, with the
        config and tokenizer of any pretrained backbone (``<role>_backbone/``), so the folder stands alone."""
        return save_model_folder(folder, self, dataclasses.asdict(self.config), self.tokenizer, extra=self._save_backbones)

    def _save_backbones(self, folder: Path) -> None:
        for child in self.children():
            if hasattr(child, "save_backbone"):
                child.save_backbone(folder)

    @classmethod
    def from_pretrained(cls, folder: "str | Path", device: "str | torch.device | None" = None) -> "VAEModel":
        """Restore a model folder exactly (in eval mode); never unpickles anything."""
        from ..data.tokenization import load_tokenizer

        folder = Path(folder)
        raw = migrate_saved_model(read_config(folder))
        try:
            model_config = from_dict(ModelConfig, raw, prefix="model.")
            model_cls = MODELS.get(model_config.model_type)
        except ConfigError as exc:
            raise CheckpointError(f"{folder / 'config.json'} does not describe a model: {exc}") from None
        tokenizer = None
        if model_cls.uses_tokenizer:
            try:
                tokenizer = load_tokenizer(folder)
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"model folder {folder}: cannot load the tokenizer: {exc}") from None
        with backbones_from(folder):  # pretrained backbones: architecture from the folder, weights loaded next
            model = cls.from_config(model_config, tokenizer)
        load_weights(model, folder)
        if device is not None:
            model.to(device)
        return model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class BaseVAE(VAEModel):
    """A VAE over sentences. Subclasses provide ``posterior(input_ids, lengths)``, ``latent``, ``decoder`` and
    ``forward(batch, step)``; this class turns them into the user-facing API."""

    api_batch_size = 256

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        if config.max_length is None:
            raise ConfigError(
                "model.max_length is not set: prepare_data derives it from the training split, so build the model "
                "from data.model_config(config) (or set model.max_length)"
            )

    # ------------------------------------------------------------------ pieces subclasses provide
    @property
    def decoder_input_size(self) -> int:
        """Width of the vector the decoder is conditioned on: z itself here; conditional models add to it."""
        return self.latent.code_size

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

    def token_ids(self, sentences: "str | Sequence[str]") -> list[list[int]]:
        """Token ids per sentence (no <bos>/<eos>) under the model's length rules, the ones its training data had:
        longer than ``max_length`` is truncated with one warning for the call (``overlong: truncate``) or an
        InputError naming the sentence (``error``, and ``drop``, since every sentence given needs an answer)."""
        sentences = self._check_sentences(sentences)
        ids = self.tokenizer.batch_encode(sentences)
        for i, row in enumerate(ids):
            if not row:
                raise InputError(f"sentence {i} ({sentences[i]!r}) has no tokens after tokenization")
        limit, policy = self.config.max_length, self.config.overlong
        if policy != "truncate":
            longer = next((i for i, row in enumerate(ids) if len(row) > limit), None)
            if longer is not None:
                raise InputError(
                    f"sentence {longer} has {len(ids[longer])} tokens, more than max_length={limit} "
                    f"(the model's overlong policy is {policy!r}: it does not truncate)"
                )
            return ids
        kept, _, report = fit_length(ids, limit, "truncate")
        warn_length_report(report, "sentences given", stacklevel=3)
        return kept

    def tokenize(self, sentences: "str | Sequence[str]") -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> (input_ids (B, T) as ``<bos> w.. <eos> <pad>..``, lengths (B,)), as the model consumes them."""
        return self._collate(self.token_ids(sentences))

    def _collate(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer
        batch = collate(ids, tok.pad_id, tok.bos_id, tok.eos_id)
        return batch["input_ids"], batch["lengths"]

    def _batches(self, sentences: Sequence[str]):
        """Padded batches of ``api_batch_size`` sentences on the model's device; tokenized (and length-checked) in
        one call, so a warning counts and indexes the caller's own list."""
        ids = self.token_ids(sentences)
        for start in range(0, len(ids), self.api_batch_size):
            input_ids, lengths = self._collate(ids[start : start + self.api_batch_size])
            yield input_ids.to(self.device), lengths.to(self.device)

    @torch.no_grad()
    def encode(self, sentences: "str | Sequence[str]", sample: bool = False) -> torch.Tensor:
        """Sentences -> latent codes (N, D): posterior means, or one posterior sample each with ``sample=True``."""
        sentences = self._check_sentences(sentences)
        codes = []
        with evaluating(self):
            for input_ids, lengths in self._batches(sentences):
                q = self.posterior(input_ids, lengths)
                codes.append(self.latent.rsample(q) if sample else self.latent.mode(q))
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
        *,
        top_k: int = 0,
        top_p: float = 1.0,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
    ) -> list[list[int]]:
        """Decode latents (N, D) to token id lists (without <bos>/<eos>), batched with incremental decoder state.

        ``strategy``: ``greedy``; ``sample`` from softmax(logits / ``temperature``), restricted to the ``top_k`` most
        likely tokens (0: all) and to the smallest set whose probability reaches ``top_p`` (1.0: all); ``beam``
        search with ``beam_size`` hypotheses per latent, ranked at the end by log p / length**``length_penalty``
        (length counts <eos>; 0 ranks by raw log p, and ``beam_size=1`` is then exactly greedy). Every strategy
        stops a sentence at <eos> or after ``max_length`` tokens (default ``config.max_length``) and never emits
        <pad> or <bos>. Rows that finish leave the batch, so long tails cost only their own rows.

        Against loops, for every strategy (``repetition_controls``, before temperature and filtering, as Hugging
        Face ``generate``): ``repetition_penalty`` >= 1 divides the positive logits and multiplies the negative ones
        of tokens the sequence already holds (CTRL, Keskar et al. 2019; 1.0: off); ``no_repeat_ngram_size`` n >= 1
        never emits a token that completes an n-gram the sequence already holds (0: off). Beam search scores the
        log-probabilities of the adjusted logits.
        """
        if strategy not in STRATEGIES:
            raise InputError(f"unknown decoding strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        if z.dim() != 2 or z.size(1) != self.decoder_input_size:
            raise InputError(f"z must have shape (N, {self.decoder_input_size}), got {tuple(z.shape)}")
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        if top_k < 0 or int(top_k) != top_k:
            raise InputError(f"top_k must be a non-negative integer (0 keeps every token), got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        if (top_k or top_p < 1.0) and strategy != "sample":
            raise InputError(f"top_k and top_p apply to strategy='sample', not {strategy!r}")
        if beam_size < 1:
            raise InputError(f"beam_size must be at least 1, got {beam_size}")
        check_repetition_controls(repetition_penalty, no_repeat_ngram_size)
        controls = dict(repetition_penalty=float(repetition_penalty), no_repeat_ngram_size=int(no_repeat_ngram_size))
        max_length = self.config.max_length if max_length is None else max_length
        if max_length < 1:
            raise InputError(f"max_length must be at least 1, got {max_length}")
        with evaluating(self):
            z = z.to(self.device)
            if strategy == "beam":
                rows = self._beam_search(z, beam_size, max_length, length_penalty, **controls)
            else:
                rows = self._decode_stepwise(z, strategy, temperature, top_k, top_p, max_length, generator, **controls)
        eos = self.tokenizer.eos_id
        return [row[: row.index(eos)] if eos in row else row for row in rows]

    def _never_generated(self) -> list[int]:
        tok = self.tokenizer
        return sorted({tok.pad_id, tok.bos_id} - {tok.eos_id})

    def _decode_stepwise(
        self, z, strategy, temperature, top_k, top_p, max_length, generator,
        repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
    ) -> list[list[int]]:
        """Greedy or sampled decoding; finished rows are dropped from the batch (``decoder.select_state``)."""
        tok, decoder = self.tokenizer, self.decoder
        banned = self._never_generated()
        controlled = repetition_penalty != 1.0 or no_repeat_ngram_size > 0
        n = z.size(0)
        out = torch.full((n, max_length), tok.pad_id, dtype=torch.long, device=z.device)
        alive = torch.arange(n, device=z.device)  # original row of each row still decoding
        tokens = torch.full((n,), tok.bos_id, dtype=torch.long, device=z.device)
        state = decoder.initial_state(z)
        for t in range(max_length):
            logits, state = decoder.step(tokens, z, state)
            logits = logits.float()
            if t > 0 and controlled:
                logits = repetition_controls(logits, out[alive, :t], repetition_penalty, no_repeat_ngram_size)
            logits[:, banned] = -torch.inf
            if strategy == "greedy":
                tokens = logits.argmax(-1)
            else:
                tokens = sample_tokens(logits, temperature, top_k, top_p, generator)
            out[alive, t] = tokens
            going = tokens != tok.eos_id
            if not bool(going.all()):
                keep = going.nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                alive, tokens, z = alive[keep], tokens[keep], z[keep]
                state = decoder.select_state(state, keep)
        return out.tolist()

    def _beam_search(
        self, z, beam_size: int, max_length: int, length_penalty: float,
        repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
    ) -> list[list[int]]:
        """Batched beam search. Each step expands the live beams, moves hypotheses that end in <eos> (from the top
        ``beam_size`` candidates) to a pool of finished ones ranked by normalised score, and keeps the best
        ``beam_size`` candidates that did not end as live beams. A latent is done when no live beam can still
        beat its worst pooled hypothesis; at ``max_length`` tokens only <eos> is allowed."""
        tok, decoder = self.tokenizer, self.decoder
        n, width, device = z.size(0), beam_size, z.device
        banned, eos = self._never_generated(), tok.eos_id
        controlled = repetition_penalty != 1.0 or no_repeat_ngram_size > 0
        rows = torch.arange(n, device=device).unsqueeze(1)
        zz = z.repeat_interleave(width, dim=0)  # (n * W, D), beams of a latent adjacent
        state = decoder.initial_state(zz)
        tokens = torch.full((n * width,), tok.bos_id, dtype=torch.long, device=device)
        scores = torch.full((n, width), -torch.inf, device=device)
        scores[:, 0] = 0.0  # one live beam at the start, so the first step does not pick duplicates
        history = torch.empty((n, width, 0), dtype=torch.long, device=device)
        pool_scores = torch.full((n, width), -torch.inf, device=device)
        pool_tokens = torch.full((n, width, max_length + 1), tok.pad_id, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        for t in range(max_length + 1):
            logits, state = decoder.step(tokens, zz, state)
            logits = logits.float()
            if t > 0 and controlled:
                logits = repetition_controls(logits, history.reshape(n * width, t), repetition_penalty,
                                             no_repeat_ngram_size)
            log_probs = torch.log_softmax(logits, dim=-1)
            log_probs[:, banned] = -torch.inf
            if t == max_length:
                log_probs = torch.full_like(log_probs, -torch.inf).index_copy_(
                    1, torch.tensor([eos], device=device), log_probs[:, eos : eos + 1]
                )
            vocab = log_probs.size(-1)
            candidates = (scores.unsqueeze(-1) + log_probs.view(n, width, vocab)).view(n, width * vocab)
            k = min(2 * width, width * vocab)
            cand_scores, cand_index = candidates.topk(k, dim=-1)  # (n, k), best first
            cand_beam, cand_token = cand_index // vocab, cand_index % vocab
            ends = cand_token == eos
            valid = torch.isfinite(cand_scores)
            rank = torch.arange(k, device=device).unsqueeze(0)
            # finished hypotheses: history of the beam, then <eos>; normalised by length (tokens + <eos>)
            accept = ends & valid & (rank < width) & ~done.unsqueeze(1)
            normalised = (cand_scores / float(t + 1) ** length_penalty).masked_fill(~accept, -torch.inf)
            finished = torch.full((n, k, max_length + 1), tok.pad_id, dtype=torch.long, device=device)
            finished[:, :, :t] = history[rows, cand_beam]
            finished[:, :, t] = eos
            pool_scores, pick = torch.cat([pool_scores, normalised], 1).topk(width, dim=1)
            pool_tokens = torch.cat([pool_tokens, finished], 1)[rows, pick]
            # live beams: the best ``width`` candidates that did not end
            order = torch.where(ends | ~valid, rank + k, rank)
            live = order.topk(width, dim=1, largest=False).indices  # (n, W)
            beam, token = cand_beam.gather(1, live), cand_token.gather(1, live)
            scores = cand_scores.gather(1, live).masked_fill(ends.gather(1, live) | ~valid.gather(1, live), -torch.inf)
            history = torch.cat([history[rows, beam], token.unsqueeze(-1)], dim=-1)
            # stop a latent when no live beam can beat its worst pooled hypothesis: scores only fall, and dividing a
            # negative score by length**penalty is largest at the longest length still possible (penalty > 0)
            best_live = scores.max(dim=1).values
            bound_length = max_length + 1 if length_penalty > 0 else t + 2
            bound = best_live / float(bound_length) ** length_penalty
            done |= pool_scores[:, -1] >= bound
            if bool(done.all()) or t == max_length:
                break
            state = decoder.select_state(state, (rows * width + beam).view(-1))
            tokens = token.view(-1)
        return pool_tokens[:, 0].tolist()

    def _check_latents(self, z, name: str = "z") -> torch.Tensor:
        """Latent codes as a float (N, D) tensor on the model's device (D = ``decoder_input_size``, which a
        conditional model's decode takes with its condition): a numpy array or a single (D,) code is accepted,
        integer codes become floats; a wrong width, no rows or a NaN/inf value is an InputError."""
        size = self.decoder_input_size
        if not isinstance(z, torch.Tensor):
            try:
                z = torch.as_tensor(z)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise InputError(f"{name} must be a tensor or array of shape (N, {size}), got {type(z).__name__}: {exc}") from None
        if z.is_complex():
            raise InputError(f"{name} is complex ({z.dtype}); latent codes are real")
        if z.dim() == 1 and z.numel() == size:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.size(1) != size:
            raise InputError(f"{name} has shape {tuple(z.shape)}; this model's latent codes have shape (N, {size})")
        if z.size(0) == 0:
            raise InputError(f"{name} has no rows: expected at least one latent code")
        z = z.to(device=self.device, dtype=next(self.parameters()).dtype)  # numpy gives float64, users ints
        bad = ~torch.isfinite(z).all(dim=1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten().tolist()
            raise InputError(f"{name} has NaN or infinite values in {len(rows)} of {z.size(0)} rows (first: row {rows[0]})")
        return z

    def decode(
        self, z: torch.Tensor, strategy: str = "greedy", progress: "bool | str | None" = False, **kwargs
    ) -> list[str]:
        """Latents (N, D) -> sentences; ``kwargs`` go to ``generate`` (temperature, top_k, top_p, beam_size,
        repetition_penalty, no_repeat_ngram_size, ...). ``progress``: a tqdm bar over the sentences: False none,
        True always, None on a terminal only, a string: on a terminal only, with that label. ``z`` may be a numpy
        array, or a single code of shape (D,)."""
        from tqdm.auto import tqdm

        z = self._check_latents(z)
        chunks = []
        batch = self.api_batch_size if strategy != "beam" else max(1, self.api_batch_size // kwargs.get("beam_size", 4))
        desc = progress if isinstance(progress, str) else "decoding"
        show = None if progress is None or isinstance(progress, str) else bool(progress)
        with tqdm(total=z.size(0), desc=desc, unit="sent", disable=None if show is None else not show,
                  leave=False) as bar:
            for start in range(0, z.size(0), batch):
                chunks += self.generate(z[start : start + batch], strategy=strategy, **kwargs)
                bar.update(min(batch, z.size(0) - start))
        return self.tokenizer.batch_decode(chunks)

    def reconstruct(self, sentences: "str | Sequence[str]", strategy: str = "greedy", **kwargs) -> list[str]:
        """Encode to posterior means and decode back; ``kwargs`` go to ``generate``."""
        return self.decode(self.encode(sentences), strategy=strategy, **kwargs)

    def sample(self, n: int, strategy: str = "greedy", seed: Optional[int] = None, **kwargs) -> list[str]:
        """Decode ``n`` latents drawn from the prior; ``seed`` fixes both the latents and sampled tokens."""
        n = count_argument("n", n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.latent.sample_prior(n, generator=generator)
        return self.decode(z, strategy=strategy, generator=generator, **kwargs)

    def interpolate(
        self, a: str, b: str, steps: int = 5, strategy: str = "greedy", method: str = "linear", **kwargs
    ) -> list[str]:
        """Decode ``steps`` evenly spaced points between the posterior means of ``a`` and ``b``, on the line
        (``method="linear"``) or the great circle (``"spherical"``); ``kwargs`` go to ``generate``."""
        steps = count_argument("steps", steps, minimum=2)
        za, zb = self.encode([a, b])
        return self.decode(interpolation_points(za, zb, steps, method), strategy=strategy, **kwargs)


def count_argument(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum`` (numpy integers welcome); a float, bool or string is an
    InputError naming the argument."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be an integer, got {value!r} ({type(value).__name__})") from None
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_repetition_controls(repetition_penalty: float, no_repeat_ngram_size: int) -> None:
    """``InputError`` naming the argument unless ``repetition_penalty`` >= 1 and ``no_repeat_ngram_size`` is an
    integer >= 0."""
    if isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, numbers.Real) or not (
        1.0 <= repetition_penalty < math.inf
    ):
        raise InputError(f"repetition_penalty must be a finite number >= 1 (1.0: off), got {repetition_penalty!r}")
    if isinstance(no_repeat_ngram_size, bool) or not isinstance(no_repeat_ngram_size, numbers.Integral) or (
        no_repeat_ngram_size < 0
    ):
        raise InputError(f"no_repeat_ngram_size must be an integer >= 0 (0: off), got {no_repeat_ngram_size!r}")


def repetition_controls(
    logits: torch.Tensor, history: torch.Tensor, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0
) -> torch.Tensor:
    """Logits (N, V) of the next token, adjusted for what each row's sequence ``history`` (N, t) already holds:
    ``repetition_penalty`` divides the positive logits and multiplies the negative ones of every token in the
    row's history (once, however often it occurs), and ``no_repeat_ngram_size`` n sets to -inf every token that
    would complete an n-gram already in the row. The same values as Hugging Face's
    ``RepetitionPenaltyLogitsProcessor`` and ``NoRepeatNGramLogitsProcessor`` given ``history`` as input ids;
    whole-batch tensor operations, no loop over rows or the vocabulary. Returns a new tensor."""
    n, t = history.shape
    vocab = logits.size(-1)
    if t == 0 or (repetition_penalty == 1.0 and (no_repeat_ngram_size == 0 or t < no_repeat_ngram_size)):
        return logits
    if repetition_penalty != 1.0:
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, history, True)
        penalised = torch.where(logits < 0, logits * repetition_penalty, logits / repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    size = no_repeat_ngram_size
    if size and t >= size:
        grams = history.unfold(1, size, 1)  # (N, t - size + 1, size): every n-gram of each row
        last = history[:, t - size + 1 :]  # (N, size - 1): the prefix the next token would extend
        match = (grams[:, :, :-1] == last.unsqueeze(1)).all(-1)  # n-grams that begin with that prefix
        # the tokens that complete them; non-matches go to a spare column that is dropped
        ends = torch.where(match, grams[:, :, -1], torch.full_like(grams[:, :, -1], vocab))
        banned = torch.zeros((n, vocab + 1), dtype=torch.bool, device=logits.device).scatter_(1, ends, True)
        logits = logits.masked_fill(banned[:, :vocab], -torch.inf)
    return logits


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One token per row of (N, V) logits from softmax(logits / temperature), after top-k and nucleus (top-p)
    filtering. Drawn by inverting the CDF with uniforms from ``generator`` (on its own device), so a CPU generator
    gives the same tokens whatever device the logits are on, and a single surviving token is always chosen."""
    logits = logits.float() / temperature
    vocab = logits.size(-1)
    if 0 < top_k < vocab:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        outside = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(outside, -torch.inf))
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)
    device = generator.device if generator is not None else logits.device
    uniform = torch.rand((logits.size(0), 1), generator=generator, device=device).to(logits.device)
    # the first token whose CDF exceeds u: tokens of zero probability never are (their CDF equals the one before)
    return (cdf <= uniform * cdf[:, -1:]).sum(-1).clamp_(max=vocab - 1)


def load_pretrained(folder: "str | Path", device: "str | torch.device | None" = None) -> VAEModel:
    """Load any model folder written by ``save_pretrained``; the class comes from its config's ``model_type``."""
    return VAEModel.from_pretrained(folder, device=device)
