import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
import torch
from sklearn import linear_model, svm
from sklearn.ensemble import GradientBoostingClassifier

from textvae import TextVAE
from textvae.data.ground_truth import GroundTruthData, sample
from textvae.data.synthetic import GRAMMAR
from textvae.evaluation.disentanglement import (
    OracleTextEncoder,
    beta_vae_score,
    dci,
    discrete_mutual_info,
    discretize,
    evaluate_disentanglement,
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


# ---------------------------------------------------------------- disentanglement_lib, transcribed
# From google-research/disentanglement_lib, evaluation/metrics/{utils,mig,sap_score,dci,beta_vae,factor_vae}.py,
# line by line, with its arrays' layout: mus (num_codes, N), ys (num_factors, N). Adapted only where textvae's
# protocol differs: the random state is a numpy Generator (``integers`` for ``randint``), the data has no
# ``sample_observations`` method (its body, sample_factors then sample_observations_from_factors, is inlined), and
# the trees are seeded as textvae seeds them (random_state=0), so that ties between equal splits break alike.


def ref_discrete_mutual_info(mus, ys):
    num_codes = mus.shape[0]
    num_factors = ys.shape[0]
    m = np.zeros([num_codes, num_factors])
    for i in range(num_codes):
        for j in range(num_factors):
            m[i, j] = sklearn.metrics.mutual_info_score(ys[j, :], mus[i, :])
    return m


def ref_discrete_entropy(ys):
    num_factors = ys.shape[0]
    h = np.zeros(num_factors)
    for j in range(num_factors):
        h[j] = sklearn.metrics.mutual_info_score(ys[j, :], ys[j, :])
    return h


def ref_histogram_discretize(target, num_bins=20):
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return discretized


def ref_mig(mus_train, ys_train):
    discretized_mus = ref_histogram_discretize(mus_train)
    m = ref_discrete_mutual_info(discretized_mus, ys_train)
    entropy = ref_discrete_entropy(ys_train)
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def ref_sap(mus, ys, mus_test, ys_test, continuous_factors):
    num_latents = mus.shape[0]
    num_factors = ys.shape[0]
    score_matrix = np.zeros([num_latents, num_factors])
    for i in range(num_latents):
        for j in range(num_factors):
            mu_i = mus[i, :]
            y_j = ys[j, :]
            if continuous_factors:
                cov_mu_i_y_j = np.cov(mu_i, y_j, ddof=1)
                cov_mu_y = cov_mu_i_y_j[0, 1] ** 2
                var_mu = cov_mu_i_y_j[0, 0]
                var_y = cov_mu_i_y_j[1, 1]
                if var_mu > 1e-12:
                    score_matrix[i, j] = cov_mu_y * 1.0 / (var_mu * var_y)
                else:
                    score_matrix[i, j] = 0.0
            else:
                mu_i_test = mus_test[i, :]
                y_j_test = ys_test[j, :]
                classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(mu_i[:, np.newaxis], y_j)
                pred = classifier.predict(mu_i_test[:, np.newaxis])
                score_matrix[i, j] = np.mean(pred == y_j_test)
    sorted_matrix = np.sort(score_matrix, axis=0)
    return score_matrix, np.mean(sorted_matrix[-1, :] - sorted_matrix[-2, :])


def ref_dci(x_train, y_train, x_test, y_test):
    num_factors = y_train.shape[0]
    num_codes = x_train.shape[0]
    importance_matrix = np.zeros(shape=[num_codes, num_factors], dtype=np.float64)
    train_loss = []
    test_loss = []
    for i in range(num_factors):
        model = GradientBoostingClassifier(random_state=0)
        model.fit(x_train.T, y_train[i, :])
        importance_matrix[:, i] = np.abs(model.feature_importances_)
        train_loss.append(np.mean(model.predict(x_train.T) == y_train[i, :]))
        test_loss.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
    per_code = 1.0 - scipy.stats.entropy(importance_matrix.T + 1e-11, base=importance_matrix.shape[1])
    weights = importance_matrix if importance_matrix.sum() != 0.0 else np.ones_like(importance_matrix)
    code_importance = weights.sum(axis=1) / weights.sum()
    per_factor = 1.0 - scipy.stats.entropy(importance_matrix + 1e-11, base=importance_matrix.shape[0])
    factor_importance = weights.sum(axis=0) / weights.sum()
    return {"importance": importance_matrix, "informativeness_train": np.mean(train_loss),
            "informativeness": np.mean(test_loss), "disentanglement": np.sum(per_code * code_importance),
            "completeness": np.sum(per_factor * factor_importance)}


def ref_beta_vae(ground_truth_data, representation_function, random_state, batch_size, num_train, num_eval):
    def generate_training_sample():
        index = random_state.integers(ground_truth_data.num_factors)
        factors1 = ground_truth_data.sample_factors(batch_size, random_state)
        factors2 = ground_truth_data.sample_factors(batch_size, random_state)
        factors2[:, index] = factors1[:, index]
        observation1 = ground_truth_data.sample_observations_from_factors(factors1, random_state)
        observation2 = ground_truth_data.sample_observations_from_factors(factors2, random_state)
        representation1 = representation_function(observation1)
        representation2 = representation_function(observation2)
        feature_vector = np.mean(np.abs(representation1 - representation2), axis=0)
        return index, feature_vector

    def generate_training_batch(num_points):
        points = None
        labels = np.zeros(num_points, dtype=np.int64)
        for i in range(num_points):
            labels[i], feature_vector = generate_training_sample()
            if points is None:
                points = np.zeros((num_points, feature_vector.shape[0]))
            points[i, :] = feature_vector
        return points, labels

    train_points, train_labels = generate_training_batch(num_train)
    model = linear_model.LogisticRegression()  # the library passes random_state, which L-BFGS does not use
    model.fit(train_points, train_labels)
    train_accuracy = np.mean(model.predict(train_points) == train_labels)
    eval_points, eval_labels = generate_training_batch(num_eval)
    eval_accuracy = model.score(eval_points, eval_labels)
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}


def ref_factor_vae(ground_truth_data, representation_function, random_state, batch_size, num_train, num_eval,
                   num_variance_estimate, threshold=0.05):
    factors = ground_truth_data.sample_factors(num_variance_estimate, random_state)
    observations = ground_truth_data.sample_observations_from_factors(factors, random_state)
    representations = representation_function(observations)
    global_variances = np.var(representations, axis=0, ddof=1)
    active_dims = np.sqrt(global_variances) >= threshold
    if not active_dims.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def generate_training_sample():
        factor_index = random_state.integers(ground_truth_data.num_factors)
        factors = ground_truth_data.sample_factors(batch_size, random_state)
        factors[:, factor_index] = factors[0, factor_index]
        observations = ground_truth_data.sample_observations_from_factors(factors, random_state)
        representations = representation_function(observations)
        local_variances = np.var(representations, axis=0, ddof=1)
        argmin = np.argmin(local_variances[active_dims] / global_variances[active_dims])
        return factor_index, argmin

    def generate_training_batch(num_points):
        votes = np.zeros((ground_truth_data.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            factor_index, argmin = generate_training_sample()
            votes[factor_index, argmin] += 1
        return votes

    training_votes = generate_training_batch(num_train)
    classifier = np.argmax(training_votes, axis=0)
    other_index = np.arange(training_votes.shape[1])
    train_accuracy = np.sum(training_votes[classifier, other_index]) * 1.0 / np.sum(training_votes)
    eval_votes = generate_training_batch(num_eval)
    eval_accuracy = np.sum(eval_votes[classifier, other_index]) * 1.0 / np.sum(eval_votes)
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy, "num_active_dims": len(active_dims)}


# ---------------------------------------------------------------- fixed arrays


def factors(n, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in sizes], axis=1)


def mixed_codes(f, seed=1):
    """Five codes at different scales: two mix factors, one is non-monotonic in a factor, one is noise."""
    rng = np.random.default_rng(seed)
    codes = np.stack([f[:, 0] + 0.5 * f[:, 1], 3.0 * f[:, 2] - f[:, 3], np.sin(f[:, 3]), 0.2 * f[:, 1],
                      rng.standard_normal(len(f))], axis=1)
    return codes + 0.3 * rng.standard_normal(codes.shape)


def perfect_codes(f, seed=1):
    """The factors themselves, in another order, rescaled, with a little noise."""
    rng = np.random.default_rng(seed)
    return f[:, [2, 0, 3, 1]] * np.array([0.5, -3.0, 1.0, 2.0]) + 0.01 * rng.standard_normal(f.shape)


def split(codes, f, num_train):
    return codes[:num_train], f[:num_train], codes[num_train:], f[num_train:]


def test_mig_sap_and_dci_equal_the_librarys_on_fixed_arrays():
    f = factors(450, seed=3)
    x_tr, y_tr, x_te, y_te = split(mixed_codes(f), f, 300)
    mus, ys, mus_test, ys_test = x_tr.T, y_tr.T, x_te.T, y_te.T

    got = mig(x_tr, y_tr)["score"]
    assert 0.1 < got < 0.9 and got == pytest.approx(ref_mig(mus, ys), abs=1e-12)

    for continuous in (False, True):
        matrix, score = ref_sap(mus, ys, mus_test, ys_test, continuous)
        got = sap(x_tr, y_tr, x_te, y_te, continuous_factors=continuous)
        assert np.allclose(got["score_matrix"], matrix, rtol=0, atol=1e-12) and got["score"] == pytest.approx(score)
        assert 0.05 < score < 0.9

    ref = ref_dci(mus, ys, mus_test, ys_test)
    got = dci(x_tr, y_tr, x_te, y_te)
    assert np.allclose(got["importance"], ref["importance"], rtol=1e-10, atol=1e-14)
    for key in ("disentanglement", "completeness", "informativeness", "informativeness_train"):
        assert got[key] == pytest.approx(ref[key], abs=1e-10), key
    assert 0.2 < got["disentanglement"] < 0.9 and 0.2 < got["completeness"] < 0.9
    assert got["score"] == got["disentanglement"] and got["per_factor"]["completeness"].shape == (4,)


def test_codes_equal_to_the_factors_reach_each_maximum():
    f = factors(600)
    codes = f.astype(float)
    # the gap is H minus the largest I(code; another factor), which a finite sample leaves a little above 0
    assert mig(codes, f)["score"] > 0.98
    d = dci(codes, f)
    assert d["disentanglement"] > 0.999 and d["completeness"] > 0.999 and d["informativeness"] == 1.0
    # SAP's maximum: a perfect code's accuracy minus an uninformative one's (about 1/K); its 1-d linear SVM
    # classifies two values perfectly from one code, more only partly
    binary = factors(600, sizes=[2, 2, 2])
    s = sap(binary.astype(float), binary)
    assert np.all(np.diag(s["score_matrix"]) == 1.0) and np.allclose(s["per_factor"], 0.5, atol=0.06)
    assert sap(codes, f, continuous_factors=True)["score"] > 0.99


def test_random_codes_score_near_each_floor():
    f = factors(600)
    codes = np.random.default_rng(5).standard_normal((600, 4))
    assert mig(codes, f)["score"] < 0.03
    assert sap(codes, f)["score"] < 0.05
    d = dci(codes, f)
    assert d["disentanglement"] < 0.05 and d["completeness"] < 0.05
    assert d["informativeness"] < np.mean(1 / np.array(SIZES)) + 0.1


def test_entangling_two_factors_lowers_the_scores():
    f = factors(600)
    clean = perfect_codes(f)
    mixed = clean.copy()
    mixed[:, 0], mixed[:, 2] = f[:, 2] + f[:, 3], f[:, 2] - f[:, 3]  # codes 0 and 2 each mix factors 2 and 3
    m_clean, m_mixed = mig(clean, f), mig(mixed, f)
    assert m_mixed["score"] < m_clean["score"] - 0.2
    assert m_mixed["per_factor"][0] > 0.95 and m_mixed["per_factor"][1] > 0.95  # the untouched factors keep theirs
    d_clean, d_mixed = dci(clean, f), dci(mixed, f)
    assert d_mixed["disentanglement"] < d_clean["disentanglement"] - 0.2
    assert d_mixed["completeness"] < d_clean["completeness"] - 0.2
    assert sap(mixed, f)["score"] < sap(clean, f)["score"] - 0.1


def test_categorical_codes_with_relabelled_categories_are_perfect():
    f = factors(600)
    rng = np.random.default_rng(2)
    relabel = [rng.permutation(k) for k in SIZES]
    codes = np.stack([relabel[k][f[:, k]] for k in (3, 1, 0, 2)], axis=1)  # another order, scrambled labels
    cat = [True] * 4
    assert mig(codes, f, categorical=cat)["score"] > 0.97
    d = dci(codes, f, categorical=cat)  # the trees read the scrambled index and still isolate every category
    assert d["disentanglement"] > 0.99 and d["completeness"] > 0.99 and d["informativeness"] == 1.0
    # the SVM on each variable's one-hot columns classifies every factor, whatever its number of values
    s = sap(codes, f, categorical=cat)
    assert np.all(s["score_matrix"][[2, 1, 3, 0], range(4)] == 1.0)
    assert np.allclose(s["per_factor"], 1 - 1 / np.array(SIZES), atol=0.08)
    with pytest.raises(ValueError, match="integer category"):
        mig(codes + 0.5, f, categorical=cat)


def test_joint_codes_mix_continuous_and_categorical_columns():
    f = factors(600)
    codes = np.concatenate([f[:, [0, 1]] * 2.0 + 0.01, f[:, [3, 2]]], axis=1)
    cat = [False, False, True, True]
    d = dci(codes, f, categorical=cat)
    assert d["disentanglement"] > 0.99 and d["completeness"] > 0.99
    assert mig(codes, f, categorical=cat)["score"] > 0.95


def test_the_linear_dci_estimator_is_an_option():
    f = factors(600)
    clean = dci(perfect_codes(f), f, estimator="logistic")
    assert clean["estimator"] == "logistic" and clean["informativeness"] > 0.9 and clean["disentanglement"] > 0.8
    noise = dci(np.random.default_rng(5).standard_normal((600, 4)), f, estimator="logistic")
    assert noise["disentanglement"] < 0.2 and noise["completeness"] < 0.2
    with pytest.raises(ValueError, match="estimator"):
        dci(perfect_codes(f), f, estimator="trees")


def test_dci_over_a_factor_subset_is_dci_of_those_factor_columns():
    """``dci_factors`` restricts DCI alone: its numbers are ``dci`` of the chosen factor columns of the same sample
    (what the benchmark's ``--dci-max-values`` runs); the other metrics keep every factor."""
    mixing = 0.3 * np.random.default_rng(0).standard_normal((GRAMMAR.num_factors, 4))
    mixing[[5, 1, 7, 2], range(4)] += 1.0

    def encode(sentences):  # four codes, each mostly one factor plus some of every other
        return np.stack([GRAMMAR.parse(s) for s in sentences]).astype(float) @ mixing

    subset = [5, 1, 7]
    result = evaluate_disentanglement(encode, GRAMMAR, seed=4, num_train=300, num_eval=150, metrics=("dci", "mig"),
                                      dci_factors=subset)
    f, sentences = sample(GRAMMAR, 450, np.random.default_rng(4))
    codes = encode(sentences)
    ref = dci(codes[:300], f[:300, subset], codes[300:], f[300:, subset], seed=4)
    got = result["dci"]
    assert got["importance"].shape == (4, 3) and np.array_equal(got["importance"], ref["importance"])
    for key in ("disentanglement", "completeness", "informativeness"):
        assert got[key] == ref[key], key
    assert 0.05 < got["disentanglement"] < 0.95
    assert got["factors"] == subset and got["factor_names"] == ["tense", "subject_number", "negation"]
    assert len(result["mig"]["per_factor"]) == GRAMMAR.num_factors
    full = evaluate_disentanglement(encode, GRAMMAR, seed=4, num_train=300, num_eval=150, metrics=("dci",),
                                    dci_estimator="logistic")["dci"]  # every factor by default (linear: fast)
    assert full["factors"] == list(range(GRAMMAR.num_factors)) and full["importance"].shape == (4, GRAMMAR.num_factors)
    # the table shows each covered factor in its own column, "-" for the rest
    completeness = next(r.split() for r in format_scores(result).splitlines() if r.split()[0] == "dci_completeness")
    assert completeness[2 + 1] == f"{got['per_factor']['completeness'][1]:.3f}" and completeness[2 + 0] == "-"
    with pytest.raises(ValueError, match="dci_factors"):
        evaluate_disentanglement(encode, GRAMMAR, num_train=30, num_eval=15, metrics=("dci",), dci_factors=[1, 1])


def test_mutual_information_of_a_copy_is_the_entropy():
    f = factors(3000)
    m = discrete_mutual_info(f, f)
    p = [np.bincount(f[:, k]) / len(f) for k in range(4)]
    assert np.allclose(np.diag(m), [-(q * np.log(q)).sum() for q in p])
    assert np.all(m[~np.eye(4, dtype=bool)] < 0.02)
    bins = discretize(np.linspace(0, 1, 100)[:, None], num_bins=20)
    assert bins.min() == 1 and bins.max() == 20 and len(np.unique(bins)) == 20


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


def mixed_encoder(sentences):
    """Deterministic codes at different scales, mixing factors (standardising them would change the classifier)."""
    x = parse(sentences)
    return np.stack([x[:, 0] + 0.3 * x[:, 1], 5.0 * x[:, 1] - x[:, 2], np.sin(x[:, 2] + x[:, 3]), 0.1 * x[:, 3]], 1)


def test_beta_vae_and_factor_vae_scores_equal_the_librarys():
    data, kw = Toy(), {"batch_size": 8, "num_train": 200, "num_eval": 100}
    ref = ref_beta_vae(data, mixed_encoder, np.random.default_rng(7), **kw)
    got = beta_vae_score(mixed_encoder, data, seed=7, chunk_points=30, **kw)  # chunks that do not divide the points
    assert got["train_accuracy"] == pytest.approx(ref["train_accuracy"], abs=1e-12)
    assert got["score"] == got["eval_accuracy"] == pytest.approx(ref["eval_accuracy"], abs=1e-12)
    assert 0.3 < got["score"] < 0.95

    def dead_first(s):  # a collapsed first code: the library's votes name a code by its place among the kept ones
        return np.concatenate([np.zeros((len(s), 1)), mixed_encoder(s)], axis=1)

    for encoder in (mixed_encoder, dead_first):
        ref = ref_factor_vae(data, encoder, np.random.default_rng(8), num_variance_estimate=500, **kw)
        got = factor_vae_score(encoder, data, seed=8, num_variance_estimate=500, chunk_points=30, **kw)
        assert got["train_accuracy"] == pytest.approx(ref["train_accuracy"], abs=1e-12)
        assert got["score"] == pytest.approx(ref["eval_accuracy"], abs=1e-12) and 0.3 < got["score"] < 0.95
        assert got["num_active_dims"] == 4  # the library reports every code (len of its mask) here


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
    assert fv_mixed["score"] < 0.9 and fv_mixed["per_factor"][1] == 1.0


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
    result = metric_ceilings(GRAMMAR, num_train=500, num_eval=200, score_points=(100, 50), batch_size=16,
                             metrics=("mig", "sap", "factor_vae"))
    assert np.all(result["mig"]["per_factor"] > 0.9)
    assert np.all(np.diag(result["sap"]["score_matrix"]) == 1.0)  # DCI's trees on such codes: see above
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


def test_model_codes_are_encoded_once_per_distinct_sentence(tokenizer, monkeypatch):
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(latent={"type": "joint", "size": 2, "category_sizes": [3, 4]}),
                                tokenizer)
    uncached, _ = model_encode_fn(model, cache=False)
    encode_fn, _ = model_encode_fn(model)
    seen: list[str] = []
    real_encode = model.encode
    monkeypatch.setattr(model, "encode", lambda sentences: (seen.extend(sentences), real_encode(sentences))[1])
    first = [SENTENCES[2], SENTENCES[0], SENTENCES[2]]
    second = [SENTENCES[1], SENTENCES[0], SENTENCES[1], SENTENCES[3]]
    codes_first, codes_second = encode_fn(first), encode_fn(second)
    assert seen == [SENTENCES[2], SENTENCES[0], SENTENCES[1], SENTENCES[3]]  # each distinct sentence once
    assert np.allclose(codes_first, uncached(first), atol=1e-6)
    assert np.allclose(codes_second, uncached(second), atol=1e-6)
    assert np.array_equal(codes_second[1], codes_first[1])
