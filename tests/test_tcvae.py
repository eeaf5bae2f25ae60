import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from textvae import ConfigError, TextVAE
from textvae.config import ObjectiveConfig
from textvae.objectives import _stratified_sampling_log_weights as _log_importance_weights, tc_decomposition, tcvae_term

from .conftest import SENTENCES, tiny_model_config


def posteriors(batch=64, dims=3, seed=0) -> Normal:
    g = torch.Generator().manual_seed(seed)
    return Normal(torch.randn(batch, dims, generator=g), 0.3 + torch.rand(batch, dims, generator=g))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_terms_sum_to_the_monte_carlo_kl_and_approach_the_closed_form(estimator):
    torch.manual_seed(1)  # not 0: posteriors() draws its means from a generator seeded 0
    q = posteriors(batch=256)
    analytic = kl_divergence(q, Normal(0.0, 1.0)).sum(-1).mean()
    totals = []
    for _ in range(12):
        z = q.rsample()
        parts = tc_decomposition(q, z, dataset_size=1000, estimator=estimator)
        one_sample = q.log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
        assert torch.allclose(parts.mi + parts.tc + parts.dim_kl, one_sample, atol=1e-4)
        totals.append(parts.kl.mean())
    assert torch.stack(totals).mean().item() == pytest.approx(analytic.item(), abs=0.05)


def test_stratified_weights_are_a_distribution_over_the_batch():
    w = _log_importance_weights(7, 100, "cpu", torch.float64).exp()
    assert torch.allclose(w.sum(1), torch.ones(7, dtype=torch.float64))
    assert torch.allclose(w.diagonal(), torch.full((7,), 1 / 100, dtype=torch.float64))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_identical_posteriors_carry_no_information_and_no_correlation(estimator):
    """q(z|x) the same for every x: the aggregate q(z) equals it, so MI = 0 and TC = 0 exactly (both estimators'
    weights sum to 1; Chen et al.'s MWS weights 1/(NM) would report MI = log N and TC = (D - 1) log N here)."""
    q = Normal(torch.tensor([0.5, -1.0]).expand(32, 2), torch.tensor([0.4, 1.2]).expand(32, 2))
    z = q.sample()
    parts = tc_decomposition(q, z, dataset_size=500, estimator=estimator)
    assert torch.allclose(parts.mi, torch.zeros(32), atol=1e-4) and torch.allclose(parts.tc, torch.zeros(32), atol=1e-4)
    dim_kl = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # q(z_d) = q(z_d|x): the whole KL is dimension-wise
    assert torch.allclose(parts.dim_kl, dim_kl, atol=1e-4)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_terms_estimate_mi_tc_and_dimension_wise_kl_with_known_values(estimator):
    """x -> mu ~ N(0, I_D), q(z|x) = N(mu, s^2 I): the aggregate is N(0, (1 + s^2) I), factorised, so
    I(x; z) = D/2 log(1 + 1/s^2), TC = 0 and each dimension's KL(N(0, 1 + s^2) || N(0, 1)) = (s^2 - log(1 + s^2))/2.
    A batch of 3000 posteriors is the data set (N = M); the shifted terms would be off by multiples of log 3000 = 8."""
    torch.manual_seed(3)
    dims, s, n = 2, 1.0, 3000
    q = Normal(torch.randn(n, dims, dtype=torch.float64), torch.full((n, dims), s, dtype=torch.float64))
    parts = tc_decomposition(q, q.sample(), dataset_size=n, estimator=estimator)
    assert parts.mi.mean().item() == pytest.approx(dims / 2 * math.log(1 + 1 / s**2), abs=0.05)  # 0.693
    assert parts.tc.mean().item() == pytest.approx(0.0, abs=0.05)
    assert parts.dim_kl.mean().item() == pytest.approx(dims * (s**2 - math.log(1 + s**2)) / 2, abs=0.05)  # 0.307


def test_total_correlation_sees_dependence_between_dimensions():
    torch.manual_seed(0)
    t = torch.randn(256, 1)
    correlated = Normal(torch.cat([t, t], -1) * 2, torch.full((256, 2), 0.1))  # aggregate on the line z1 = z2
    independent = Normal(torch.randn(256, 2) * 2, torch.full((256, 2), 0.1))
    tc_corr = tc_decomposition(correlated, correlated.sample(), 256, "mss").tc.mean()
    tc_ind = tc_decomposition(independent, independent.sample(), 256, "mss").tc.mean()
    assert tc_corr > 1.0 and tc_ind < 0.5 * tc_corr, (tc_corr, tc_ind)


def test_penalty_weights_each_term():
    parts = tc_decomposition(posteriors(), posteriors().sample(), 100)
    config = ObjectiveConfig(tcvae=True, tc_alpha=2.0, beta=5.0, tc_gamma=0.5, kl_schedule="linear", kl_start=0.0,
                             kl_warmup_steps=100)
    term = tcvae_term(parts, config, step=50)
    expected = 0.5 * (2.0 * parts.mi + 5.0 * parts.tc + 0.5 * parts.dim_kl).mean()
    assert term.penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    assert term.kl_weight == pytest.approx(2.5)


def test_model_with_tcvae_reports_terms_and_trains(tokenizer):
    torch.manual_seed(0)
    config = tiny_model_config(objective={"tcvae": True, "beta": 4.0, "tc_dataset_size": 100})
    model = TextVAE.from_config(config, tokenizer)
    ids, lengths = model.tokenize(SENTENCES)
    out = model({"input_ids": ids, "lengths": lengths}, step=0)
    assert out.mi.shape == out.tc.shape == out.dim_kl.shape == (len(SENTENCES),)
    assert torch.allclose(out.loss, out.rec.mean() + (out.mi + 4.0 * out.tc + out.dim_kl).mean(), atol=1e-5)
    assert {"mi", "tc", "dim_kl"} <= out.log_values().keys()
    out.loss.backward()
    assert model.latent.proj.weight.grad.abs().sum() > 0
    # the default objective leaves the terms out and keeps the closed-form KL
    plain = TextVAE.from_config(tiny_model_config(), tokenizer)
    out = plain({"input_ids": ids, "lengths": lengths}, step=0)
    assert out.mi is None and torch.allclose(out.loss, out.rec.mean() + out.kl.mean())


def test_tcvae_refuses_latents_and_terms_it_does_not_support(tokenizer):
    with pytest.raises(ConfigError, match="gaussian"):
        TextVAE.from_config(tiny_model_config(latent={"type": "gumbel", "category_sizes": [2, 3]},
                                              objective={"tcvae": True}), tokenizer)
    with pytest.raises(ConfigError, match="capacity and free_bits"):
        TextVAE.from_config(tiny_model_config(objective={"tcvae": True, "free_bits": 0.5}), tokenizer)
