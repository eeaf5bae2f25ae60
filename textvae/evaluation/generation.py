"""Quality and diversity of generated text: reconstruction BLEU (sacrebleu corpus BLEU), and self-BLEU and
distinct-n (Li et al. 2016) of sentences decoded from prior samples."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Optional, Sequence

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.metrics.helpers import extract_all_word_ngrams



def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """sacrebleu corpus BLEU (0-100) of hypotheses against one reference each. Corpora here are tokenized text
    (spaces around punctuation), so sacrebleu's warning about tokenized input is silenced."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize, force=True).score)


def model_view(model, sentences: Sequence[str]) -> list[str]:
    """Sentences as the model sees them: tokenized under its rules and decoded back (unknown words become the
    unknown token, over-long sentences are cut), the fair reference for its reconstructions."""
    return model.tokenizer.batch_decode(model.token_ids(sentences))


def reconstructions(model, sentences: Sequence[str], strategy: str = "greedy", **decode_kwargs) -> list[str]:
    """Decode each sentence's posterior mean (``model.reconstruct``); ``decode_kwargs`` go to ``generate``."""
    return model.reconstruct(list(sentences), strategy=strategy, **decode_kwargs)


def reconstruction_bleu(
    model, sentences: Sequence[str], strategy: str = "greedy", tokenize: str = "13a", **decode_kwargs
) -> float:
    """Corpus BLEU of the reconstructions against the sentences as the model sees them (``model_view``)."""
    return corpus_bleu(reconstructions(model, sentences, strategy, **decode_kwargs), model_view(model, sentences),
                       tokenize)


def distinct_n(sentences: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams in ``sentences`` (whitespace tokens), pooled over the whole set."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grams: Counter = Counter()
    for sentence in sentences:
        tokens = sentence.split()
        grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def self_bleu(
    sentences: Sequence[str], max_order: int = 4, tokenize: str = "13a", average: str = "corpus"
) -> float:
    """BLEU (0-100) of each sentence against all the others as references, so higher means less diverse
    (Zhu et al. 2018). ``average="corpus"`` pools the n-gram statistics (sacrebleu ``corpus_bleu``);
    ``"sentence"`` averages sacrebleu ``sentence_bleu``. The result equals those sacrebleu calls with N - 1
    references per sentence, computed in O(N) instead of O(N^2): for every n-gram it keeps the two largest
    counts and their owner, the leave-one-out maximum that reference clipping needs."""
    if average not in ("corpus", "sentence"):
        raise ValueError(f"average must be 'corpus' or 'sentence', got {average!r}")
    if len(sentences) < 2:
        raise ValueError("self-BLEU needs at least two sentences")
    bleu = BLEU(tokenize=tokenize, max_ngram_order=max_order, effective_order=average == "sentence")
    counts, lengths = [], []
    for sentence in sentences:
        grams, length = extract_all_word_ngrams(bleu.tokenizer(sentence.rstrip()), 1, max_order)
        counts.append(grams)
        lengths.append(length)
    best: dict = {}  # n-gram -> [largest count, its owner, second largest count]
    for owner, grams in enumerate(counts):
        for gram, c in grams.items():
            top = best.setdefault(gram, [0, -1, 0])
            if c > top[0]:
                top[2], top[0], top[1] = top[0], c, owner
            elif c > top[2]:
                top[2] = c
    length_counts = Counter(lengths)
    rows = []
    for i, grams in enumerate(counts):
        correct, total = [0] * max_order, [0] * max_order
        for gram, c in grams.items():
            top = best[gram]
            others = top[2] if top[1] == i else top[0]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, others)
        rows.append((correct, total, lengths[i], _closest_other_length(lengths[i], length_counts)))
    if average == "sentence":
        scores = [_score(bleu, *row) for row in rows]
        return sum(scores) / len(scores)
    correct = [sum(r[0][k] for r in rows) for k in range(max_order)]
    total = [sum(r[1][k] for r in rows) for k in range(max_order)]
    return _score(bleu, correct, total, sum(r[2] for r in rows), sum(r[3] for r in rows))


def _closest_other_length(length: int, length_counts: Counter) -> int:
    """sacrebleu's reference length: the closest among the other sentences' lengths, the shorter on a tie."""
    candidates = [n for n, count in length_counts.items() if count - (n == length) > 0]
    return min(candidates, key=lambda n: (abs(n - length), n))


def _score(bleu: BLEU, correct, total, sys_len: int, ref_len: int) -> float:
    return float(
        BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method=bleu.smooth_method,
                          smooth_value=bleu.smooth_value, effective_order=bleu.effective_order,
                          max_ngram_order=bleu.max_ngram_order).score
    )


def diversity(sentences: Sequence[str], grammar: Optional[Callable[[str], bool]] = None) -> dict:
    """distinct-1/2, corpus self-BLEU, unique fraction and mean length of a set of generated sentences; with a
    ``grammar`` callback (e.g. ``GRAMMAR.accepts``), the fraction it accepts."""
    metrics = {
        "distinct_1": distinct_n(sentences, 1),
        "distinct_2": distinct_n(sentences, 2),
        "self_bleu": self_bleu(sentences) if len(sentences) > 1 else float("nan"),
        "unique_fraction": len(set(sentences)) / len(sentences),
        "mean_length": sum(len(s.split()) for s in sentences) / len(sentences),
    }
    if grammar is not None:
        metrics["grammatical_fraction"] = sum(bool(grammar(s)) for s in sentences) / len(sentences)
    return metrics


def prior_sample_metrics(
    model,
    num_samples: int = 1000,
    strategy: str = "greedy",
    seed: int = 0,
    grammar: Optional[Callable[[str], bool]] = None,
    **decode_kwargs,
) -> tuple[dict, list[str]]:
    """Decode ``num_samples`` latents from the prior and measure their diversity (``diversity``); returns the
    metrics and the sentences. ``decode_kwargs`` go to ``generate`` (temperature, top_k, top_p, beam_size...)."""
    samples = model.sample(num_samples, strategy=strategy, seed=seed, **decode_kwargs)
    return diversity(samples, grammar), samples
