
import numpy as np
import pytest
import torch

from textvae import TextVAE
from textvae.data.ground_truth import GroundTruthData
from textvae.data.synthetic import GRAMMAR
from textvae.evaluation.disentanglement import (
    OracleTextEncoder,
    beta_vae_score,
    dci,
    discrete_mutual_info,
    discretize,
    factor_vae_score,
    format_scores,
    latent_variables,
    metric_ceilings,
    mig,
    model_encode_fn,
    sap,
    traversal_table,
)

from .conftest import SENTENCES, tiny_model_config

SIZES = [2, 3, 5, 8]
N = 3000


def factors(n=N, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in sizes], axis=1)


def perfect_codes(f, seed=1):
    """The factors themselves, in another order, rescaled, with a little noise."""
    rng = np.random.default_rng(seed)
    return f[:, [2, 0, 3, 1]] * np.array([0.5, -3.0, 1.0, 2.0]) + 0.01 * rng.standard_normal(f.shape)


def entangled_codes(f):
    """Codes 0 and 1 each mix factors 2 and 3; the other two codes are clean."""
    codes = perfect_codes(f)
    codes[:, 0], codes[:, 2] = f[:, 2] + f[:, 3], f[:, 2] - f[:, 3]
    return codes


def chance(sizes=SIZES):
    return np.array([1 - 1 / k for k in sizes])  # accuracy gap of a perfect dimension over an uninformative one


def test_mutual_information_of_a_copy_is_the_entropy():
    f = factors()
    m = discrete_mutual_info(f, f)
    h = [-(np.bincount(f[:, k]) / N * np.log(np.bincount(f[:, k]) / N)).sum() for k in range(4)]
    assert np.allclose(np.diag(m), h)
    assert np.all(m[~np.eye(4, dtype=bool)] < 0.02)
    bins = discretize(np.linspace(0, 1, 100)[:, None], num_bins=20)
    assert bins.min() == 1 and bins.max() == 20 and len(np.unique(bins)) == 20


def test_metrics_are_near_one_for_perfect_codes():
    f = factors()
    codes = perfect_codes(f)
    m = mig(codes, f)
    assert m["score"] > 0.97 and np.all(m["per_factor"] > 0.95)
    d = dci(codes, f)
    assert d["disentanglement"] > 0.95 and d["completeness"] > 0.95 and d["informativeness"] > 0.98
    assert d["score"] == d["disentanglement"] and d["per_factor"]["completeness"].shape == (4,)
    s = sap(codes, f)
    # classification SAP cannot exceed 1 - 1/K for a K-valued factor: a useless dimension still scores chance
    assert np.allclose(s["per_factor"], chance(), atol=0.05)
    assert sap(codes, f, continuous_factors=True)["score"] > 0.95


def test_metrics_are_near_zero_for_random_codes():
    f = factors()
    codes = np.random.default_rng(5).standard_normal((N, 4))
    assert mig(codes, f)["score"] < 0.03
    assert sap(codes, f)["score"] < 0.05
    d = dci(codes, f)
    assert d["disentanglement"] < 0.2 and d["completeness"] < 0.2
    assert d["informativeness"] < np.mean(1 / np.array(SIZES)) + 0.1


def test_entangling_two_factors_lowers_the_scores():
    f = factors()
    clean, mixed = perfect_codes(f), entangled_codes(f)
    m_clean, m_mixed = mig(clean, f), mig(mixed, f)
    assert m_mixed["score"] < m_clean["score"] - 0.2
    assert m_mixed["per_factor"][0] > 0.95 and m_mixed["per_factor"][1] > 0.95  # the untouched factors keep theirs
    d_clean, d_mixed = dci(clean, f), dci(mixed, f)
    assert d_mixed["disentanglement"] < d_clean["disentanglement"] - 0.2
    assert d_mixed["completeness"] < d_clean["completeness"] - 0.2
    assert sap(mixed, f)["score"] < sap(clean, f)["score"] - 0.2


def test_categorical_codes_with_relabelled_categories_are_perfect():
    f = factors()
    rng = np.random.default_rng(2)
    relabel = [rng.permutation(k) for k in SIZES]
    codes = np.stack([relabel[k][f[:, k]] for k in (3, 1, 0, 2)], axis=1)  # another order, scrambled labels
    cat = [True] * 4
    assert mig(codes, f, categorical=cat)["score"] > 0.97
    d = dci(codes, f, categorical=cat)
    assert d["disentanglement"] > 0.95 and d["completeness"] > 0.95 and d["informativeness"] > 0.99
    assert np.allclose(sap(codes, f, categorical=cat)["per_factor"], chance()[[0, 1, 2, 3]], atol=0.05)
    with pytest.raises(ValueError, match="integer category"):
        mig(codes + 0.5, f, categorical=cat)


def test_joint_codes_mix_continuous_and_categorical_columns():
    f = factors()
    codes = np.concatenate([f[:, [0, 1]] * 2.0 + 0.01, f[:, [3, 2]]], axis=1)
    cat = [False, False, True, True]
    d = dci(codes, f, categorical=cat)
    assert d["disentanglement"] > 0.9 and d["completeness"] > 0.9
    assert mig(codes, f, categorical=cat)["score"] > 0.95


# ---------------------------------------------------------------- scores that sample ground-truth data


class Toy:
    """Sentences 'a1 b0 c3 d2' from four uniform factors."""

    factor_names = ["a", "b", "c", "d"]
    factors_num_values = SIZES
    num_factors = 4

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, k, n) for k in SIZES], axis=1)

    def sample_observations_from_factors(self, f, rng):
        return [" ".join(f"{name}{v}" for name, v in zip(self.factor_names, row)) for row in np.asarray(f).tolist()]


def parse(sentences):
    return np.array([[int(w[1:]) for w in s.split()] for s in sentences], dtype=float)


def test_toy_data_follows_the_protocol():
    assert isinstance(Toy(), GroundTruthData)


def test_beta_vae_and_factor_vae_scores_separate_good_from_bad_codes():
    data, kw = Toy(), {"batch_size": 16, "num_train": 300, "num_eval": 150}
    perfect = lambda s: parse(s)[:, [2, 0, 3, 1]] * np.array([0.5, -3.0, 1.0, 2.0])  # noqa: E731
    rng = np.random.default_rng(0)
    noise = lambda s: rng.standard_normal((len(s), 4))  # noqa: E731

    def entangled(s):
        x = parse(s)
        return np.stack([x[:, 0] * 8 + x[:, 3], x[:, 1], x[:, 2], rng.standard_normal(len(s))], axis=1)

    good = beta_vae_score(perfect, data, seed=0, **kw)
    assert good["score"] > 0.95 and good["per_factor"].shape == (4,)
    assert beta_vae_score(noise, data, seed=0, **kw)["score"] < 0.5
    fv_good = factor_vae_score(perfect, data, seed=0, num_variance_estimate=1000, **kw)
    assert fv_good["score"] == 1.0 and np.all(fv_good["per_factor"] == 1.0)
    assert factor_vae_score(noise, data, seed=0, num_variance_estimate=1000, **kw)["score"] < 0.5
    fv_mixed = factor_vae_score(entangled, data, seed=0, num_variance_estimate=1000, **kw)
    assert fv_mixed["score"] < 0.8 and fv_mixed["per_factor"][1] == 1.0


def test_factor_vae_drops_dimensions_that_barely_vary():
    data, kw = Toy(), {"batch_size": 16, "num_train": 200, "num_eval": 100, "num_variance_estimate": 1000}

    def with_dead_dim(s):  # a constant dimension (a collapsed unit): 0/0 would win every argmin if it were kept
        return np.concatenate([parse(s), np.zeros((len(s), 1))], axis=1)

    out = factor_vae_score(with_dead_dim, data, seed=1, **kw)
    assert out["num_active_dims"] == 4 and out["score"] == 1.0
    with np.errstate(invalid="ignore"):
        kept = factor_vae_score(with_dead_dim, data, seed=1, prune_threshold=0.0, **kw)
    assert kept["num_active_dims"] == 5 and kept["score"] < 0.5


# ---------------------------------------------------------------- ceilings and models


def test_oracle_marks_factors_the_text_does_not_determine():
    sentences = ["he ran", "she ran", "you ran", "you ran", "we ran", "we ran"]
    f = np.array([[0, 0], [1, 0], [0, 0], [1, 0], [0, 1], [1, 1]])  # (gender, number): gender hidden for you/we
    oracle = OracleTextEncoder(sentences, f, [2, 2])
    assert oracle(["he ran", "you ran", "we ran"]).tolist() == [[0, 0], [2, 0], [2, 1]]
    assert np.allclose(oracle.undetermined, [4 / 6, 0])
    with pytest.raises(ValueError, match="not in the data"):
        oracle(["they ran"])


def test_ceilings_on_the_embedded_grammar_are_one_for_every_factor():
    result = metric_ceilings(GRAMMAR, num_train=1500, num_eval=500, score_points=(100, 50), batch_size=16,
                             metrics=("mig", "dci", "factor_vae"))
    assert np.all(result["mig"]["per_factor"] > 0.9)
    # one-hot columns of ten factors fitted on 1,500 points: noise importance keeps DCI a little under 1
    assert result["dci"]["disentanglement"] > 0.85 and result["dci"]["informativeness"] > 0.99
    assert result["factor_vae"]["score"] == 1.0
    assert np.all(result["undetermined_fraction"] == 0)
    table = format_scores(result)
    assert "subject" in table.splitlines()[0] and "mig" in table


def test_model_codes_become_one_column_per_latent_variable(tokenizer):
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(latent={"type": "joint", "size": 2, "category_sizes": [3, 4]}),
                                tokenizer)
    encode_fn, categorical = model_encode_fn(model)
    codes = encode_fn(SENTENCES)
    assert codes.shape == (len(SENTENCES), 4) and categorical.tolist() == [False, False, True, True]
    z = model.encode(SENTENCES)
    assert np.allclose(codes[:, :2], z[:, :2].numpy())
    assert np.array_equal(codes[:, 2:], model.latent.indices(z).numpy())
    assert latent_variables(model.latent, z)[0].shape == (len(SENTENCES), 4)
    table = traversal_table(model, SENTENCES[0], max_values=3)
    lines = table.splitlines()
    assert len(lines) == 2 + 5 + 5 + 3 + 3  # two Gaussian dims x 5 values, two variables x 3 categories
    assert lines[2].split()[0] == "z0" and lines[-1].split()[0] == "c3"
