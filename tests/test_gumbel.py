import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from textvae import TextVAE, load_pretrained
from textvae.config import LatentConfig, ObjectiveConfig
from textvae.modules.latents import CategoricalPosterior, GumbelLatent, JointLatent, build_latent
from textvae.objectives import discrete_capacity, gumbel_temperature, kl_term

from .conftest import SENTENCES, tiny_model_config

SIZES = [2, 3, 5, 10]


def gumbel(sizes=SIZES, input_size=6, **kwargs) -> GumbelLatent:
    return build_latent(input_size, LatentConfig(type="gumbel", category_sizes=sizes, **kwargs))


def blocks(z, sizes=SIZES):
    return torch.split(z, sizes, dim=-1)


def test_kl_is_log_n_minus_entropy_zero_at_uniform_and_bounded_by_log_n():
    torch.manual_seed(0)
    latent = gumbel()
    with torch.no_grad():
        latent.proj.weight.zero_()
        latent.proj.bias.zero_()
    uniform = latent.kl_per_dim(latent.posterior(torch.randn(4, 6)))
    assert uniform.shape == (4, len(SIZES))
    assert torch.allclose(uniform, torch.zeros(4, len(SIZES)), atol=1e-6)

    with torch.no_grad():
        latent.proj.weight.normal_(0, 10.0)  # near one-hot posteriors: KL close to log n, never above
    q = latent.posterior(torch.randn(64, 6))
    kl = latent.kl_per_dim(q)
    log_n = torch.tensor([math.log(n) for n in SIZES])
    assert torch.all(kl >= -1e-6) and torch.all(kl <= log_n + 1e-5)
    assert kl.max(0).values.gt(0.9 * log_n).all()
    reference = torch.stack(
        [kl_divergence(Categorical(logits=b), Categorical(logits=torch.zeros_like(b))) for b in blocks(q.logits)], -1
    )
    assert torch.allclose(kl, reference, atol=1e-5)


def test_relaxed_samples_lie_on_the_simplex_and_approach_one_hot_as_tau_falls():
    torch.manual_seed(0)
    latent = gumbel().train()
    q = latent.posterior(torch.randn(32, 6))
    peak = {}
    for tau in (5.0, 0.5, 0.02):
        z = latent.rsample(q, num_samples=50, temperature=tau)
        assert z.shape == (50, 32, sum(SIZES))
        assert torch.all(z >= 0)
        for block in blocks(z):
            assert torch.allclose(block.sum(-1), torch.ones(50, 32), atol=1e-5)
        peak[tau] = torch.stack([b.max(-1).values for b in blocks(z)]).mean().item()
    assert peak[5.0] < peak[0.5] < peak[0.02]
    assert peak[0.02] > 0.98 and peak[5.0] < 0.7


def test_sample_means_match_the_category_probabilities():
    torch.manual_seed(0)
    latent = gumbel()
    q = latent.posterior(torch.randn(3, 6))
    probs = q.probs
    exact = latent.eval().rsample(q, num_samples=20000).mean(0)  # eval mode: exact one-hot draws
    assert torch.allclose(exact, probs, atol=0.015)
    relaxed = latent.train().rsample(q, num_samples=20000, temperature=0.05).mean(0)  # Gumbel-max in the limit
    assert torch.allclose(relaxed, probs, atol=0.02)


def test_gradients_flow_through_relaxed_samples():
    latent = gumbel().train()
    h = torch.randn(5, 6, requires_grad=True)
    z = latent.rsample(latent.posterior(h), temperature=0.7)
    (z * torch.randn_like(z)).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert latent.proj.weight.grad.abs().sum() > 0


def test_straight_through_is_exactly_one_hot_forward_with_gradients_backward():
    torch.manual_seed(0)
    latent = gumbel(hard=True).train()
    h = torch.randn(16, 6, requires_grad=True)
    z = latent.rsample(latent.posterior(h), temperature=1.0)
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    for block in blocks(z):
        assert torch.equal(block.sum(-1), torch.ones(16))
    (z * torch.randn_like(z)).sum().backward()
    assert h.grad.abs().sum() > 0


def test_exact_log_densities_give_an_unbiased_importance_weight():
    """sum_z q(z) p(z)/q(z) = 1: importance weights of exact one-hot samples average to 1, and log q is the
    categorical log-mass of the drawn categories."""
    torch.manual_seed(0)
    latent = gumbel().eval()
    q = latent.posterior(torch.randn(4, 6))
    z = latent.rsample(q, num_samples=40000)
    log_q, log_p = latent.log_q(q, z), latent.log_p(z)
    assert log_q.shape == log_p.shape == (40000, 4)
    assert torch.allclose(log_p, torch.full_like(log_p, -sum(math.log(n) for n in SIZES)))
    picks = latent.indices(z)
    reference = sum(Categorical(logits=b).log_prob(picks[..., i]) for i, b in enumerate(blocks(q.logits)))
    assert torch.allclose(log_q, reference, atol=1e-5)
    weights = (log_p - log_q).exp().mean(0)
    assert torch.allclose(weights, torch.ones(4), atol=0.08), weights
    # and the Monte Carlo KL agrees with the closed form
    assert torch.allclose((log_q - log_p).mean(0), latent.kl_per_dim(q).sum(-1), atol=0.05)


def test_prior_samples_mode_and_indices():
    latent = gumbel()
    z = latent.sample_prior(30000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (30000, sum(SIZES))
    for block, n in zip(blocks(z), SIZES):
        assert torch.equal(block.sum(-1), torch.ones(30000))
        assert torch.allclose(block.mean(0), torch.full((n,), 1.0 / n), atol=0.015)
    again = latent.sample_prior(30000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)
    q = latent.posterior(torch.randn(7, 6))
    mode = latent.mode(q)
    picks = latent.indices(mode)
    assert torch.equal(picks, torch.stack([b.argmax(-1) for b in blocks(q.logits)], -1))
    assert torch.equal(latent.codes_from_indices(picks), mode)


def test_bad_category_sizes_are_named():
    with pytest.raises(ValueError, match="category_sizes is empty"):
        gumbel(sizes=[])
    with pytest.raises(ValueError, match=r"category_sizes\[1\]: 1 is out of range; it must be at least 2"):
        gumbel(sizes=[3, 1])
    with pytest.raises(ValueError, match="columns"):
        CategoricalPosterior(torch.zeros(2, 4), [2, 3])


def test_temperature_schedule_decays_exponentially_to_its_floor():
    config = LatentConfig(temperature=2.0, temperature_min=0.5, temperature_anneal_rate=1e-3)
    assert gumbel_temperature(config, 0) == 2.0
    assert gumbel_temperature(config, 1000) == pytest.approx(2.0 * math.exp(-1.0))
    assert gumbel_temperature(config, 10**6) == 0.5
    values = [gumbel_temperature(config, s) for s in range(0, 3000, 100)]
    assert values == sorted(values, reverse=True) and min(values) == 0.5
    assert gumbel_temperature(LatentConfig(temperature=0.67, temperature_anneal_rate=0.0), 10**5) == 0.67


def test_joint_latent_concatenates_gaussian_and_categorical_parts():
    torch.manual_seed(0)
    latent = build_latent(6, LatentConfig(type="joint", size=3, category_sizes=[2, 4]))
    assert isinstance(latent, JointLatent) and latent.code_size == 3 + 6 and latent.num_categorical == 2
    q = latent.posterior(torch.randn(5, 6))
    kl = latent.kl_per_dim(q)
    assert kl.shape == (5, 3 + 2)
    assert torch.allclose(kl[:, :3], latent.continuous.kl_per_dim(q.continuous))
    assert torch.allclose(kl[:, 3:], latent.discrete.kl_per_dim(q.discrete))
    latent.eval()
    z = latent.rsample(q, num_samples=4)
    assert z.shape == (4, 5, 9)
    expected = q.continuous.log_prob(z[..., :3]).sum(-1) + q.discrete.log_prob(z[..., 3:])
    assert torch.allclose(latent.log_q(q, z), expected)
    assert latent.sample_prior(6).shape == (6, 9)
    mode = latent.mode(q)
    assert torch.equal(mode[:, :3], q.continuous.loc) and torch.equal(latent.indices(mode), latent.discrete.indices(mode[:, 3:]))


def test_discrete_part_gets_its_own_beta_and_capped_capacity():
    kl = torch.tensor([[1.0, 2.0, 0.5], [3.0, 0.0, 0.5]], requires_grad=True)  # 2 Gaussian dims, 1 categorical
    config = ObjectiveConfig(beta=1.0, discrete_beta=4.0)
    term = kl_term(kl, config, step=0, num_categorical=1)
    assert term.penalty.item() == pytest.approx(1.0 * 3.0 + 4.0 * 0.5)
    term.penalty.backward()
    assert torch.allclose(kl.grad, torch.tensor([[0.5, 0.5, 2.0], [0.5, 0.5, 2.0]]))
    assert term.discrete_kl_weight == 4.0
    # without discrete settings the plain ones apply to every column, as for a Gaussian latent
    plain = ObjectiveConfig(beta=0.5)
    assert kl_term(kl, plain, 0, num_categorical=1).penalty.item() == pytest.approx(kl_term(kl, plain, 0).penalty.item())
    # capacity per part; the categorical target is capped at sum(log n)
    config = ObjectiveConfig(capacity=2.0, capacity_steps=10, discrete_capacity=50.0, discrete_capacity_steps=10)
    cap_max = math.log(3)
    assert discrete_capacity(config, 10, max_kl=cap_max) == pytest.approx(cap_max)
    term = kl_term(kl.detach(), config, step=10, num_categorical=1, max_categorical_kl=cap_max)
    assert term.capacity == 2.0 and term.discrete_capacity == pytest.approx(cap_max)
    assert term.penalty.item() == pytest.approx(10.0 * (abs(3.0 - 2.0) + abs(0.5 - cap_max)))


# ---------------------------------------------------------------- through the whole model


def batch_of(model, sentences):
    ids, lengths = model.tokenize(sentences)
    return {"input_ids": ids, "lengths": lengths}


LATENTS = {
    "gumbel": {"type": "gumbel", "category_sizes": SIZES, "temperature_anneal_rate": 1e-2},
    "joint_hard": {"type": "joint", "size": 3, "category_sizes": [3, 2, 5], "hard": True},
}


@pytest.mark.parametrize("kind", list(LATENTS))
def test_categorical_latents_end_to_end(tmp_path, tokenizer, kind):
    torch.manual_seed(0)
    config = tiny_model_config(latent=LATENTS[kind], objective={"discrete_beta": 2.0})
    model = TextVAE.from_config(config, tokenizer)
    latent = model.latent
    sizes = latent.category_sizes
    code = latent.code_size
    batch = batch_of(model, SENTENCES)

    out = model(batch, step=100)
    columns = (latent.num_continuous if kind == "joint_hard" else 0) + len(sizes)
    assert out.z.shape == (len(SENTENCES), code) and out.kl_per_dim.shape == (len(SENTENCES), columns)
    assert torch.allclose(out.kl, out.kl_per_dim.sum(-1))
    assert out.temperature == gumbel_temperature(config.latent, 100)
    assert "temperature" in out.log_values() and "kl_categorical" in out.log_values()
    out.loss.backward()
    for name in ("encoder.embedding.weight", "decoder.embedding.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    proj = "latent.discrete.proj.weight" if kind == "joint_hard" else "latent.proj.weight"
    assert model.get_parameter(proj).grad.abs().sum() > 0

    # evaluation: exact one-hot codes, argmax codes from encode
    ev = model.evaluate(batch)
    cat = ev.z[:, -sum(sizes):]
    assert set(cat.unique().tolist()) <= {0.0, 1.0}
    codes = model.encode(SENTENCES)
    assert codes.shape == (len(SENTENCES), code)
    model.eval()
    with torch.no_grad():
        q = model.posterior(batch["input_ids"], batch["lengths"])
    q_cat = q.discrete if kind == "joint_hard" else q
    argmax = torch.stack([block.argmax(-1) for block in q_cat.split(q_cat.logits)], dim=-1)
    assert torch.equal(latent.indices(codes), argmax)  # encode gives each variable's most probable category
    assert torch.equal(codes[:, -sum(sizes):], latent.codes_from_indices(argmax) if kind == "gumbel" else
                       latent.discrete.codes_from_indices(argmax))
    if kind == "joint_hard":
        assert torch.equal(codes[:, : latent.num_continuous], q.continuous.loc)

    # importance-weighted densities: log p(x|z) + log p(z) - log q(z|x) for S exact samples
    model.eval()
    q = model.posterior(batch["input_ids"], batch["lengths"])
    z = latent.rsample(q, num_samples=5)
    log_w = model.log_prob_given_z(batch["input_ids"], batch["lengths"], z) + latent.log_p(z) - latent.log_q(q, z)
    assert log_w.shape == (5, len(SENTENCES)) and torch.isfinite(log_w).all()

    # save / load round trip
    folder = model.save_pretrained(tmp_path / kind)
    loaded = load_pretrained(folder)
    assert loaded.config == model.config and loaded.latent.category_sizes == sizes
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.encode(SENTENCES), codes)
    prior = latent.sample_prior(4, generator=torch.Generator().manual_seed(3))
    assert model.decode(prior) == loaded.decode(prior)
    assert loaded.sample(3, seed=1) == model.sample(3, seed=1)


def test_hard_forward_feeds_the_decoder_one_hot_codes(tokenizer):
    torch.manual_seed(0)
    hard = {"type": "gumbel", "category_sizes": [4, 2, 7], "hard": True}
    model = TextVAE.from_config(tiny_model_config(latent=hard), tokenizer).train()
    out = model(batch_of(model, SENTENCES), step=0)
    assert set(out.z.detach().unique().tolist()) <= {0.0, 1.0}
    soft = TextVAE.from_config(tiny_model_config(latent=LATENTS["gumbel"]), tokenizer).train()
    assert not set(soft(batch_of(soft, SENTENCES), step=0).z.detach().unique().tolist()) <= {0.0, 1.0}
