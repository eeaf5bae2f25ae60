import torch

from textvae.config import LatentConfig
from textvae.modules.latents import GaussianLatent, build_latent


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    latent = GaussianLatent(6, LatentConfig(size=3))
    q = latent.posterior(torch.randn(2, 6))
    analytic = latent.kl_per_dim(q).sum(-1)  # (2,)
    z = latent.rsample(q, num_samples=200_000)  # (S, 2, 3)
    monte_carlo = (latent.log_q(q, z) - latent.log_p(z)).mean(0)
    assert torch.allclose(analytic, monte_carlo, atol=0.02), (analytic, monte_carlo)


def test_kl_is_zero_exactly_at_the_prior_and_positive_elsewhere():
    latent = GaussianLatent(4, LatentConfig(size=2))
    with torch.no_grad():
        latent.proj.weight.zero_()
        latent.proj.bias.zero_()
    q = latent.posterior(torch.randn(5, 4))
    assert torch.allclose(latent.kl_per_dim(q), torch.zeros(5, 2))
    with torch.no_grad():
        latent.proj.bias[0] = 1.0  # mean 1 in dimension 0 -> KL 0.5
    assert torch.allclose(latent.kl_per_dim(latent.posterior(torch.randn(5, 4)))[:, 0], torch.full((5,), 0.5))


def test_shapes_and_reparameterised_gradient():
    latent = build_latent(4, LatentConfig(type="gaussian", size=3))
    h = torch.randn(5, 4, requires_grad=True)
    q = latent.posterior(h)
    assert latent.rsample(q).shape == (5, 3)
    assert latent.rsample(q, num_samples=7).shape == (7, 5, 3)
    assert latent.log_q(q, latent.rsample(q, 7)).shape == (7, 5)
    assert latent.sample_prior(9).shape == (9, 3)
    latent.rsample(q).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_unknown_latent_type_names_valid_ones():
    import pytest

    with pytest.raises(KeyError, match="gaussian"):
        build_latent(4, LatentConfig(type="gausian", size=2))
