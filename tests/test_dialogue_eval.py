import math

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textvae.data.dialogue import collate_dialogues
from textvae.evaluation.dialogue import bleu_precision_recall, distinct_within_and_over, evaluate_responses, smoothed_bleu
from textvae.evaluation.likelihood import iw_log_likelihood
from textvae.models import BaseVAE

from .test_cvae import build, dialogue_data, tiny_cvae_config  # noqa: F401  (the module-scoped fixture)


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


@pytest.mark.parametrize("model_type", ["cvae", "vhred"])
def test_iw_nll_is_exact_when_prior_equals_posterior_and_the_decoder_ignores_z(dialogue_data, model_type):
    torch.manual_seed(0)
    config = tiny_cvae_config()
    config.model_type = model_type
    model = BaseVAE.from_config(config, dialogue_data.tokenizer).eval()
    size, c_size, e_size = config.latent.size, model.condition_size, config.decoder.embedding_size
    assert config.decoder.z_mode == "init+concat"  # z enters the initial state and every step's input
    with torch.no_grad():
        bias = torch.linspace(-1.0, 1.0, 2 * size)  # one Gaussian away from N(0, I), whatever x and c
        for layer in (model.latent.proj, model.prior.net[-1]):
            layer.weight.zero_()
            layer.bias.copy_(bias)
        model.decoder.z_to_state.weight[:, c_size : c_size + size] = 0  # the decoder reads [c; z]: z's columns
        model.decoder.rnn.weight_ih_l0[:, e_size + c_size : e_size + c_size + size] = 0
    pairs, _ = dialogue_data.response_pairs("test")
    batch = collate_dialogues(pairs.examples, 0, 1, 2)
    ids, lengths = batch["response_ids"], batch["response_lengths"]
    with torch.no_grad():
        # -log p(x|c) by hand: teacher-forced decoder states from [c; 0], log-softmax of each next token
        c = model.condition(batch)
        hidden = model.decoder(ids[:, :-1], torch.cat([c, torch.zeros(len(c), size)], dim=-1))
        log_probs = torch.log_softmax(model.decoder.output(hidden), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        mask = torch.arange(ids.size(1) - 1)[None, :] < (lengths - 1)[:, None]
        exact = -(log_probs * mask).sum(-1).double()
        log_w = model.response_iw_log_weights(batch, 7)
    assert (log_w - log_w[0]).abs().max() < 1e-5  # every weight is log p(x|c,z) = log p(x|c)
    assert torch.allclose(-iw_log_likelihood(log_w), exact, atol=1e-5, rtol=0)
    metrics, _ = evaluate_responses(model, pairs, num_samples=1, iw_samples=5, batch_size=3)
    assert metrics.nll == pytest.approx(float(exact.mean()), abs=1e-5)
    assert metrics.kl == pytest.approx(0.0, abs=1e-6)
