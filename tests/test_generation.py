import pytest
import sacrebleu

from textvae.data.synthetic import GRAMMAR
from textvae.evaluation.generation import (
    corpus_bleu,
    distinct_n,
    diversity,
    model_view,
    prior_sample_metrics,
    reconstruction_bleu,
    self_bleu,
)

from .conftest import SENTENCES

GENERATED = [
    "the cat sat on the mat .",
    "the cat sat on the mat .",
    "the dog sat on the mat .",
    "a dog ran in the park , quickly .",
    "the bird sang a song",
    "we will eat fish .",
    "did the cat see the dog ?",
    "the the the the",
]



def test_distinct_n_counts_unique_ngrams_over_all_ngrams():
    assert distinct_n(["a b a", "a c"], 1) == pytest.approx(3 / 5)  # a, b, c of a b a a c
    assert distinct_n(["a b a", "a c"], 2) == pytest.approx(3 / 3)  # a b, b a, a c
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["a"], 2) == 0.0


@pytest.mark.parametrize("average", ["corpus", "sentence"])
def test_self_bleu_equals_sacrebleu_with_every_other_sentence_as_a_reference(average):
    n = len(GENERATED)
    others = [[GENERATED[j] for j in range(n) if j != i] for i in range(n)]
    if average == "corpus":
        streams = [[others[i][k] for i in range(n)] for k in range(n - 1)]
        expected = sacrebleu.corpus_bleu(GENERATED, streams).score
    else:
        expected = sum(sacrebleu.sentence_bleu(GENERATED[i], others[i]).score for i in range(n)) / n
    assert self_bleu(GENERATED, average=average) == pytest.approx(expected, abs=1e-9)


def test_self_bleu_extremes():
    assert self_bleu(["a b c d e"] * 3) == pytest.approx(100.0)
    assert self_bleu(["a b c d", "e f g h", "i j k l"]) == 0.0
    with pytest.raises(ValueError, match="at least two"):
        self_bleu(["a b"])


def test_reconstruction_bleu_scores_the_reconstructions_against_the_models_view(tiny_model, monkeypatch):
    view = model_view(tiny_model, SENTENCES + ["the zebra sat ."])
    assert view[-1] == "the <unk> sat ." and view[:-1] == SENTENCES
    outputs = tiny_model.reconstruct(SENTENCES)
    assert reconstruction_bleu(tiny_model, SENTENCES) == pytest.approx(sacrebleu.corpus_bleu(outputs, [SENTENCES]).score)
    monkeypatch.setattr(tiny_model, "reconstruct", lambda s, strategy="greedy", **kw: list(s))
    assert reconstruction_bleu(tiny_model, SENTENCES) == pytest.approx(100.0)
    assert corpus_bleu(["a b c d"], ["w x y z"]) == 0.0


def test_diversity_and_prior_samples(tiny_model):
    metrics = diversity(GENERATED, grammar=lambda s: s.endswith("."))
    assert metrics["unique_fraction"] == 7 / 8 and metrics["grammatical_fraction"] == 5 / 8
    assert metrics["distinct_1"] == distinct_n(GENERATED, 1) and metrics["self_bleu"] == self_bleu(GENERATED)
    prior, samples = prior_sample_metrics(tiny_model, num_samples=20, strategy="sample", seed=0, grammar=GRAMMAR.accepts)
    again, _ = prior_sample_metrics(tiny_model, num_samples=20, strategy="sample", seed=0)
    assert len(samples) == 20 and prior["distinct_2"] == again["distinct_2"]
    assert prior["grammatical_fraction"] == sum(map(GRAMMAR.accepts, samples)) / 20
