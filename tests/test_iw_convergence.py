"""The IW-NLL's convergence report (issue 14, item 8): the estimate at k = 1, 10, 100, K from the same samples, the
effective sample size and Pareto k-hat, checked against direct computations and against the exact likelihood of a
one-dimensional latent (quadrature) when q(z|x) is the right width and when it is too narrow."""

import math

import numpy as np
import pytest
import torch

from textvae import TextVAE
from textvae.evaluation import effective_sample_size, importance_weighted_estimate, pareto_k
from textvae.evaluation.batches import eval_batches
from textvae.evaluation.likelihood import evaluation_context, importance_weighted_nll, iw_log_weights

from .conftest import SENTENCES, tiny_model_config
from .test_likelihood import exact_nll, ignoring_z


def one_dimensional(tokenizer, sigma: float, mu: float = 0.0):
    """A VAE with a 1-d latent that the decoder reads strongly, and q(z|x) = N(mu, sigma^2) for every sentence."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(latent={"size": 1}), tokenizer).eval()
    with torch.no_grad():
        model.decoder.z_to_state.weight.mul_(3)
        model.decoder.rnn.weight_ih_l0[:, 8:].mul_(3)
        model.latent.proj.weight.zero_()
        model.latent.proj.bias.copy_(torch.tensor([mu, 2 * math.log(sigma)]))
    return model


def quadrature_nll(model, sentences):
    """-log p(x) = -log integral p(x|z) N(z; 0, 1) dz on a grid of 4,001 points over [-10, 10]."""
    ids, lengths = model.tokenize(sentences)
    z = torch.linspace(-10, 10, 4001)
    with torch.no_grad():
        log_px_z = model.log_prob_given_z(ids, lengths, z.view(-1, 1, 1).expand(-1, len(sentences), 1)).double()
    log_pz = -0.5 * z.double() ** 2 - 0.5 * math.log(2 * math.pi)
    return -(torch.logsumexp(log_px_z + log_pz[:, None], 0) + math.log(float(z[1] - z[0])))


def test_each_count_is_the_estimate_from_the_first_k_of_the_same_samples(tokenizer):
    model = one_dimensional(tokenizer, sigma=0.5)
    estimate = importance_weighted_estimate(model, SENTENCES, num_samples=120, batch_size=64, sample_chunk=40, seed=3)
    assert sorted(estimate.nll_by_samples) == [1, 10, 100, 120]
    (batch,) = eval_batches(model, SENTENCES, 64)
    with evaluation_context(model, 3):
        log_w = iw_log_weights(model, batch.input_ids, batch.lengths, 120, 40).double()
    order = batch.index.argsort()  # rows back in input order
    for k in (1, 10, 100, 120):
        direct = -(torch.logsumexp(log_w[:k], 0) - math.log(k))[order]
        assert torch.allclose(estimate.nll_by_samples[k], direct, atol=1e-9), k
    ess = (log_w.exp().sum(0) ** 2 / (2 * log_w).exp().sum(0))[order]
    assert torch.allclose(estimate.ess, ess, rtol=1e-9)
    assert torch.equal(estimate.nll, estimate.nll_by_samples[120])
    assert torch.allclose(estimate.nll, importance_weighted_nll(model, SENTENCES, 120, 64, 40, seed=3), atol=1e-12)


def test_equal_weights_give_every_count_the_exact_nll_and_full_effective_size(tokenizer):
    model = ignoring_z(tokenizer, mu=0.0, sigma=1.0)  # q = p and the decoder ignores z: every weight is p(x)
    estimate = importance_weighted_estimate(model, SENTENCES, num_samples=50, seed=0)
    reference = exact_nll(model, SENTENCES)
    for k, nll in estimate.nll_by_samples.items():
        assert torch.allclose(nll, reference, atol=1e-4), k
    assert torch.allclose(estimate.ess, torch.full((len(SENTENCES),), 50.0, dtype=torch.float64), rtol=1e-6)
    assert estimate.unreliable_fraction() == 0.0


def test_a_well_sized_q_matches_quadrature_and_a_narrow_one_is_flagged(tokenizer):
    good, narrow = one_dimensional(tokenizer, sigma=1.0), one_dimensional(tokenizer, sigma=0.15, mu=0.5)
    truth = quadrature_nll(good, SENTENCES)  # the prior and decoder are the same in both: only q differs
    assert torch.allclose(truth, quadrature_nll(narrow, SENTENCES), atol=1e-9)
    fine = importance_weighted_estimate(good, SENTENCES, num_samples=500, seed=0)
    off = importance_weighted_estimate(narrow, SENTENCES, num_samples=500, seed=0)
    assert (fine.nll - truth).abs().max() < 0.06
    assert (off.nll - truth).mean() > 0.3  # K = 500 is far from enough with this q...
    assert fine.unreliable_fraction() == 0.0 and off.unreliable_fraction() >= 0.75  # ...and k-hat says so
    assert fine.ess.mean() > 400 and off.ess.mean() < 50
    report = off.convergence()
    assert list(report["nll_by_samples"]) == ["1", "10", "100", "500"] and report["unreliable_fraction"] >= 0.75


def test_effective_sample_size_on_fixed_weights():
    weights = torch.tensor([[2.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # columns: (2, 1, 1) and (1, 1, 0)
    ess = effective_sample_size(weights.log())
    assert torch.allclose(ess, torch.tensor([16 / 6, 2.0], dtype=torch.float64))


def test_pareto_k_recovers_the_tail_index_of_pareto_weights():
    rng = np.random.default_rng(0)
    for shape in (0.2, 0.5, 0.9):
        # generalised Pareto weights with shape xi have tail index xi; 20,000 draws, ten independent columns
        u = rng.random((20000, 10))
        log_w = torch.from_numpy(np.log(((1 - u) ** -shape - 1) / shape))
        k_hat = pareto_k(log_w)
        assert k_hat.shape == (10,)
        assert abs(float(k_hat.mean()) - shape) < 0.05, (shape, k_hat)
    normal = pareto_k(torch.from_numpy(rng.standard_normal((1000, 4))))  # log-normal weights: light tail
    assert torch.all(normal < 0.5)


def test_pareto_k_of_degenerate_weights():
    assert pareto_k(torch.zeros(100, 1)).item() == -math.inf  # all equal: no tail, every sample counts alike
    spike = torch.full((100, 1), -50.0)
    spike[7] = 0.0
    assert pareto_k(spike).item() == math.inf  # one sample carries the estimate
    assert math.isnan(pareto_k(torch.zeros(3, 1)).item())
