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


def test_identical_posteriors_carry_no_information_and_no_correlation():
    """q(z|x) the same for every x: the aggregate q(z) equals it, so MI = 0 and TC = 0 under MSS (exactly, as
    its weights sum to 1); MWS weighs the batch by 1/(NM) and reports MI = log N, its known offset."""
    q = Normal(torch.tensor([0.5, -1.0]).expand(32, 2), torch.tensor([0.4, 1.2]).expand(32, 2))
    z = q.sample()
    mss = tc_decomposition(q, z, dataset_size=500, estimator="mss")
    assert torch.allclose(mss.mi, torch.zeros(32), atol=1e-4) and torch.allclose(mss.tc, torch.zeros(32), atol=1e-4)
    mws = tc_decomposition(q, z, dataset_size=500, estimator="mws")
    assert torch.allclose(mws.mi, torch.full((32,), math.log(500)), atol=1e-4)
    assert torch.allclose(mws.tc, torch.full((32,), (2 - 1) * math.log(500)), atol=1e-4)  # (D - 1) log N


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
