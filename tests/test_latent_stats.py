import math

import pytest
import torch
from torch.distributions import Normal

from textvae import TextVAE
from textvae.config import TokenizerConfig
from textvae.data.synthetic import load_synthetic_corpus
from textvae.data.tokenization import train_tokenizer
from textvae.evaluation.latent_stats import (
    active_units,
    active_units_from_means,
    kl_per_dimension,
    latent_statistics,
    mutual_information,
    mutual_information_from_posteriors,
    posterior_means,
    unit_variances,
)

from .conftest import tiny_model_config



@pytest.fixture(scope="module")
def corpus_sentences():
    return load_synthetic_corpus(300, seed=1).train[:200]


@pytest.fixture(scope="module")
def corpus_tokenizer(corpus_sentences):
    return train_tokenizer(corpus_sentences, TokenizerConfig(type="word"))


def model_with(tokenizer, mean_scale=20.0, zero_mean_rows=()):
    """A tiny VAE whose posterior means vary across sentences (a random encoder's do not, much); ``mean_scale=0``
    zeroes the whole latent projection, so every sentence gets the same posterior."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(), tokenizer).eval()
    with torch.no_grad():
        if mean_scale == 0:
            model.latent.proj.weight.zero_()
        model.latent.proj.weight[:4].mul_(mean_scale)
        model.latent.proj.bias[4:].fill_(-2.0)
        for row in zero_mean_rows:
            model.latent.proj.weight[row].zero_()
    return model


def latent_of(size):
    from textvae.config import LatentConfig
    from textvae.modules.latents import GaussianLatent

    return GaussianLatent(3, LatentConfig(size=size))


# ---------------------------------------------------------------- mutual information


def test_mi_is_zero_when_the_encoder_ignores_its_input(corpus_tokenizer, corpus_sentences):
    model = model_with(corpus_tokenizer, mean_scale=0.0)  # q(z|x) = the same Gaussian for every x
    assert abs(mutual_information(model, corpus_sentences, seed=0)) < 1e-5


def test_mi_is_positive_when_the_encoder_reads_its_input(corpus_tokenizer, corpus_sentences):
    model = model_with(corpus_tokenizer)
    mi = mutual_information(model, corpus_sentences, seed=0, batch_size=32)
    assert 0.5 < mi <= math.log(len(corpus_sentences)) + 0.1


@pytest.mark.parametrize("clusters", [2, 4])
def test_mi_of_separated_clusters_is_the_log_of_their_number_pooled_over_all_batches(clusters):
    """N posteriors in ``clusters`` far-apart groups: q(z) is a mixture of the groups, so I(x; z) = log(clusters).
    The batches hold two sentences each: pooling per batch would cap the estimate at log 2."""
    latent = latent_of(3)
    centres = torch.randn(clusters, 3) * 100
    loc = centres.repeat(16, 1)  # 16 sentences per cluster, interleaved
    posteriors = [Normal(loc[i : i + 2], torch.full((2, 3), 0.5)) for i in range(0, loc.size(0), 2)]
    torch.manual_seed(0)
    mi = mutual_information_from_posteriors(latent, posteriors, num_samples=3)
    assert mi == pytest.approx(math.log(clusters), abs=1e-6)


def test_mi_is_between_zero_and_log_n_for_overlapping_posteriors():
    latent = latent_of(2)
    loc = torch.linspace(-1, 1, 50).unsqueeze(1).expand(-1, 2)
    posteriors = [Normal(loc, torch.ones(50, 2))]
    torch.manual_seed(0)
    mi = mutual_information_from_posteriors(latent, posteriors, num_samples=20)
    # two independent dimensions, each x-uniform-on-[-1, 1] plus unit noise: about 2 * 0.15 nats
    assert 0.15 < mi < 0.5


# ---------------------------------------------------------------- active units


def with_unit_variance(n, variances, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(variances), generator=generator, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0, unbiased=True)
    return x * torch.tensor(variances, dtype=torch.float64).sqrt()


def test_active_units_on_constructed_means():
    means = with_unit_variance(100, [0.5, 0.0101, 0.0099, 0.0, 2.0])
    assert torch.allclose(unit_variances(means), torch.tensor([0.5, 0.0101, 0.0099, 0.0, 2.0], dtype=torch.float64))
    assert active_units_from_means(means) == 3
    assert active_units_from_means(means, threshold=0.001) == 4
    assert active_units_from_means(means, threshold=1.0) == 1
    assert active_units_from_means(means.float() + 3.0) == 3  # a shift changes nothing
    with pytest.raises(ValueError, match="at least two"):
        active_units_from_means(means[:1])


def test_active_units_of_a_model_count_the_dimensions_its_encoder_uses(corpus_tokenizer, corpus_sentences):
    model = model_with(corpus_tokenizer, zero_mean_rows=(1, 3))
    assert active_units(model, corpus_sentences) == 2
    means = posterior_means(model, corpus_sentences, batch_size=17)
    assert torch.allclose(means, model.encode(corpus_sentences), atol=1e-6)  # input order, whatever the batching
    assert model_with(corpus_tokenizer, mean_scale=0.0).encode(corpus_sentences).var(0).max() < 1e-10
    assert active_units(model_with(corpus_tokenizer, mean_scale=0.0), corpus_sentences) == 0


# ---------------------------------------------------------------- KL and everything at once


def test_kl_per_dimension_and_latent_statistics_agree_with_the_pieces(corpus_tokenizer, corpus_sentences):
    model = model_with(corpus_tokenizer, zero_mean_rows=(1,))
    sentences = corpus_sentences[:60]
    ids, lengths = model.tokenize(sentences)
    with torch.no_grad():
        expected = model.latent.kl_per_dim(model.posterior(ids, lengths)).double().mean(0)
    kl = kl_per_dimension(model, sentences, batch_size=7)
    assert torch.allclose(kl, expected, atol=1e-6)
    stats = latent_statistics(model, sentences, seed=0)
    assert stats.kl == pytest.approx(float(expected.sum()), rel=1e-6)
    assert stats.active_units == active_units(model, sentences) == 3
    assert stats.mutual_information == pytest.approx(mutual_information(model, sentences, seed=0), rel=1e-9)
    assert set(stats.as_dict()) >= {"kl", "mutual_information", "active_units", "kl_per_dim"}


def test_the_collapse_warning_names_what_holds_the_kl_up():
    from textvae.config import ObjectiveConfig
    from textvae.evaluation.latent_stats import collapse_warning

    free_bits = ObjectiveConfig(free_bits=0.5)
    warning = collapse_warning(10.6, 0, 16, free_bits, mutual_information=0.02)
    assert warning.startswith("KL 10.6 is the free-bits floor (0.5 nats x 16 dimensions = 8.0), not information: "
                              "0/16 active units, MI 0.02 nats; the encoder carries almost no information")
    assert "try" in warning.lower()
    assert collapse_warning(10.6, 1, 16, free_bits) is None  # one active unit: the code is used
    assert collapse_warning(0.0, 0, 0, free_bits) is None  # no latent variable (a language model)
    # far below the floor the free bits hold nothing up: plain collapse
    assert collapse_warning(0.3, 0, 16, free_bits).startswith("posterior collapse (KL 0.30 nats): 0/16 active units;")
    capacity = collapse_warning(14.9, 0, 32, ObjectiveConfig(capacity=15.0))
    assert capacity.startswith("KL 14.9 is held up by the capacity target (C up to 15 nats), not by information")
    assert collapse_warning(0.01, 0, 32, ObjectiveConfig()).startswith("posterior collapse (KL 0.01 nats): 0/32")
    assert collapse_warning(0.01, 0, 32).startswith("posterior collapse")  # no objective given


def test_active_units_of_categorical_latents_read_the_probabilities_not_the_argmax(corpus_tokenizer, corpus_sentences):
    """E_q[z] of a categorical variable is its probability vector: a variable whose probabilities move across
    sentences while its argmax never does is active (the one-hot ``mode`` would call it dead)."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(latent={"type": "gumbel", "category_sizes": [2, 3]}), corpus_tokenizer)
    model.eval()
    ids, lengths = model.tokenize(corpus_sentences)
    seen = []
    hook = model.latent.proj.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        model.posterior(ids, lengths)
        hook.remove()
        h = seen[0]
        centre = h.mean(0)
        direction = torch.pca_lowrank(h - centre, q=1, center=False)[2][:, 0]
        spread = ((h - centre) @ direction).abs().max()
        weight, bias = model.latent.proj.weight, model.latent.proj.bias
        weight.zero_()
        bias.zero_()
        # variable 1: logit gap of category 0 over 1 in [0.05, 4.45]; variable 2: uniform (its argmax is category 0)
        weight[0] = 2.2 * direction / spread
        bias[0] = 2.25 - weight[0] @ centre
        q = model.posterior(ids, lengths)
    assert (q.logits[:, 0] > q.logits[:, 1]).all()
    assert model.latent.mode(q).var(0).max() == 0  # the argmax never moves
    assert 0.01 < float(q.probs[:, 0].var()) < 0.05
    assert active_units(model, corpus_sentences) == 2  # both columns of variable 1, none of variable 2
    stats = latent_statistics(model, corpus_sentences, seed=0)
    assert stats.active_units == 2
    assert torch.allclose(stats.means.float(), q.probs, atol=1e-6)
    assert torch.allclose(posterior_means(model, corpus_sentences, batch_size=7), q.probs, atol=1e-6)
