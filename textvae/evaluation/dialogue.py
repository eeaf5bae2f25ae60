"""Response generation metrics for dialogue CVAEs, as Zhao et al. 2017 (kgCVAE) and Gu et al. 2019 (DialogWAE)
report them: for each test context draw N responses (N = 10), each from its own z ~ p(z|c), and score them
against the one reference.

- BLEU recall: the best sample's score, averaged over contexts; BLEU precision: the mean over samples, averaged
  over contexts; F1 their harmonic mean. Each score is *smoothed sentence-level BLEU* (NLTK ``sentence_bleu``,
  ``SmoothingFunction().method7``, uniform weights over 1- to 3-grams), as in both papers' code. This is NOT
  corpus BLEU: the numbers are not comparable to sacrebleu's corpus figures elsewhere in this package. Method 7
  also scores short exact matches above 1 (1.15 for a 7-token sentence); kept, as the published figures have it.
- distinct-1/2 (Li et al. 2016): distinct n-grams over all n-grams, within each context's N samples (averaged over
  contexts) and over every sample of the test set. (DialogWAE's "intra" figure is per single response instead.)
- KL(q(z|x,c) || p(z|c)) and the importance-weighted NLL of the reference responses, -log p(x|c) with z drawn from
  q(z|x,c) and the prior network as p, and the perplexity it implies (words + <eos>).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from torch.utils.data import Dataset

from ..data.dialogue import collate_dialogues
from .generation import distinct_n
from .likelihood import evaluation_context, iw_log_likelihood, perplexity_from_nll

BLEU_WEIGHTS = (1.0 / 3, 1.0 / 3, 1.0 / 3)


def smoothed_bleu(reference: str, hypothesis: str) -> float:
    """Sentence-level BLEU of whitespace tokens, 1-3 grams, NLTK smoothing method 7; 0 for an empty hypothesis."""
    hyp, ref = hypothesis.split(), reference.split()
    if not hyp or not ref:
        return 0.0
    return float(sentence_bleu([ref], hyp, weights=BLEU_WEIGHTS, smoothing_function=SmoothingFunction().method7))


def bleu_precision_recall(samples: Sequence[Sequence[str]], references: Sequence[str]) -> dict[str, float]:
    """BLEU recall (max over a context's samples), precision (mean over them) and F1, averaged over contexts."""
    if len(samples) != len(references):
        raise ValueError(f"{len(samples)} sample lists but {len(references)} references")
    recall = precision = 0.0
    for hyps, ref in zip(samples, references):
        scores = [smoothed_bleu(ref, h) for h in hyps]
        recall += max(scores)
        precision += sum(scores) / len(scores)
    recall, precision = recall / len(references), precision / len(references)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"bleu_recall": recall, "bleu_precision": precision, "bleu_f1": f1}


def distinct_within_and_over(samples: Sequence[Sequence[str]]) -> dict[str, float]:
    """distinct-1/2 within each context's samples (averaged over contexts) and over all samples pooled."""
    pooled = [s for hyps in samples for s in hyps]
    out = {}
    for n in (1, 2):
        out[f"distinct_{n}_within"] = sum(distinct_n(hyps, n) for hyps in samples) / max(1, len(samples))
        out[f"distinct_{n}_overall"] = distinct_n(pooled, n)
    return out


@dataclass
class DialogueMetrics:
    """What ``evaluate_responses`` measures over a split (see the module docstring)."""

    bleu_recall: float
    bleu_precision: float
    bleu_f1: float
    distinct_1_within: float
    distinct_2_within: float
    distinct_1_overall: float
    distinct_2_overall: float
    kl: float  # nats per response
    nll: float  # importance-weighted, nats per response
    ppl: float  # exp(sum NLL / sum(words + 1))
    contexts: int
    num_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_responses(
    model,
    dataset: Dataset,
    num_samples: int = 10,
    iw_samples: int = 50,
    batch_size: int = 32,
    strategy: str = "greedy",
    limit: Optional[int] = None,
    seed: int = 0,
    **generate_kwargs,
) -> tuple[DialogueMetrics, list[list[str]]]:
    """Score ``num_samples`` responses per example of a ``DialogueDataset`` (the first ``limit`` examples) and
    the references' KL and IW-NLL (``iw_samples`` z each). Returns the metrics and the samples."""
    tok = model.tokenizer
    examples = [dataset[i] for i in range(len(dataset) if limit is None else min(limit, len(dataset)))]
    if not examples:
        raise ValueError("no examples to evaluate")
    samples, references = [], []
    kl = nll = tokens = 0.0
    generator = torch.Generator().manual_seed(seed)
    with evaluation_context(model, seed):
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = {k: v.to(model.device) for k, v in collate_dialogues(chunk, tok.pad_id, tok.bos_id, tok.eos_id).items()}
            samples += model.respond_to_batch(batch, num_samples, strategy, generator, **generate_kwargs)
            references += [tok.decode(e.response) for e in chunk]  # the reference as the model sees it
            kl += float(model.response_kl(batch).sum())
            nll -= float(iw_log_likelihood(model.response_iw_log_weights(batch, iw_samples)).sum())
            tokens += float((batch["response_lengths"] - 1).sum())
    n = len(examples)
    metrics = DialogueMetrics(
        **bleu_precision_recall(samples, references),
        **distinct_within_and_over(samples),
        kl=kl / n,
        nll=nll / n,
        ppl=perplexity_from_nll(nll, tokens),
        contexts=n,
        num_samples=num_samples,
    )
    return metrics, samples
