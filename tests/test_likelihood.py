import math

import pytest
import torch

from textvae import TextVAE
from textvae.config import TokenizerConfig
from textvae.data.tokenization import train_tokenizer
from textvae.evaluation.likelihood import (
    PERPLEXITY_CAP,
    elbo_terms,
    forward_elbo,
    importance_weighted_nll,
    iw_log_likelihood,
    perplexities,
    perplexity,
    perplexity_from_nll,
    predicted_tokens,
    predicted_words,
)

from .conftest import SENTENCES, tiny_model_config



def ignoring_z(tokenizer, mu=0.0, sigma=1.0):
    """A VAE whose decoder ignores z and whose posterior is N(mu, sigma^2) for every sentence: log p(x) is the
    decoder's exact NLL, and -ELBO exceeds it by exactly KL(q || p) in closed form."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(), tokenizer).eval()
    with torch.no_grad():
        model.decoder.z_to_state.weight.zero_()
        model.decoder.rnn.weight_ih_l0[:, 8:].zero_()  # the z part of the concatenated input
        model.latent.proj.weight.zero_()
        model.latent.proj.bias[:4].fill_(mu)
        model.latent.proj.bias[4:].fill_(2 * math.log(sigma))
    return model


def informative(tokenizer):
    """A VAE whose posterior and decoder both depend on the sentence and on z (KL about 0.8 nats per sentence)."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(), tokenizer).eval()
    with torch.no_grad():
        model.latent.proj.weight[:4].mul_(5)
        model.latent.proj.bias[4:].fill_(-1.0)
        model.decoder.z_to_state.weight.mul_(2)
        model.decoder.rnn.weight_ih_l0[:, 8:].mul_(2)
    return model


def exact_nll(model, sentences):
    ids, lengths = model.tokenize(sentences)
    with torch.no_grad():
        return model.reconstruction_nll(ids, lengths, torch.zeros(len(sentences), 4)).double()


def test_iw_nll_is_the_exact_nll_when_the_posterior_is_the_prior_and_keeps_input_order(tokenizer):
    model = ignoring_z(tokenizer, mu=0.0, sigma=1.0)  # q = p, so every weight is exactly p(x)
    reference = exact_nll(model, SENTENCES)
    shuffled = SENTENCES[::-1] + SENTENCES[:3]  # different lengths, so sorting moves rows around
    for kwargs in ({"num_samples": 1}, {"num_samples": 37, "batch_size": 3, "sample_chunk": 5}):
        nll = importance_weighted_nll(model, shuffled, **kwargs)
        assert nll.shape == (len(shuffled),) and nll.dtype == torch.float64
        assert torch.allclose(nll, torch.cat([reference.flip(0), reference[:3]]), atol=1e-4)


def test_pre_tokenized_batches_give_the_same_result_as_sentences(tokenizer):
    model = ignoring_z(tokenizer, mu=0.0, sigma=1.0)
    ids, lengths = model.tokenize(SENTENCES)
    from_text = importance_weighted_nll(model, SENTENCES, num_samples=3)
    one_batch = importance_weighted_nll(model, {"input_ids": ids, "lengths": lengths}, num_samples=3)
    loader = [{"input_ids": ids[:5], "lengths": lengths[:5]}, (ids[5:], lengths[5:])]
    many = importance_weighted_nll(model, loader, num_samples=3, batch_size=2)
    assert torch.allclose(from_text, one_batch, atol=1e-5) and torch.allclose(from_text, many, atol=1e-5)


def test_closed_form_gap_iw_nll_below_minus_elbo_by_the_kl(tokenizer):
    mu, sigma = 1.0, 1.6  # a wide q: bounded weights p/q, so K = 2000 pins log p(x) to about 0.05 nats
    model = ignoring_z(tokenizer, mu, sigma)
    kl_closed_form = 4 * (-math.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5)
    terms = elbo_terms(model, SENTENCES, num_samples=2)
    nll = exact_nll(model, SENTENCES)
    assert torch.allclose(terms.kl, torch.full((8,), kl_closed_form, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(terms.rec, nll, atol=1e-4)  # the decoder ignores z
    iw = importance_weighted_nll(model, SENTENCES, num_samples=2000, seed=0)
    assert torch.all(iw < terms.nll_bound - 2.5)  # the gap is KL = 3.24 nats
    assert torch.allclose(iw, nll, atol=0.25)  # and the IW estimate closes it


def test_iw_nll_below_a_many_sample_elbo_for_every_sentence(tokenizer):
    model = informative(tokenizer)
    terms = elbo_terms(model, SENTENCES, num_samples=4000, seed=0)
    assert terms.kl.min() > 0.5  # the bound has a real gap to close
    iw = torch.stack([importance_weighted_nll(model, SENTENCES, num_samples=1500, seed=s) for s in range(2)])
    assert torch.all(iw.mean(0) < terms.nll_bound), (iw.mean(0), terms.nll_bound)


def test_the_estimate_tightens_as_k_grows(tokenizer):
    model = informative(tokenizer)
    seeds = range(10)
    totals = {
        k: torch.tensor([float(importance_weighted_nll(model, SENTENCES, num_samples=k, seed=s).sum()) for s in seeds])
        for k in (1, 10, 100)
    }
    means = {k: float(v.mean()) for k, v in totals.items()}
    assert means[1] > means[10] + 1.0 > means[100] + 2.0, means
    # K = 1 is the single-sample ELBO (with a Monte Carlo KL): its mean is -ELBO
    elbo = float(elbo_terms(model, SENTENCES, num_samples=2000, seed=0).nll_bound.sum())
    assert abs(means[1] - elbo) < 4 * float(totals[1].std()) / math.sqrt(len(seeds)) + 0.1


def test_a_seed_makes_the_estimate_reproducible_without_touching_the_global_rng(tokenizer):
    model = informative(tokenizer)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = importance_weighted_nll(model, SENTENCES, num_samples=20, seed=4)
    b = importance_weighted_nll(model, SENTENCES, num_samples=20, seed=4)
    assert torch.equal(a, b) and torch.equal(torch.rand(1), before)
    assert model.training is False
    model.train()
    importance_weighted_nll(model, SENTENCES[:2], num_samples=2)
    assert model.training  # the mode is restored


def test_perplexity_counts_words_plus_one_eos_per_sentence(tokenizer):
    model = ignoring_z(tokenizer, mu=0.0, sigma=1.0)
    tokens = predicted_tokens(model, SENTENCES)
    assert tokens.tolist() == [len(s.split()) + 1 for s in SENTENCES]
    nll = exact_nll(model, SENTENCES)
    expected = math.exp(float(nll.sum()) / sum(len(s.split()) + 1 for s in SENTENCES))
    assert perplexity(model, SENTENCES, num_samples=2) == pytest.approx(expected, rel=1e-5)
    assert perplexity_from_nll(nll, tokens) == pytest.approx(expected, rel=1e-9)
    assert elbo_terms(model, SENTENCES).perplexity_bound() == pytest.approx(expected, rel=1e-4)  # KL = 0


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_per_word_perplexity_divides_by_whitespace_words_whatever_the_tokenizer(kind):
    subwords = train_tokenizer(SENTENCES * 20, TokenizerConfig(type=kind, vocab_size=300))
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(max_length=40), subwords).eval()  # no sentence truncated
    tokens, words = predicted_tokens(model, SENTENCES), predicted_words(model, SENTENCES)
    assert words.tolist() == [len(s.split()) + 1 for s in SENTENCES]
    assert int(tokens.sum()) > int(words.sum()) + len(SENTENCES)  # subwords split words
    nll = importance_weighted_nll(model, SENTENCES, num_samples=3, seed=0)
    per_word = math.exp(float(nll.sum()) / int(words.sum()))
    per_token = math.exp(float(nll.sum()) / int(tokens.sum()))
    assert perplexity(model, SENTENCES, num_samples=3, seed=0, per="word") == pytest.approx(per_word, rel=1e-9)
    assert perplexity(model, SENTENCES, num_samples=3, seed=0) == pytest.approx(per_token, rel=1e-9)
    assert perplexities(nll, tokens, words) == pytest.approx(
        {"nll": float(nll.mean()), "ppl_per_token": per_token, "ppl_per_word": per_word,
         "num_tokens": int(tokens.sum()), "num_words": int(words.sum())})
    assert per_word > per_token  # the same NLL over fewer units
    # batches carry no text: their words are those of the tokenizer's decoding, here the same
    ids, lengths = model.tokenize(SENTENCES)
    assert predicted_words(model, (ids, lengths)).tolist() == words.tolist()
    terms = elbo_terms(model, SENTENCES, seed=0)
    assert terms.num_words.tolist() == words.tolist()
    assert terms.perplexity_bound("word") == pytest.approx(math.exp(float(terms.nll_bound.sum()) / int(words.sum())))
    with pytest.raises(ValueError, match="per must be 'token' or 'word'"):
        perplexity(model, SENTENCES, num_samples=1, per="character")


def test_bad_arguments_fail_clearly(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="num_samples"):
        importance_weighted_nll(tiny_model, SENTENCES, num_samples=0)
    with pytest.raises(TypeError, match="cannot evaluate"):
        importance_weighted_nll(tiny_model, [torch.zeros(3)], num_samples=2)


def test_the_evaluation_package_re_exports_the_public_functions():
    import textvae.evaluation as evaluation
    from textvae.evaluation import active_units, importance_weighted_nll, mutual_information, perplexity

    assert importance_weighted_nll is evaluation.likelihood.importance_weighted_nll
    assert perplexity is evaluation.likelihood.perplexity
    assert mutual_information is evaluation.latent_stats.mutual_information
    assert active_units is evaluation.latent_stats.active_units
    assert all(callable(getattr(evaluation, name)) for name in evaluation.__all__)  # lazy ones included


@pytest.mark.parametrize("z_mode", ["init", "concat", "init+concat"])
def test_no_latent_is_a_language_model_with_exact_likelihood(tokenizer, tmp_path, z_mode):
    """latent type 'none': no encoder, KL 0, and every importance weight equal, so IW-NLL is the exact -log p(x)
    for any K, and equals the reconstruction term; the model saves, loads and samples like any other."""
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(latent={"type": "none"}, decoder={"z_mode": z_mode}), tokenizer)
    assert model.encoder is None and model.latent.code_size == 0
    terms = elbo_terms(model, SENTENCES, seed=0)
    assert torch.all(terms.kl == 0)
    for k in (1, 7):
        assert torch.allclose(importance_weighted_nll(model, SENTENCES, num_samples=k, seed=k), terms.rec, atol=1e-5)
    ids, lengths = model.tokenize(SENTENCES)
    out = model({"input_ids": ids, "lengths": lengths})
    out.loss.backward()
    assert model.decoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "lm")
    again = TextVAE.from_pretrained(tmp_path / "lm")
    assert torch.allclose(elbo_terms(again, SENTENCES, seed=0).rec, terms.rec)
    assert len(again.sample(3, seed=0)) == 3


def test_one_perplexity_with_one_cap_for_tensors_and_sums():
    nll, tokens = torch.tensor([30.0, 50.0]), torch.tensor([9, 11])
    assert perplexity_from_nll(nll, tokens) == perplexity_from_nll(80.0, 20) == math.exp(4.0)
    assert perplexity_from_nll(1e6, 10) == math.exp(PERPLEXITY_CAP)  # no OverflowError: a broken model's figure
    assert perplexity_from_nll(math.inf, 10) == math.exp(PERPLEXITY_CAP)
    assert math.isnan(perplexity_from_nll(torch.tensor([math.nan, 1.0]), tokens))  # NaN is not capped into a number


def test_iw_log_likelihood_is_the_log_mean_of_the_weights():
    log_w = torch.randn(7, 3, dtype=torch.float64) * 5
    expected = torch.log(log_w.exp().mean(0))
    assert torch.allclose(iw_log_likelihood(log_w), expected, atol=1e-12)
    assert iw_log_likelihood(log_w.float()).dtype == torch.float64
    assert torch.equal(iw_log_likelihood(log_w[:1]), log_w[0])  # K = 1: the single weight


def test_forward_elbo_sums_the_models_own_loss_over_batches(tiny_model):
    tiny_model.train()
    ids, lengths = tiny_model.tokenize(SENTENCES)
    batches = [{"input_ids": ids[:5], "lengths": lengths[:5]}, {"input_ids": ids[5:], "lengths": lengths[5:]}]
    torch.manual_seed(0)
    terms = forward_elbo(tiny_model, batches)
    assert tiny_model.training  # the mode is restored
    torch.manual_seed(0)
    outs = [tiny_model.evaluate(b) for b in batches]
    assert terms.num_sentences == len(SENTENCES) and terms.means.shape == (len(SENTENCES), 4)
    assert terms.rec == pytest.approx(sum(float(o.rec.sum()) for o in outs))
    assert terms.kl == pytest.approx(sum(float(o.kl.sum()) for o in outs))
    assert terms.elbo == pytest.approx(-(terms.rec + terms.kl) / len(SENTENCES))
    assert terms.num_tokens == sum(len(s.split()) + 1 for s in SENTENCES)
    assert terms.perplexity_bound() == pytest.approx(math.exp((terms.rec + terms.kl) / terms.num_tokens))
