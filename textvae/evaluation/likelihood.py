"""Likelihood of held-out sentences: the importance-weighted bound on log p(x), perplexity, and the ELBO's parts.

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

(Burda et al. 2016; K = 500 in He et al. 2019, Li et al. 2019, Optimus). Perplexity comes in two units, both
counting one end of sentence per sentence:

    per token: exp(sum NLL / sum(tokens + 1))   tokens as the model's tokenizer splits the sentence
    per word:  exp(sum NLL / sum(words + 1))    words = whitespace-separated words of the sentence's text

with the exponent capped at ``PERPLEXITY_CAP`` nats (``perplexity_from_nll``, the one place perplexity is computed:
here, in validation during training and in the dialogue metrics).

Only the per-word figure compares models with different tokenizers (word, BPE, SentencePiece) on one corpus: the
NLL of a sentence is the same quantity whatever the units, the number of tokens is not. For a word-level model of a
whitespace-tokenized corpus such as PTB the two are equal. Everything goes through the ``Latent`` interface
(``rsample``, ``log_q``, ``log_p``, ``kl_per_dim``) and ``model.log_prob_given_z`` with a sample dimension, so any
bottleneck that implements it (Gaussian, Gumbel/categorical, joint) is evaluated the same way.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..models.base import evaluating
from .batches import EvalBatch, EvalData, eval_batches, gather_rows, num_sentences
from .importance import PARETO_K_RELIABLE, effective_sample_size, pareto_k

PERPLEXITY_CAP = 50.0
"""Most nats per unit ``perplexity_from_nll`` exponentiates: a mean NLL above it reads exp(50) ~ 5.2e21, a number
that says "broken" and still fits a log line, where ``math.exp`` would overflow past 709 nats. A NaN stays NaN."""


@contextlib.contextmanager
def evaluation_context(model, seed: Optional[int] = None):
    """``evaluating(model)`` (eval mode, the previous mode restored after) with no gradients; with ``seed``, a
    private RNG stream that leaves the global one as it was (so evaluation inside training does not change the
    run's randomness)."""
    devices = [model.device] if seed is not None and model.device.type == "cuda" else []
    with evaluating(model), torch.no_grad(), torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def default_max_tokens(device: torch.device) -> int:
    """Tokens (sentences x samples x positions) per decoder call. On a GPU it bounds the output layer's logits
    (``fused.EVAL_BLOCK_TOKENS`` at a time) and the decoder's states; on a CPU, where the output layer works in
    cache-sized chunks (``fused._evaluation_block``), it bounds the hidden states (32,768 x 256 floats = 34 MB) and
    sets how many samples share one pass of the recurrence (``modules.sample_rnn``)."""
    return 65536 if device.type == "cuda" else 32768


def _sample_chunk(batch: EvalBatch, num_samples: int, sample_chunk: Optional[int], max_tokens: int) -> int:
    if sample_chunk is not None:
        if sample_chunk < 1:
            raise ValueError(f"sample_chunk must be at least 1, got {sample_chunk}")
        return min(sample_chunk, num_samples)
    tokens_per_sample = int(batch.lengths.sum()) - batch.size  # predicted tokens, words + <eos>
    return max(1, min(num_samples, max_tokens // max(tokens_per_sample, 1)))


def iw_log_weights(
    model, input_ids: torch.Tensor, lengths: torch.Tensor, num_samples: int, sample_chunk: int
) -> torch.Tensor:
    """Log importance weights of the IW bound on log p(x): log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for
    ``num_samples`` z_k ~ q(z|x): (K, B). Samples are drawn ``sample_chunk`` at a time, so one decoder call sees
    (sample_chunk * B) sentences."""
    latent = model.latent
    q = model.posterior(input_ids, lengths)
    chunks = []
    for start in range(0, num_samples, sample_chunk):
        s = min(sample_chunk, num_samples - start)
        z = latent.rsample(q, num_samples=s)  # (s, B, D)
        log_w = model.log_prob_given_z(input_ids, lengths, z) + latent.log_p(z) - latent.log_q(q, z)
        chunks.append(log_w.float())
    return torch.cat(chunks)


def image_iw_nll(model, images, num_samples: int = 500, batch_size: int = 32, max_pixels: int = 2**22,
                 seed: Optional[int] = None) -> torch.Tensor:
    """-log p(x) per image (N,), in nats, float64 on the CPU: the importance-weighted bound of an image model
    (``models.image_vae``) with ``num_samples`` samples from q(z|x), ``iw_log_weights`` as for sentences. Samples
    are drawn so one decoder call holds about ``max_pixels`` pixel values (1,024 images of 64 x 64)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    images = model.as_images(images)
    chunk = max(1, min(num_samples, max_pixels // (batch_size * images[0].numel())))
    nll = []
    with evaluation_context(model, seed):
        for start in range(0, images.size(0), batch_size):
            log_w = iw_log_weights(model, images[start : start + batch_size], None, num_samples, chunk)
            nll.append(-iw_log_likelihood(log_w).cpu())
    return torch.cat(nll)


def iw_log_likelihood(log_weights: torch.Tensor) -> torch.Tensor:
    """The importance-weighted estimate log p(x) ~= logsumexp_k log w_k - log K from log weights (K, ...) -> (...),
    in float64 (Burda et al. 2016); the weights are any model's (``iw_log_weights``, a CVAE's
    ``response_iw_log_weights``)."""
    return torch.logsumexp(log_weights.double(), dim=0) - math.log(log_weights.size(0))


CONVERGENCE_SAMPLES = (1, 10, 100)
"""Sample counts, besides K itself, at which ``importance_weighted_estimate`` reports the estimate."""


def convergence_counts(num_samples: int, counts: Sequence[int] = CONVERGENCE_SAMPLES) -> list[int]:
    """The sample counts the convergence report uses: ``counts`` below ``num_samples``, then ``num_samples``."""
    return sorted({k for k in counts if 1 <= k < num_samples} | {num_samples})


@dataclass
class IWEstimate:
    """The importance-weighted NLL of N sentences and how far to trust it, all from the same K samples: ``nll``
    (N,) at K; ``nll_by_samples`` {k: (N,)} the estimate from the first k samples (k = 1, 10, 100, K; k = 1 is a
    single-sample ELBO estimate); ``ess`` (N,) the effective sample size of the K weights; ``pareto_k`` (N,) the
    Pareto k-hat of the weights (``evaluation.importance``: above 0.7 the sentence's estimate is unreliable).

    Why: the estimate approaches log p(x) from below as K grows, slowly when q(z|x) is narrower than the posterior,
    and one number cannot say whether K was enough; a still-falling ``nll_by_samples``, a small ESS and a k-hat
    above 0.7 can."""

    nll: torch.Tensor
    nll_by_samples: dict[int, torch.Tensor]
    ess: torch.Tensor
    pareto_k: torch.Tensor

    @property
    def num_samples(self) -> int:
        return max(self.nll_by_samples)

    def unreliable_fraction(self) -> float:
        """The fraction of sentences whose weights have k-hat above ``PARETO_K_RELIABLE``."""
        return float((self.pareto_k > PARETO_K_RELIABLE).double().mean())

    def convergence(self) -> dict:
        """JSON-ready figures: mean NLL per sample count, ESS mean / median / min, k-hat median and max, and the
        fraction of sentences above k-hat 0.7."""
        ess, k_hat = self.ess.double(), self.pareto_k.double()
        return {
            "nll_by_samples": {str(k): float(v.double().mean()) for k, v in sorted(self.nll_by_samples.items())},
            "ess_mean": float(ess.mean()),
            "ess_median": float(ess.median()),
            "ess_min": float(ess.min()),
            "pareto_k_median": float(k_hat.median()),
            "pareto_k_max": float(k_hat.max()),
            "unreliable_fraction": self.unreliable_fraction(),
            "pareto_k_threshold": PARETO_K_RELIABLE,
        }

    def describe(self) -> str:
        """One line: the mean NLL at each sample count, the ESS and the share of unreliable sentences."""
        figures = self.convergence()
        path = ", ".join(f"K={k} {v:.3f}" for k, v in figures["nll_by_samples"].items())
        return (f"IW-NLL by samples: {path}; effective sample size mean {figures['ess_mean']:.1f}, median "
                f"{figures['ess_median']:.1f} of {self.num_samples}; Pareto k-hat median "
                f"{figures['pareto_k_median']:.2f}, above {PARETO_K_RELIABLE} for "
                f"{figures['unreliable_fraction']:.1%} of sentences")


def importance_weighted_estimate(
    model,
    sentences: EvalData,
    num_samples: int = 500,
    batch_size: int = 16,
    sample_chunk: Optional[int] = None,
    max_tokens: Optional[int] = None,
    seed: Optional[int] = None,
    progress: Optional[bool] = None,
    counts: Sequence[int] = CONVERGENCE_SAMPLES,
    diagnose: bool = True,
) -> IWEstimate:
    """-log p(x) per sentence, in nats, estimated with ``num_samples`` importance samples from q(z|x), with its
    convergence in the number of samples (``IWEstimate``; ``counts``: the sample counts reported besides K;
    ``diagnose=False`` skips the Pareto fit, about 0.2 ms a sentence, leaving ``pareto_k`` NaN).

    ``sentences``: a list of strings or pre-tokenized batches (see ``evaluation.batches``). Sentences are sorted
    by length and batched ``batch_size`` at a time (few sentences of near-equal length, many samples of each:
    the LSTM runs over little padding); samples are drawn in chunks so each decoder call holds about
    ``max_tokens`` tokens (``sample_chunk`` fixes the chunk instead). ``progress``: a tqdm bar (None: when on a
    terminal). ``seed``: reproducible samples without touching the global RNG. Results are float64, on the CPU.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    ks = convergence_counts(num_samples, counts)
    batches = eval_batches(model, sentences, batch_size)
    max_tokens = max_tokens or default_max_tokens(model.device)
    by_k: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    ess, k_hat = [], []
    bar = tqdm(total=num_sentences(batches), desc=f"IW-NLL (K={num_samples})", unit="sent",
               disable=None if progress is None else not progress, leave=False)
    with evaluation_context(model, seed), bar:
        for batch in batches:
            chunk = _sample_chunk(batch, num_samples, sample_chunk, max_tokens)
            batch = batch.to(model.device)
            log_w = iw_log_weights(model, batch.input_ids, batch.lengths, num_samples, chunk).cpu()
            for k in ks:
                by_k[k].append(-iw_log_likelihood(log_w[:k]))
            ess.append(effective_sample_size(log_w))
            k_hat.append(pareto_k(log_w) if diagnose else torch.full((batch.size,), math.nan, dtype=torch.float64))
            bar.update(batch.size)
    nll_by_samples = {k: gather_rows(values, batches) for k, values in by_k.items()}
    return IWEstimate(nll=nll_by_samples[num_samples], nll_by_samples=nll_by_samples, ess=gather_rows(ess, batches),
                      pareto_k=gather_rows(k_hat, batches))


def importance_weighted_nll(
    model,
    sentences: EvalData,
    num_samples: int = 500,
    batch_size: int = 16,
    sample_chunk: Optional[int] = None,
    max_tokens: Optional[int] = None,
    seed: Optional[int] = None,
    progress: Optional[bool] = None,
) -> torch.Tensor:
    """-log p(x) per sentence (N,), in nats, float64 on the CPU: ``importance_weighted_estimate(...).nll`` (which
    see for the arguments; it also says how far the estimate had converged in K)."""
    return importance_weighted_estimate(
        model, sentences, num_samples, batch_size, sample_chunk, max_tokens, seed, progress, counts=(), diagnose=False
    ).nll


def predicted_tokens(model, sentences: EvalData, batch_size: int = 256) -> torch.Tensor:
    """Tokens each sentence's likelihood predicts (N,): its tokens plus one <eos>."""
    batches = eval_batches(model, sentences, batch_size)
    return gather_rows([b.lengths - 1 for b in batches], batches)


def predicted_words(model, sentences: EvalData, batch_size: int = 256) -> torch.Tensor:
    """Whitespace-separated words of each sentence's text plus one end of sentence (N,), whatever the tokenizer:
    the denominator of per-word perplexity. Batches of ids carry no text, so theirs is the tokenizer's decoding."""
    if _is_text(sentences):
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        return torch.tensor([len(text.split()) + 1 for text in texts])
    return _decoded_words(model, eval_batches(model, sentences, batch_size))


def _is_text(data: EvalData) -> bool:
    return isinstance(data, str) or (isinstance(data, (list, tuple)) and bool(data) and isinstance(data[0], str))


def _decoded_words(model, batches: list[EvalBatch]) -> torch.Tensor:
    counts = []
    for b in batches:
        rows = [ids[1 : int(n) - 1] for ids, n in zip(b.input_ids.tolist(), b.lengths)]  # drop <bos> and <eos>
        counts.append(torch.tensor([len(text.split()) + 1 for text in model.tokenizer.batch_decode(rows)]))
    return gather_rows(counts, batches)


def perplexity_from_nll(nll: "torch.Tensor | float", counts: "torch.Tensor | float") -> float:
    """exp(sum NLL / sum counts), the exponent capped at ``PERPLEXITY_CAP``: per token with ``predicted_tokens``,
    per word with ``predicted_words`` (both count one end of sentence per sentence). Each argument is a tensor of
    per-sentence values or their sum as a number."""
    total = float(nll.double().sum()) if isinstance(nll, torch.Tensor) else float(nll)
    count = float(counts.sum()) if isinstance(counts, torch.Tensor) else float(counts)
    per_unit = total / count
    return math.nan if math.isnan(per_unit) else math.exp(min(PERPLEXITY_CAP, per_unit))


PER = ("token", "word")


def perplexity(model, sentences: EvalData, num_samples: int = 500, per: str = "token", **kwargs) -> float:
    """Perplexity from the importance-weighted NLL, ``per`` token (exp(sum NLL / sum(tokens + 1))) or ``per`` word
    (exp(sum NLL / sum(words + 1)), comparable across tokenizers); ``kwargs`` go to ``importance_weighted_nll``."""
    if per not in PER:
        raise ValueError(f"per must be 'token' or 'word', got {per!r}")
    nll = importance_weighted_nll(model, sentences, num_samples=num_samples, **kwargs)
    count = predicted_tokens if per == "token" else predicted_words
    return perplexity_from_nll(nll, count(model, sentences, batch_size=kwargs.get("batch_size", 256)))


def perplexities(nll: torch.Tensor, num_tokens: torch.Tensor, num_words: torch.Tensor) -> dict:
    """The figures of one NLL estimate (N,): ``nll`` (mean per sentence), ``ppl_per_token``, ``ppl_per_word``,
    ``num_tokens`` and ``num_words`` (each with one end of sentence per sentence)."""
    return {
        "nll": float(nll.double().mean()),
        "ppl_per_token": perplexity_from_nll(nll, num_tokens),
        "ppl_per_word": perplexity_from_nll(nll, num_words),
        "num_tokens": int(num_tokens.sum()),
        "num_words": int(num_words.sum()),
    }


@dataclass
class ELBOTerms:
    """Per-sentence ELBO terms in nats. Shapes: ``rec``, ``kl``: (N,); ``kl_per_dim``: (N, D); ``num_tokens``,
    ``num_words`` (N,): tokens and whitespace words, each plus one end of sentence."""

    rec: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    num_tokens: torch.Tensor
    num_words: Optional[torch.Tensor] = None

    @property
    def elbo(self) -> torch.Tensor:
        return -(self.rec + self.kl)

    @property
    def nll_bound(self) -> torch.Tensor:
        """-ELBO, the upper bound on -log p(x) that the IW estimate tightens."""
        return self.rec + self.kl

    def perplexity_bound(self, per: str = "token") -> float:
        """exp(sum -ELBO / sum count), an upper bound on the perplexity ``per`` token or word."""
        if per not in PER:
            raise ValueError(f"per must be 'token' or 'word', got {per!r}")
        if per == "word" and self.num_words is None:
            raise ValueError("these ELBO terms carry no word counts")
        return perplexity_from_nll(self.nll_bound, self.num_tokens if per == "token" else self.num_words)


def elbo_terms(
    model,
    sentences: EvalData,
    num_samples: int = 1,
    batch_size: int = 64,
    seed: Optional[int] = None,
    progress: Optional[bool] = None,
) -> ELBOTerms:
    """Reconstruction -E_q[log p(x|z)] (a ``num_samples``-sample average; 1 is the usual single-sample ELBO) and the
    analytic KL(q(z|x) || p(z)) per sentence, in eval mode (no dropout, no word dropout, KL weight 1)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    batches = eval_batches(model, sentences, batch_size)
    recs, kls = [], []
    bar = tqdm(total=num_sentences(batches), desc="ELBO", unit="sent",
               disable=None if progress is None else not progress, leave=False)
    with evaluation_context(model, seed), bar:
        for batch in batches:
            batch = batch.to(model.device)
            q = model.posterior(batch.input_ids, batch.lengths)
            z = model.latent.rsample(q, num_samples=num_samples)  # (S, B, D)
            recs.append(-model.log_prob_given_z(batch.input_ids, batch.lengths, z).double().mean(0))
            kls.append(model.latent.kl_per_dim(q).double())
            bar.update(batch.size)
    kl_per_dim = gather_rows(kls, batches)
    return ELBOTerms(
        rec=gather_rows(recs, batches),
        kl=kl_per_dim.sum(-1),
        kl_per_dim=kl_per_dim,
        num_tokens=gather_rows([b.lengths - 1 for b in batches], batches),
        num_words=predicted_words(model, sentences) if _is_text(sentences) else _decoded_words(model, batches),
    )


@dataclass
class ForwardELBO:
    """The ELBO of an evaluation set as the model's own loss computes it: sums in nats of ``rec`` and ``kl`` over
    ``num_sentences`` sentences (or responses, or turns: whatever the model's batches score), ``num_tokens``
    predicted tokens (words + one end each), and ``means`` (N, D), the posterior means (``Latent.mode``)."""

    rec: float
    kl: float
    num_tokens: float
    num_sentences: int
    means: torch.Tensor
    sums: dict = field(default_factory=dict)  # name -> [numerator, denominator] of a model's own figures

    @property
    def extras(self) -> dict[str, float]:
        """The model's own validation figures (``figure_sums`` of its outputs), averaged over the set."""
        return {name: num / den for name, (num, den) in self.sums.items() if den > 0}

    @property
    def elbo(self) -> float:
        """Mean ELBO per sentence, -(rec + kl) / N."""
        return -(self.rec + self.kl) / self.num_sentences

    def perplexity_bound(self) -> float:
        """exp(sum -ELBO / sum tokens): an upper bound on the perplexity per token."""
        return perplexity_from_nll(self.rec + self.kl, self.num_tokens)


def forward_elbo(model, batches: Iterable[dict]) -> ForwardELBO:
    """``model.evaluate`` (the forward pass in eval mode with the final KL weights) summed over ``batches``, the
    model's own batch dicts (a DataLoader of sentences or dialogues): the ELBO of any model, the figure training
    optimises. ``elbo_terms`` instead rebuilds the terms from ``Latent`` and ``log_prob_given_z``, per sentence."""
    device = model.device
    rec = kl = tokens = sentences = 0.0
    means, sums = [], {}
    with evaluation_context(model):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model.evaluate(batch)
            rec += float(out.rec.sum())
            kl += float(out.kl.sum())
            tokens += float(out.num_tokens)
            sentences += out.rec.numel()
            if out.z_mean is None:  # a model that does not report its posterior means: one more encoder pass
                out.z_mean = model.latent.mean(model.posterior(batch["input_ids"], batch["lengths"]))
            means.append(out.z_mean.float().cpu())
            for name, (num, den) in out.figure_sums().items():
                total = sums.setdefault(name, [0.0, 0.0])
                total[0] += float(num)
                total[1] += float(den)
    return ForwardELBO(rec=rec, kl=kl, num_tokens=tokens, num_sentences=int(sentences), means=torch.cat(means),
                       sums=sums)
