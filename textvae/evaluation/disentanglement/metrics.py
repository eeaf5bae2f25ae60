"""Disentanglement metrics computed as disentanglement_lib computes them (``evaluation/metrics/*.py``), with the
estimators and sizes of its ``unsupervised_study_v1`` metric configs:

- MIG (Chen et al. 2018): each code cut into 20 equal-width bins (``np.histogram``); I(code; factor) by sklearn's
  ``mutual_info_score``; per factor (largest - second largest) / H(factor); the mean. 10,000 points.
- SAP (Kumar et al. 2018): score matrix of held-out accuracies of ``LinearSVC(C=0.01, class_weight="balanced")``
  fitted on one code dimension for one factor; per factor the gap between its two best codes; the mean. 10,000
  training and 5,000 test points.
- DCI (Eastwood & Williams 2018): one ``GradientBoostingClassifier()`` per factor on all codes; the importance matrix
  is their ``feature_importances_``; disentanglement (completeness) = 1 - entropy of each code's (factor's)
  importances in base K (D), weighted by the code's (factor's) share of all importance; informativeness = mean
  accuracy. 10,000 training and 5,000 test points.
- beta-VAE score (Higgins et al. 2017): ``LogisticRegression()`` (sklearn's defaults) on the raw mean |code1 - code2|
  of 64 pairs of sentences that share one factor, predicting that factor; held-out accuracy. 10,000 + 5,000 points.
- FactorVAE score (Kim & Mnih 2018): in 64 sentences sharing one factor, the code with the least variance relative
  to its global variance (over 10,000 sentences; codes with a global std below 0.05 pruned) votes for the factor;
  held-out accuracy of the majority vote. 10,000 + 5,000 points.

What this module adds for cases the library does not handle; where its code applies (continuous codes, two or more
codes, no constant factor), the values are its values:
- Categorical code columns (``categorical[d]``: a latent variable's category index). MIG keeps their categories as
  bins (the histogram cuts the same bins for at most 20 categories numbered from 0, and merges categories beyond);
  SAP fits its SVM on the column's one-hot encoding (a 1-d linear classifier of an arbitrary index means nothing);
  DCI's trees read the index as the library would.
- Per-factor scores; a constant factor is left out of MIG's mean (the library divides by 0); one code column is
  allowed. The FactorVAE score reports the codes left after pruning (the library reports all of them).
- ``dci(estimator="logistic")``, a fast linear importance for factors with many values (see ``dci``).
- The sampled scores draw from a ``numpy.random.Generator`` in the library's order (``integers`` for ``randint``)
  and encode many points per call; the trees are seeded.

sklearn's defaults are those installed: before 0.22 ``LogisticRegression()`` was liblinear one-vs-rest, since then it
is multinomial L-BFGS (C = 1, 100 iterations, which may warn that it did not converge, as the library's does).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import scipy.stats
import torch
from scipy.special import log_softmax
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from ...data.ground_truth import GroundTruthData, sample, sample_observations

EncodeFn = Callable[[list[str]], Any]


# ---------------------------------------------------------------- inputs


def _rng(seed: "int | np.random.Generator | None") -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(codes: np.ndarray, factors: np.ndarray, categorical: Optional[Sequence[bool]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes must be (N, D) and factors (N, K) with the same N, got {codes.shape} and {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integers, got dtype {factors.dtype}")
    if len(codes) < 2:
        raise ValueError("need at least two points")
    mask = np.zeros(codes.shape[1], dtype=bool) if categorical is None else np.asarray(categorical, dtype=bool)
    if mask.shape != (codes.shape[1],):
        raise ValueError(f"categorical must have one entry per code column ({codes.shape[1]}), got {mask.shape}")
    if mask.any() and not np.all(codes[:, mask] == np.round(codes[:, mask])):
        raise ValueError("categorical code columns must hold integer category indices")
    return codes, factors.astype(np.int64), mask


def _train_test(codes, factors, test_codes, test_factors, test_fraction: float):
    """Explicit held-out points, or the last ``test_fraction`` of the rows (1/3: the library's 10,000 / 5,000)."""
    if test_codes is not None:
        return codes, factors, np.asarray(test_codes, dtype=np.float64), np.asarray(test_factors).astype(np.int64)
    n_test = max(1, int(round(len(codes) * test_fraction)))
    return codes[:-n_test], factors[:-n_test], codes[-n_test:], factors[-n_test:]


def _one_hot(train_column: np.ndarray, column: np.ndarray) -> np.ndarray:
    """(N, C) one-hot of ``column`` over the categories seen in ``train_column`` (an unseen one is all zeros)."""
    categories = np.unique(train_column)
    pos = np.clip(np.searchsorted(categories, column), 0, len(categories) - 1)
    out = np.zeros((len(column), len(categories)))
    hit = categories[pos] == column
    out[np.nonzero(hit)[0], pos[hit]] = 1.0
    return out


def _fit_or_constant(estimator, x: np.ndarray, y: np.ndarray):
    """``estimator`` fitted on (x, y), or, where y holds one class (sklearn's classifiers refuse it), None."""
    return estimator.fit(x, y) if len(np.unique(y)) > 1 else None


def _predict(model, x: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    return model.predict(x) if model is not None else np.full(len(x), y_train[0])


# ---------------------------------------------------------------- MIG


def discretize(codes: np.ndarray, num_bins: int = 20, categorical: Optional[Sequence[bool]] = None) -> np.ndarray:
    """Integer bins (N, D): continuous columns cut into ``num_bins`` equal-width bins over their range (the
    library's ``_histogram_discretize``), categorical columns kept as their categories."""
    codes = np.asarray(codes, dtype=np.float64)
    mask = np.zeros(codes.shape[1], dtype=bool) if categorical is None else np.asarray(categorical, dtype=bool)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        if mask[d]:
            out[:, d] = np.unique(codes[:, d], return_inverse=True)[1].reshape(-1)
        else:
            out[:, d] = np.digitize(codes[:, d], np.histogram(codes[:, d], num_bins)[1][:-1])
    return out


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_d; factor_k) in nats for integer codes (N, D) and factors (N, K): (D, K)."""
    return np.array([[mutual_info_score(factors[:, k], codes[:, d]) for k in range(factors.shape[1])]
                     for d in range(codes.shape[1])]).reshape(codes.shape[1], factors.shape[1])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """H(factor_k) in nats: (K,), as the library's I(factor; factor)."""
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20, categorical: Optional[Sequence[bool]] = None) -> dict:
    """Mutual information gap: per factor, (largest - second largest I(code_d; factor)) / H(factor), on codes
    discretised into ``num_bins`` bins; ``score`` is the mean over factors (constant factors are left out)."""
    codes, factors, mask = _check(codes, factors, categorical)
    m = discrete_mutual_info(discretize(codes, num_bins, mask), factors)  # (D, K)
    h = discrete_entropy(factors)
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(h > 0, (top[0] - second) / h, np.nan)
    return {"score": float(np.nanmean(per_factor)), "per_factor": per_factor, "mutual_info": m, "entropy": h}


# ---------------------------------------------------------------- SAP


def sap(
    codes: np.ndarray,
    factors: np.ndarray,
    test_codes: Optional[np.ndarray] = None,
    test_factors: Optional[np.ndarray] = None,
    categorical: Optional[Sequence[bool]] = None,
    continuous_factors: bool = False,
    test_fraction: float = 1 / 3,
) -> dict:
    """Separated attribute predictability: per factor, the gap between the two code dimensions that predict it best
    on their own (held-out accuracy of ``LinearSVC(C=0.01, class_weight="balanced")`` on that one dimension, on the
    one-hot columns of a categorical one, or its
    R^2 on the training points with ``continuous_factors``); ``score`` = mean. Without test arrays the last
    ``test_fraction`` of the rows is held out. About 0.01 s per (code, factor) pair with two classes and 10,000
    points, 1-3 s with 1,100 classes (one SVM per class)."""
    codes, factors, mask = _check(codes, factors, categorical)
    x_tr, y_tr, x_te, y_te = _train_test(codes, factors, test_codes, test_factors, test_fraction)
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    matrix = np.zeros((num_codes, num_factors))
    for d in range(num_codes):
        if mask[d]:
            f_tr, f_te = _one_hot(x_tr[:, d], x_tr[:, d]), _one_hot(x_tr[:, d], x_te[:, d])
        else:
            f_tr, f_te = x_tr[:, d : d + 1], x_te[:, d : d + 1]
        for k in range(num_factors):
            if continuous_factors:
                cov = np.cov(x_tr[:, d], y_tr[:, k], ddof=1)
                matrix[d, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 and cov[1, 1] > 0 else 0.0
            else:
                model = _fit_or_constant(LinearSVC(C=0.01, class_weight="balanced"), f_tr, y_tr[:, k])
                matrix[d, k] = np.mean(_predict(model, f_te, y_tr[:, k]) == y_te[:, k])
    top = np.sort(matrix, axis=0)
    per_factor = top[-1] - (top[-2] if num_codes > 1 else 0.0)
    return {"score": float(per_factor.mean()), "per_factor": per_factor, "score_matrix": matrix}


# ---------------------------------------------------------------- DCI


def _gbt_importance(x_tr, y_tr, x_te, mask, seed):
    """The library's ``compute_importance_gbt``: importances (D,), train and test predictions."""
    model = _fit_or_constant(GradientBoostingClassifier(random_state=seed), x_tr, y_tr)
    importance = np.abs(model.feature_importances_) if model is not None else np.zeros(x_tr.shape[1])
    return importance, _predict(model, x_tr, y_tr), _predict(model, x_te, y_tr)


def _logistic_importance(x_tr, y_tr, x_te, mask, seed):
    """``dci(estimator="logistic")``'s importances (D,), normalised to sum to 1 as the trees' are, and predictions.
    For small effects the rise in cross-entropy is half the squared Fisher norm of the ablated contribution, so
    the importance is a linear effect size comparable across continuous and categorical columns."""
    mean, std = x_tr[:, ~mask].mean(0), x_tr[:, ~mask].std(0)
    std[std < 1e-12] = 1.0

    def blocks(x):  # one design-matrix block per code column
        cont = iter(((x[:, ~mask] - mean) / std).T)
        return [_one_hot(x_tr[:, d], x[:, d]) if mask[d] else next(cont)[:, None] for d in range(x.shape[1])]

    parts_tr = blocks(x_tr)
    design_tr, design_te = np.concatenate(parts_tr, 1), np.concatenate(blocks(x_te), 1)
    model = _fit_or_constant(LogisticRegression(max_iter=1000), design_tr, y_tr)
    if model is None:
        return np.zeros(x_tr.shape[1]), _predict(None, x_tr, y_tr), _predict(None, x_te, y_tr)
    coef, bias = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # sklearn's one logit z as the two logits (-z/2, z/2) of the same probabilities
        coef, bias = np.concatenate([-coef, coef]) / 2, np.concatenate([-bias, bias]) / 2
    logits = design_tr @ coef.T + bias
    target = np.searchsorted(model.classes_, y_tr)

    def cross_entropy(z):
        return -log_softmax(z, axis=1)[np.arange(len(z)), target].mean()

    base, importance, start = cross_entropy(logits), np.zeros(x_tr.shape[1]), 0
    for d, part in enumerate(parts_tr):
        contribution = part @ coef[:, start : start + part.shape[1]].T
        start += part.shape[1]
        importance[d] = np.sqrt(2.0 * max(cross_entropy(logits - contribution + contribution.mean(0)) - base, 0.0))
    if importance.sum() > 0:
        importance /= importance.sum()
    return importance, model.predict(design_tr), model.predict(design_te)


def dci_scores(importance: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """The library's disentanglement and completeness of an importance matrix (D, K), and per code / per factor."""
    num_codes, num_factors = importance.shape
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=num_factors) if num_factors > 1 else np.ones(num_codes)
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=num_codes) if num_codes > 1 else np.ones(num_factors)
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    disentanglement = float(np.sum(per_code * weights.sum(1) / weights.sum()))
    completeness = float(np.sum(per_factor * weights.sum(0) / weights.sum()))
    return disentanglement, completeness, per_code, per_factor


_IMPORTANCE = {"gbt": _gbt_importance, "logistic": _logistic_importance}


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    test_codes: Optional[np.ndarray] = None,
    test_factors: Optional[np.ndarray] = None,
    categorical: Optional[Sequence[bool]] = None,
    test_fraction: float = 1 / 3,
    estimator: str = "gbt",
    seed: int = 0,
) -> dict:
    """DCI (Eastwood & Williams 2018) from the importance matrix R (D, K) of one classifier per factor:
    ``disentanglement`` = sum_d rho_d (1 - H_K(R[d, :])), ``completeness`` = sum_k rho_k (1 - H_D(R[:, k])),
    ``informativeness`` = mean held-out accuracy. Without test arrays the last ``test_fraction`` is held out.

    ``estimator="gbt"`` is the library's ``GradientBoostingClassifier()`` (seeded with ``seed``), whose fit grows
    100 trees per class (one for two classes): at 10,000 points and ten Gaussian codes on a 2-core CPU about 6 s for
    a two-valued factor, 20 s for a three-valued one, and roughly 1.5 hours for dSentences' 1,100-valued verb-object
    factor (20 minutes on its oracle's integer codes). ``estimator="logistic"`` fits one multinomial logistic
    regression (C = 1) per factor on standardised continuous and one-hot categorical columns and takes code d's
    importance as sqrt(2 * the rise in training cross-entropy when d's logit contribution is replaced by its mean):
    seconds, but linear (blind to a factor one code encodes non-monotonically), and not the library's numbers."""
    if estimator not in _IMPORTANCE:
        raise ValueError(f"estimator must be one of {sorted(_IMPORTANCE)}, got {estimator!r}")
    codes, factors, mask = _check(codes, factors, categorical)
    x_tr, y_tr, x_te, y_te = _train_test(codes, factors, test_codes, test_factors, test_fraction)
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    importance = np.zeros((num_codes, num_factors))
    acc_train, acc_test = np.zeros(num_factors), np.zeros(num_factors)
    for k in range(num_factors):
        importance[:, k], pred_tr, pred_te = _IMPORTANCE[estimator](x_tr, y_tr[:, k], x_te, mask, seed)
        acc_train[k], acc_test[k] = np.mean(pred_tr == y_tr[:, k]), np.mean(pred_te == y_te[:, k])
    disentanglement, completeness, per_code, per_factor = dci_scores(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness": float(acc_test.mean()),
        "informativeness_train": float(acc_train.mean()),
        "score": disentanglement,
        "per_factor": {"completeness": per_factor, "informativeness": acc_test},
        "per_code": {"disentanglement": per_code},
        "importance": importance,
        "estimator": estimator,
    }


# ---------------------------------------------------------------- scores that sample from ground-truth data


def _encode(encode_fn: EncodeFn, sentences: list[str]) -> np.ndarray:
    codes = encode_fn(sentences)
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) != len(sentences):
        raise ValueError(f"encode_fn must return (N, D) codes for N sentences, got {codes.shape} for {len(sentences)}")
    return codes


def _fixed_factor_points(encode_fn, data, rng, num_points, batch_size, pairs, chunk_points):
    """Per chunk of points: the fixed factor of each point (n,) and codes (n, 1 or 2, batch_size, D), drawn in the
    library's order: the factor, then (beta-VAE, ``pairs``) two batches of factors sharing it, or (FactorVAE) one
    batch where every row takes the first row's value, then their sentences."""
    for start in range(0, num_points, chunk_points):
        ys, sentences = [], []
        for _ in range(min(chunk_points, num_points - start)):
            y = int(rng.integers(data.num_factors))
            if pairs:
                f1 = data.sample_factors(batch_size, rng)
                f2 = data.sample_factors(batch_size, rng)
                f2[:, y] = f1[:, y]
                batches = [f1, f2]
            else:
                f1 = data.sample_factors(batch_size, rng)
                f1[:, y] = f1[0, y]
                batches = [f1]
            for f in batches:
                sentences += data.sample_observations_from_factors(f, rng)
            ys.append(y)
        yield np.array(ys, dtype=np.int64), _encode(encode_fn, sentences).reshape(len(ys), 2 if pairs else 1, batch_size, -1)


def beta_vae_score(
    encode_fn: EncodeFn,
    data: GroundTruthData,
    seed: "int | np.random.Generator | None" = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    chunk_points: int = 200,
) -> dict:
    """beta-VAE score (Higgins et al. 2017): ``LogisticRegression()`` predicts which factor two batches of sentences
    share from their raw mean |code1 - code2| over ``batch_size`` pairs; ``score`` is its held-out accuracy."""
    rng = _rng(seed)

    def features(num_points):
        ys, xs = [], []
        for y, codes in _fixed_factor_points(encode_fn, data, rng, num_points, batch_size, True, chunk_points):
            ys.append(y)
            xs.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = features(num_train)
    model = LogisticRegression().fit(x_tr, y_tr)
    x_ev, y_ev = features(num_eval)
    pred_tr, pred_ev = model.predict(x_tr), model.predict(x_ev)
    per_factor = np.array([np.mean(pred_ev[y_ev == k] == k) if np.any(y_ev == k) else np.nan for k in range(data.num_factors)])
    eval_accuracy = float(np.mean(pred_ev == y_ev))
    return {"score": eval_accuracy, "train_accuracy": float(np.mean(pred_tr == y_tr)), "eval_accuracy": eval_accuracy,
            "per_factor": per_factor}


def factor_vae_score(
    encode_fn: EncodeFn,
    data: GroundTruthData,
    seed: "int | np.random.Generator | None" = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    chunk_points: int = 200,
) -> dict:
    """FactorVAE score (Kim & Mnih 2018): in batches sharing one factor, the code dimension with the least
    variance (relative to its global variance) votes for that factor; ``score`` is the held-out accuracy of the
    majority-vote classifier. Dimensions with global std below ``prune_threshold`` are dropped."""
    rng = _rng(seed)
    global_var = np.var(_encode(encode_fn, sample_observations(data, num_variance_estimate, rng)), axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    num_codes = len(global_var)
    if not active.any():
        nan = np.full(data.num_factors, np.nan)
        return {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "per_factor": nan, "num_active_dims": 0}
    active_index = np.nonzero(active)[0]

    def votes(num_points):
        table = np.zeros((data.num_factors, num_codes), dtype=np.int64)
        for y, codes in _fixed_factor_points(encode_fn, data, rng, num_points, batch_size, False, chunk_points):
            local_var = np.var(codes[:, 0], axis=1, ddof=1)  # (n, D)
            # the library votes for the argmin's position among the active codes; the code's own index only
            # renames the table's columns, which leaves every accuracy as it is
            pick = active_index[np.argmin(local_var[:, active] / global_var[active], axis=1)]
            np.add.at(table, (y, pick), 1)
        return table

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # factor predicted by each code dimension
    eval_votes = votes(num_eval)
    codes_idx = np.arange(num_codes)
    train_accuracy = float(train_votes[classifier, codes_idx].sum() / train_votes.sum())
    eval_accuracy = float(eval_votes[classifier, codes_idx].sum() / eval_votes.sum())
    per_factor = np.array([eval_votes[k, classifier == k].sum() / eval_votes[k].sum() if eval_votes[k].sum() else np.nan
                           for k in range(data.num_factors)])
    return {"score": eval_accuracy, "train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy,
            "per_factor": per_factor, "num_active_dims": int(active.sum())}


# ---------------------------------------------------------------- every metric at once


def evaluate_disentanglement(
    encode_fn: EncodeFn,
    data: GroundTruthData,
    categorical: Optional[Sequence[bool]] = None,
    seed: int = 0,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_bins: int = 20,
    batch_size: int = 64,
    score_points: Optional[tuple[int, int]] = None,
    metrics: Sequence[str] = ("beta_vae", "factor_vae", "mig", "dci", "sap"),
    dci_estimator: str = "gbt",
    dci_factors: Optional[Sequence[int]] = None,
) -> dict:
    """Every metric for one encoder, with wall times: MIG, DCI and SAP on ``num_train`` + ``num_eval`` sampled
    sentences (MIG on the training points, as the library; the three share one sample, where the library draws one
    per metric), the beta-VAE and FactorVAE scores on ``score_points`` = (train, eval) points of ``batch_size``
    sentences (default: ``num_train``, ``num_eval``). See ``dci`` for the time GBT takes.

    ``dci_factors`` (factor indices; default all) computes DCI over those factors alone: ``dci`` of their factor
    columns, as the library would score data that had only those factors (entropies in base len(dci_factors)).
    ``out["dci"]["factors"]`` and ``["factor_names"]`` say which; its per-factor arrays follow that order."""
    rng = np.random.default_rng(seed)
    out: dict = {"factor_names": list(data.factor_names), "seconds": {}}
    dci_k = list(range(data.num_factors)) if dci_factors is None else [int(k) for k in dci_factors]
    if not dci_k or len(set(dci_k)) != len(dci_k) or not all(0 <= k < data.num_factors for k in dci_k):
        raise ValueError(f"dci_factors must be distinct factor indices in [0, {data.num_factors}), got {dci_factors}")
    factors, sentences = sample(data, num_train + num_eval, rng)
    codes = _encode(encode_fn, sentences)
    tr, te = slice(0, num_train), slice(num_train, None)
    points = score_points or (num_train, num_eval)
    runs = {
        "mig": lambda: mig(codes[tr], factors[tr], num_bins=num_bins, categorical=categorical),
        "sap": lambda: sap(codes[tr], factors[tr], codes[te], factors[te], categorical=categorical),
        "dci": lambda: {**dci(codes[tr], factors[tr][:, dci_k], codes[te], factors[te][:, dci_k],
                              categorical=categorical, estimator=dci_estimator, seed=seed),
                        "factors": dci_k, "factor_names": [out["factor_names"][k] for k in dci_k]},
        "beta_vae": lambda: beta_vae_score(encode_fn, data, seed + 1, batch_size, *points),
        "factor_vae": lambda: factor_vae_score(encode_fn, data, seed + 2, batch_size, *points),
    }
    for name in metrics:
        start = time.perf_counter()
        out[name] = runs[name]()
        out["seconds"][name] = time.perf_counter() - start
    return out


def format_scores(result: dict, digits: int = 3) -> str:
    """A text table: one row per metric, the mean and one column per factor."""
    names = result["factor_names"]
    rows = [("metric", "mean", *names)]

    def fmt(x):
        return "nan" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"

    for metric in ("beta_vae", "factor_vae", "mig", "sap"):
        if metric in result:
            rows.append((metric, fmt(result[metric]["score"]), *map(fmt, result[metric]["per_factor"])))
    if "dci" in result:
        d = result["dci"]
        column = {k: i for i, k in enumerate(d.get("factors", range(len(names))))}  # "-": a factor DCI left out

        def per_factor(values):
            return [fmt(values[column[k]]) if k in column else "-" for k in range(len(names))]

        rows.append(("dci_disentanglement", fmt(d["disentanglement"]), *[""] * len(names)))
        rows.append(("dci_completeness", fmt(d["completeness"]), *per_factor(d["per_factor"]["completeness"])))
        rows.append(("dci_informativeness", fmt(d["informativeness"]), *per_factor(d["per_factor"]["informativeness"])))
    if "undetermined_fraction" in result:
        rows.append(("undetermined", "", *map(fmt, result["undetermined_fraction"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows)
