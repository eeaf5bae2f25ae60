"""Disentanglement metrics on ground-truth data, with disentanglement_lib's definitions and defaults:
beta-VAE score (Higgins et al. 2017), FactorVAE score (Kim & Mnih 2018), MIG (Chen et al. 2018),
DCI disentanglement / completeness / informativeness (Eastwood & Williams 2018), SAP (Kumar et al. 2018);
plus the ceiling a perfect text encoder reaches on each factor, and latent traversals printed as text.

Codes are numpy arrays (N, D) and factors integer arrays (N, K). A code column is continuous (a Gaussian mean) or,
where ``categorical[d]`` is true, a category index (a categorical latent variable, or a factor fed in as a code);
``latent_variables`` turns a model's concatenated one-hot codes into one column per latent variable.

scikit-learn is not used; where disentanglement_lib fits one of its models we fit the following instead:
- beta-VAE score: multinomial logistic regression, as the library (sklearn's default: L2, C = 1), by L-BFGS.
- DCI: the library fits gradient-boosted trees per factor and reads their impurity importances (the training-loss
  reduction each code brings, normalised to sum to 1 per factor). We fit one L2-regularised multinomial logistic
  regression per factor (sklearn's C = 1) on standardised continuous columns and one-hot categorical columns, and take
  R[d, k] = sqrt(2 * rise in training cross-entropy when code d's logit contribution is replaced by its mean),
  normalised to sum to 1 per factor. It is loss-based like the trees' importance, reduces to Eastwood & Williams'
  linear |w| std(x) for small effects (so pure-noise codes spread evenly and score near 0), and compares continuous
  and categorical columns and factors with 2 or 1100 values on one scale, which raw weights do not.
  Informativeness = held-out accuracy (the library's ``informativeness_test``). A linear model cannot read a factor
  that one continuous dimension encodes non-monotonically, where trees could.
- SAP: the library fits a 1-d linear SVM per (dimension, factor) pair. We use nearest class mean on that one
  dimension (1-d linear discriminant analysis with equal priors, also a linear classifier with one interval per
  class), and for a categorical column the class-balanced majority per category.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..data.ground_truth import GroundTruthData, sample, sample_observations

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


# ---------------------------------------------------------------- information-theoretic pieces


def discretize(codes: np.ndarray, num_bins: int = 20, categorical: Optional[Sequence[bool]] = None) -> np.ndarray:
    """Integer bins (N, D): continuous columns cut into ``num_bins`` equal-width bins over their range (the
    library's ``histogram_discretize``), categorical columns kept as their categories."""
    codes = np.asarray(codes, dtype=np.float64)
    mask = np.zeros(codes.shape[1], dtype=bool) if categorical is None else np.asarray(categorical, dtype=bool)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        if mask[d]:
            out[:, d] = np.unique(codes[:, d], return_inverse=True)[1].reshape(-1)
        else:
            out[:, d] = np.digitize(codes[:, d], np.histogram(codes[:, d], num_bins)[1][:-1])
    return out


def _joint_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information in nats of two integer vectors (sklearn's ``mutual_info_score``)."""
    a = np.unique(a, return_inverse=True)[1].reshape(-1)
    b = np.unique(b, return_inverse=True)[1].reshape(-1)
    na, nb = a.max() + 1, b.max() + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * (np.log(joint[nz]) - np.log((pa @ pb)[nz]))).sum())


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_d; factor_k) in nats for integer codes (N, D) and factors (N, K): (D, K)."""
    return np.array([[_joint_mi(codes[:, d], factors[:, k]) for k in range(factors.shape[1])] for d in range(codes.shape[1])])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """H(factor_k) in nats: (K,)."""
    out = []
    for k in range(factors.shape[1]):
        p = np.bincount(np.unique(factors[:, k], return_inverse=True)[1].reshape(-1)) / len(factors)
        out.append(float(-(p * np.log(p)).sum()))
    return np.array(out)


# ---------------------------------------------------------------- MIG


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


def _nearest_mean_accuracy(x_train, y_train, x_test, y_test) -> float:
    classes = np.unique(y_train)
    means = np.array([x_train[y_train == c].mean() for c in classes])
    order = np.argsort(means)  # nearest mean via the midpoints between sorted means: O(N log C), not O(N C)
    sorted_means = means[order]
    cuts = (sorted_means[1:] + sorted_means[:-1]) / 2
    pred = classes[order[np.searchsorted(cuts, x_test)]]
    return float(np.mean(pred == y_test))


def _category_majority_accuracy(c_train, y_train, c_test, y_test) -> float:
    classes, y_idx = np.unique(y_train, return_inverse=True)
    cats, c_idx = np.unique(c_train, return_inverse=True)
    counts = np.zeros((len(cats), len(classes)))
    np.add.at(counts, (c_idx.reshape(-1), y_idx.reshape(-1)), 1.0)
    balanced = counts / counts.sum(0, keepdims=True)  # class-balanced, as the library's class_weight="balanced"
    rule = classes[balanced.argmax(1)]
    fallback = classes[counts.sum(0).argmax()]
    lookup = dict(zip(cats.tolist(), rule.tolist()))
    pred = np.array([lookup.get(c, fallback) for c in c_test.tolist()])
    return float(np.mean(pred == y_test))


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
    on their own (held-out accuracy of a 1-d classifier, or R^2 with ``continuous_factors``); ``score`` = mean.
    Without test arrays the last ``test_fraction`` of the rows is held out."""
    codes, factors, mask = _check(codes, factors, categorical)
    x_tr, y_tr, x_te, y_te = _train_test(codes, factors, test_codes, test_factors, test_fraction)
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    matrix = np.zeros((num_codes, num_factors))
    for d in range(num_codes):
        for k in range(num_factors):
            if continuous_factors:
                cov = np.cov(x_tr[:, d], y_tr[:, k], ddof=1)
                matrix[d, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 and cov[1, 1] > 0 else 0.0
            elif mask[d]:
                matrix[d, k] = _category_majority_accuracy(x_tr[:, d], y_tr[:, k], x_te[:, d], y_te[:, k])
            else:
                matrix[d, k] = _nearest_mean_accuracy(x_tr[:, d], y_tr[:, k], x_te[:, d], y_te[:, k])
    top = np.sort(matrix, axis=0)
    per_factor = top[-1] - (top[-2] if num_codes > 1 else 0.0)
    return {"score": float(per_factor.mean()), "per_factor": per_factor, "score_matrix": matrix}


# ---------------------------------------------------------------- multinomial logistic regression (torch, L-BFGS)


class _Features:
    """Design matrix pieces: standardised continuous columns (dense) and categorical columns as indices into one
    table of per-category weights (one-hot features without building them; unseen categories index a zero row)."""

    def __init__(self, x_train: np.ndarray, mask: np.ndarray) -> None:
        self.mask = mask
        cont = x_train[:, ~mask]
        self.mean, self.std = cont.mean(0), cont.std(0)
        self.std[self.std < 1e-12] = 1.0
        self.categories = [np.unique(x_train[:, d]) for d in np.nonzero(mask)[0]]
        self.offsets = np.cumsum([0] + [len(c) for c in self.categories])
        self.num_rows = int(self.offsets[-1])  # the padding row

    def __call__(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        dense = torch.as_tensor((x[:, ~self.mask] - self.mean) / self.std, dtype=torch.float32)
        index = np.full((len(x), len(self.categories)), self.num_rows, dtype=np.int64)
        for g, (cats, d) in enumerate(zip(self.categories, np.nonzero(self.mask)[0])):
            pos = np.clip(np.searchsorted(cats, x[:, d]), 0, len(cats) - 1)
            index[:, g] = np.where(cats[pos] == x[:, d], self.offsets[g] + pos, self.num_rows)
        return dense, torch.as_tensor(index)


class _Softmax:
    """logits = dense @ W + sum_g table[index_g] + b, fitted by L-BFGS on mean cross-entropy + l2/2 * |weights|^2."""

    def __init__(self, features: _Features, num_classes: int) -> None:
        num_dense = int((~features.mask).sum())
        self.pad = features.num_rows
        self.w = torch.zeros(num_dense, num_classes, requires_grad=True)
        self.table = torch.zeros(features.num_rows + 1, num_classes, requires_grad=True)
        self.b = torch.zeros(num_classes, requires_grad=True)

    def logits(self, dense: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        out = dense @ self.w + self.b
        if index.size(1):
            out = out + torch.nn.functional.embedding_bag(index, self.table, mode="sum", padding_idx=self.pad)
        return out

    def fit(self, dense, index, y: torch.Tensor, l2: float, max_iter: int) -> "_Softmax":
        opt = torch.optim.LBFGS([self.w, self.table, self.b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-5,
                                tolerance_change=1e-7, history_size=10, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.logits(dense, index), y)
            loss = loss + 0.5 * l2 * (self.w.pow(2).sum() + self.table.pow(2).sum())
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, dense, index) -> np.ndarray:
        return self.logits(dense, index).argmax(1).numpy()

    @torch.no_grad()
    def ablation_importance(self, dense, index, y: torch.Tensor, mask: np.ndarray) -> np.ndarray:
        """sqrt(2 * rise in cross-entropy) when one code column's logit contribution is replaced by its mean over
        the points, for each column (D,). For small effects the rise is half the squared Fisher norm of the
        contribution, so this is a linear effect size (|w| std(x) for one standardised column and two classes),
        comparable across continuous and categorical columns and numbers of classes."""
        logits = self.logits(dense, index)
        base = torch.nn.functional.cross_entropy(logits, y)
        out = np.zeros(len(mask))
        dense_cols, cat_cols = np.nonzero(~mask)[0], np.nonzero(mask)[0]
        parts = [dense[:, j : j + 1] * self.w[j] for j in range(len(dense_cols))]
        padded = torch.cat([self.table[: self.pad], torch.zeros_like(self.table[:1])])
        parts += [padded[index[:, g]] for g in range(len(cat_cols))]
        for d, part in zip([*dense_cols, *cat_cols], parts):
            rise = float(torch.nn.functional.cross_entropy(logits - part + part.mean(0), y) - base)
            out[d] = np.sqrt(2.0 * max(rise, 0.0))
        return out


def _fit_softmax(x_tr, y_tr, mask, num_classes, l2, max_iter):
    feats = _Features(x_tr, mask)
    model = _Softmax(feats, num_classes)
    model.fit(*feats(x_tr), torch.as_tensor(y_tr, dtype=torch.long), l2, max_iter)
    return feats, model


# ---------------------------------------------------------------- DCI


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """scipy.stats.entropy of each row of ``p`` (normalised first), in base ``base``."""
    p = p + 1e-11
    p = p / p.sum(1, keepdims=True)
    return -(p * np.log(p)).sum(1) / np.log(base)


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    test_codes: Optional[np.ndarray] = None,
    test_factors: Optional[np.ndarray] = None,
    categorical: Optional[Sequence[bool]] = None,
    test_fraction: float = 1 / 3,
    l2: Optional[float] = None,
    max_iter: int = 100,
) -> dict:
    """DCI (Eastwood & Williams 2018) from a linear importance matrix R (D, K) (see the module docstring):
    ``disentanglement`` = sum_d rho_d (1 - H_K(R[d, :])), ``completeness`` = sum_k rho_k (1 - H_D(R[:, k])),
    ``informativeness`` = mean held-out accuracy. ``l2`` defaults to 1 / N_train (sklearn's C = 1)."""
    codes, factors, mask = _check(codes, factors, categorical)
    x_tr, y_tr, x_te, y_te = _train_test(codes, factors, test_codes, test_factors, test_fraction)
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    l2 = 1.0 / len(x_tr) if l2 is None else l2
    importance = np.zeros((num_codes, num_factors))
    acc_train, acc_test = np.zeros(num_factors), np.zeros(num_factors)
    feats = _Features(x_tr, mask)
    train_x, test_x = feats(x_tr), feats(x_te)
    for k in range(num_factors):
        num_classes = int(max(y_tr[:, k].max(), y_te[:, k].max())) + 1
        model = _Softmax(feats, num_classes).fit(*train_x, torch.as_tensor(y_tr[:, k]), l2, max_iter)
        importance[:, k] = model.ablation_importance(*train_x, torch.as_tensor(y_tr[:, k]), mask)
        if importance[:, k].sum() > 0:  # each factor's importances sum to 1, as sklearn's feature_importances_
            importance[:, k] /= importance[:, k].sum()
        acc_train[k] = np.mean(model.predict(*train_x) == y_tr[:, k])
        acc_test[k] = np.mean(model.predict(*test_x) == y_te[:, k])
    total = importance.sum()
    weights = importance if total > 0 else np.ones_like(importance)
    per_code = 1.0 - _entropy_rows(importance, num_factors) if num_factors > 1 else np.ones(num_codes)
    per_factor_c = 1.0 - _entropy_rows(importance.T, num_codes) if num_codes > 1 else np.ones(num_factors)
    disentanglement = float((per_code * weights.sum(1) / weights.sum()).sum())
    completeness = float((per_factor_c * weights.sum(0) / weights.sum()).sum())
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness": float(acc_test.mean()),
        "informativeness_train": float(acc_train.mean()),
        "score": disentanglement,
        "per_factor": {"completeness": per_factor_c, "informativeness": acc_test},
        "per_code": {"disentanglement": per_code},
        "importance": importance,
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


def _fixed_factor_batches(data: GroundTruthData, rng: np.random.Generator, num_points: int, batch_size: int,
                          pairs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Factor index fixed in each point (P,) and factors (P, 1 or 2, B, K): beta-VAE pairs share factor y within
    each pair (``pairs``); FactorVAE batches share it across the batch."""
    k = data.num_factors
    y = rng.integers(0, k, size=num_points)
    f = data.sample_factors(num_points * batch_size * (2 if pairs else 1), rng).reshape(num_points, 2 if pairs else 1, batch_size, k)
    points = np.arange(num_points)
    if pairs:
        f[points, 1, :, y] = f[points, 0, :, y]
    else:
        f[points, 0, :, y] = f[points, 0, :1, y]
    return y, f


def _points(encode_fn, data, rng, num_points, batch_size, pairs, chunk_points):
    for start in range(0, num_points, chunk_points):
        n = min(chunk_points, num_points - start)
        y, f = _fixed_factor_batches(data, rng, n, batch_size, pairs)
        sentences = data.sample_observations_from_factors(f.reshape(-1, data.num_factors), rng)
        codes = _encode(encode_fn, sentences).reshape(*f.shape[:3], -1)  # (n, 1|2, B, D)
        yield y, codes


def beta_vae_score(
    encode_fn: EncodeFn,
    data: GroundTruthData,
    seed: "int | np.random.Generator | None" = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    chunk_points: int = 200,
    max_iter: int = 200,
) -> dict:
    """beta-VAE score (Higgins et al. 2017): a linear classifier predicts which factor two batches of sentences
    share from mean |code1 - code2| over ``batch_size`` pairs; ``score`` is its held-out accuracy."""
    rng = _rng(seed)

    def features(num_points):
        ys, xs = [], []
        for y, codes in _points(encode_fn, data, rng, num_points, batch_size, True, chunk_points):
            ys.append(y)
            xs.append(np.abs(codes[:, 0] - codes[:, 1]).mean(1))
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = features(num_train)
    x_ev, y_ev = features(num_eval)
    mask = np.zeros(x_tr.shape[1], dtype=bool)
    feats, model = _fit_softmax(x_tr, y_tr, mask, data.num_factors, 1.0 / len(x_tr), max_iter)
    pred_tr, pred_ev = model.predict(*feats(x_tr)), model.predict(*feats(x_ev))
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
        for y, codes in _points(encode_fn, data, rng, num_points, batch_size, False, chunk_points):
            local_var = np.var(codes[:, 0], axis=1, ddof=1)  # (n, D)
            pick = active_index[np.argmin(local_var[:, active] / global_var[active], axis=1)]
            np.add.at(table, (y, pick), 1)
        return table

    train_votes, eval_votes = votes(num_train), votes(num_eval)
    classifier = np.argmax(train_votes, axis=0)  # factor predicted by each code dimension
    codes_idx = np.arange(num_codes)
    train_accuracy = float(train_votes[classifier, codes_idx].sum() / train_votes.sum())
    eval_accuracy = float(eval_votes[classifier, codes_idx].sum() / eval_votes.sum())
    per_factor = np.array([eval_votes[k, classifier == k].sum() / eval_votes[k].sum() if eval_votes[k].sum() else np.nan
                           for k in range(data.num_factors)])
    return {"score": eval_accuracy, "train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy,
            "per_factor": per_factor, "num_active_dims": int(active.sum())}


# ---------------------------------------------------------------- models' codes


def latent_variables(latent, codes: "torch.Tensor | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    """A model's codes (N, code_size) as one column per latent variable: Gaussian dimensions as they are, each
    categorical variable as its category index; and the mask of categorical columns."""
    z = torch.as_tensor(np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes))
    sizes = list(getattr(latent, "category_sizes", []) or [])
    if not sizes:
        return z.double().numpy(), np.zeros(z.shape[1], dtype=bool)
    num_cont = z.shape[1] - sum(sizes)
    cont = z[:, :num_cont].double().numpy()
    idx = torch.stack([b.argmax(-1) for b in torch.split(z[:, num_cont:], sizes, dim=-1)], -1).double().numpy()
    return np.concatenate([cont, idx], axis=1), np.array([False] * num_cont + [True] * len(sizes))


def model_encode_fn(model, variables: bool = True) -> tuple[EncodeFn, np.ndarray]:
    """``(encode_fn, categorical)`` for a trained model: sentences -> posterior modes (Gaussian means, argmax
    categories), one column per latent variable when ``variables`` (else the raw one-hot codes, all continuous)."""
    latent = model.latent
    if variables:
        categorical = latent_variables(latent, torch.zeros(1, latent.code_size))[1]
    else:
        categorical = np.zeros(latent.code_size, dtype=bool)

    def encode_fn(sentences: list[str]) -> np.ndarray:
        z = model.encode(sentences)
        return latent_variables(latent, z)[0] if variables else z.double().cpu().numpy()

    return encode_fn, categorical


# ---------------------------------------------------------------- ceilings: the best a text encoder can do


class OracleTextEncoder:
    """The perfectly disentangled text encoder: code column k is factor k's value wherever the sentence determines
    it (every row with this sentence agrees), else the extra category ``factors_num_values[k]`` ("not in the
    text"). Every column is categorical. Fed through a metric, it gives the ceiling of each factor's score."""

    def __init__(self, sentences: Sequence[str], factors: np.ndarray, factors_num_values: Sequence[int]) -> None:
        factors = np.asarray(factors, dtype=np.int64)
        unique, inverse = np.unique(np.asarray(sentences), return_inverse=True)
        inverse = inverse.reshape(-1)
        num = len(unique)
        codes = np.zeros((num, factors.shape[1]), dtype=np.int64)
        for k, n in enumerate(factors_num_values):
            lo = np.full(num, np.iinfo(np.int64).max)
            hi = np.full(num, -1)
            np.minimum.at(lo, inverse, factors[:, k])
            np.maximum.at(hi, inverse, factors[:, k])
            codes[:, k] = np.where(lo == hi, lo, n)
        self.num_values = list(factors_num_values)
        self._table = {s.decode("utf-8") if isinstance(s, bytes) else str(s): i for i, s in enumerate(unique.tolist())}
        self._codes = codes
        # fraction of rows whose factor value the text does not determine (FACTORS.md's "identifiability")
        self.undetermined = (codes[inverse] == np.array(self.num_values)).mean(0)

    def __call__(self, sentences: list[str]) -> np.ndarray:
        try:
            return self._codes[[self._table[s] for s in sentences]].astype(np.float64)
        except KeyError as exc:
            raise ValueError(f"sentence {exc.args[0]!r} is not in the data the oracle was built from") from None

    @property
    def categorical(self) -> np.ndarray:
        return np.ones(len(self.num_values), dtype=bool)

    @classmethod
    def for_data(cls, data: GroundTruthData) -> "OracleTextEncoder | Callable":
        """The oracle for dSentences (built from every row) or, for the embedded grammar, its exact parser."""
        if hasattr(data, "all_sentences") and hasattr(data, "factors"):
            return cls(data.sentences_array, data.factors, data.factors_num_values)
        if hasattr(data, "parse"):
            return _ParserOracle(data)
        raise TypeError(f"no oracle for {type(data).__name__}: pass an encode_fn")


class _ParserOracle:
    def __init__(self, grammar) -> None:
        self.grammar = grammar
        self.num_values = list(grammar.factors_num_values)
        self.undetermined = np.zeros(len(self.num_values))  # the grammar is injective: the text holds every factor

    def __call__(self, sentences: list[str]) -> np.ndarray:
        return np.stack([self.grammar.parse(s) for s in sentences]).astype(np.float64)

    @property
    def categorical(self) -> np.ndarray:
        return np.ones(len(self.num_values), dtype=bool)


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
) -> dict:
    """Every metric for one encoder, with wall times: MIG, DCI and SAP on ``num_train`` + ``num_eval`` sampled
    sentences (MIG on the training points, as the library), the beta-VAE and FactorVAE scores on
    ``score_points`` = (train, eval) points of ``batch_size`` sentences (default: ``num_train``, ``num_eval``)."""
    rng = np.random.default_rng(seed)
    out: dict = {"factor_names": list(data.factor_names), "seconds": {}}
    factors, sentences = sample(data, num_train + num_eval, rng)
    codes = _encode(encode_fn, sentences)
    tr, te = slice(0, num_train), slice(num_train, None)
    points = score_points or (num_train, num_eval)
    runs = {
        "mig": lambda: mig(codes[tr], factors[tr], num_bins=num_bins, categorical=categorical),
        "sap": lambda: sap(codes[tr], factors[tr], codes[te], factors[te], categorical=categorical),
        "dci": lambda: dci(codes[tr], factors[tr], codes[te], factors[te], categorical=categorical),
        "beta_vae": lambda: beta_vae_score(encode_fn, data, seed + 1, batch_size, *points),
        "factor_vae": lambda: factor_vae_score(encode_fn, data, seed + 2, batch_size, *points),
    }
    for name in metrics:
        start = time.perf_counter()
        out[name] = runs[name]()
        out["seconds"][name] = time.perf_counter() - start
    return out


def metric_ceilings(data: GroundTruthData, **kwargs) -> dict:
    """``evaluate_disentanglement`` of the oracle text encoder: per factor, the best score any encoder of the text
    can reach (below 1 where the text hides a factor, e.g. dSentences' gender)."""
    oracle = OracleTextEncoder.for_data(data)
    result = evaluate_disentanglement(oracle, data, categorical=oracle.categorical, **kwargs)
    result["undetermined_fraction"] = oracle.undetermined
    return result


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
        rows.append(("dci_disentanglement", fmt(d["disentanglement"]), *[""] * len(names)))
        rows.append(("dci_completeness", fmt(d["completeness"]), *map(fmt, d["per_factor"]["completeness"])))
        rows.append(("dci_informativeness", fmt(d["informativeness"]), *map(fmt, d["per_factor"]["informativeness"])))
    if "undetermined_fraction" in result:
        rows.append(("undetermined", "", *map(fmt, result["undetermined_fraction"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows)


# ---------------------------------------------------------------- traversals


def traverse(model, sentence: str, variable: int, values: Optional[Sequence[float]] = None,
             strategy: str = "greedy") -> list[tuple[str, str]]:
    """Decode ``sentence``'s code with one latent variable changed: a Gaussian dimension set to each of ``values``
    (default -2..2), or a categorical variable set to each of its categories. Returns (value, sentence) pairs.
    Variables count Gaussian dimensions first, then categorical variables."""
    latent = model.latent
    z = model.encode([sentence])
    sizes = list(getattr(latent, "category_sizes", []) or [])
    num_cont = latent.code_size - sum(sizes)
    if not 0 <= variable < num_cont + len(sizes):
        raise ValueError(f"variable must be in [0, {num_cont + len(sizes)}), got {variable}")
    if variable < num_cont:
        values = list(values) if values is not None else [-2.0, -1.0, 0.0, 1.0, 2.0]
        batch = z.repeat(len(values), 1)
        batch[:, variable] = torch.tensor(values, dtype=batch.dtype, device=batch.device)
        labels = [f"{v:+.2f}" for v in values]
    else:
        i = variable - num_cont
        n = sizes[i]
        values = list(values) if values is not None else list(range(n))
        offset = num_cont + sum(sizes[:i])
        batch = z.repeat(len(values), 1)
        batch[:, offset : offset + n] = 0
        batch[torch.arange(len(values)), offset + torch.tensor([int(v) for v in values])] = 1
        labels = [f"c={int(v)}" for v in values]
    return list(zip(labels, model.decode(batch, strategy=strategy)))


def traversal_table(model, sentence: str, variables: Optional[Sequence[int]] = None, max_values: int = 6) -> str:
    """A printable table of ``traverse`` for each variable (all by default), at most ``max_values`` per variable."""
    latent = model.latent
    sizes = list(getattr(latent, "category_sizes", []) or [])
    num_vars = latent.code_size - sum(sizes) + len(sizes)
    lines = [f"input: {sentence}", f"{'variable':>8}  {'value':>6}  decoded"]
    for v in variables if variables is not None else range(num_vars):
        cont = v < num_vars - len(sizes)
        values = None if cont else list(range(min(max_values, sizes[v - (num_vars - len(sizes))])))
        for label, text in traverse(model, sentence, v, values):
            lines.append(f"{('z' if cont else 'c') + str(v):>8}  {label:>6}  {text}")
    return "\n".join(lines)
