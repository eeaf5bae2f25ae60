import math

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textvae.evaluation.dialogue import bleu_precision_recall, distinct_within_and_over, evaluate_responses, smoothed_bleu

from .test_cvae import build, dialogue_data  # noqa: F401  (the module-scoped fixture)


def test_smoothed_bleu_is_nltk_method7_over_three_grams():
    ref, hyp = "the cat sat on the mat .", "the cat is on the mat ."
    expected = sentence_bleu([ref.split()], hyp.split(), weights=(1 / 3, 1 / 3, 1 / 3),
                             smoothing_function=SmoothingFunction().method7)
    assert smoothed_bleu(ref, hyp) == pytest.approx(expected)
    assert smoothed_bleu(ref, ref) > 1.0  # method 7 scores exact matches above 1, in the papers' figures too
    assert smoothed_bleu(ref, "") == 0.0


def test_recall_takes_the_best_sample_and_precision_the_mean():
    good, bad = smoothed_bleu("a b c d", "a b c e"), smoothed_bleu("a b c d", "x y z")
    assert good > bad
    scores = bleu_precision_recall([["a b c e", "x y z"]], ["a b c d"])
    assert scores["bleu_recall"] == pytest.approx(good)
    assert scores["bleu_precision"] == pytest.approx((good + bad) / 2)
    p, r = scores["bleu_precision"], scores["bleu_recall"]
    assert scores["bleu_f1"] == pytest.approx(2 * p * r / (p + r))


def test_distinct_within_contexts_and_over_the_set():
    samples = [["a b", "a c"], ["a b", "a c"]]  # each context's samples vary, the two contexts repeat each other
    d = distinct_within_and_over(samples)
    assert d["distinct_1_within"] == pytest.approx(3 / 4) and d["distinct_1_overall"] == pytest.approx(3 / 8)
    assert d["distinct_2_within"] == pytest.approx(1.0) and d["distinct_2_overall"] == pytest.approx(2 / 4)


def test_evaluate_responses_on_a_tiny_model(dialogue_data):
    model = build(dialogue_data, use_act=True)
    metrics, samples = evaluate_responses(model, dialogue_data.datasets["test"], num_samples=3, iw_samples=4,
                                          batch_size=3, limit=5)
    assert metrics.contexts == 5 and [len(s) for s in samples] == [3] * 5
    assert 0.0 <= metrics.bleu_precision <= metrics.bleu_recall
    assert metrics.kl > 0 and metrics.nll > 0 and math.isfinite(metrics.ppl)
    again, _ = evaluate_responses(model, dialogue_data.datasets["test"], num_samples=3, iw_samples=4, batch_size=3, limit=5)
    assert again == metrics  # seeded
    assert model.training  # left as it was
