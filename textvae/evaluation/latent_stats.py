"""How much the latent code is used: KL per dimension, mutual information I(x; z) and active units.

Mutual information (Hoffman & Johnson 2016; He et al. 2019):

    I(x; z) = E_x E_q(z|x) [log q(z|x)] - E_x E_q(z|x) [log q(z)],   q(z) = 1/N sum_j q(z | x_j)

How the aggregate posterior q(z) is pooled here: over the **whole evaluation set**. Every sentence i gets
``num_samples`` draws z_i ~ q(z|x_i) (one by default, as the papers), and log q(z_i) = logsumexp_j log q(z_i|x_j)
- log N with j over all N sentences, i included. This is the pooling of the ``calc_mi_v3`` revision of He et al.'s
code that Li et al. 2019 and Optimus report; the first version of He et al.'s code pooled within each test
minibatch, which caps the estimate at log(batch size) and reads lower. Both terms are evaluated with the same
``Latent.log_q`` at the same samples (a Monte Carlo estimate of the first term, instead of the Gaussian's closed-form
negative entropy), so the estimator works for any bottleneck that implements the interface and is exactly 0 when
every sentence has the same posterior. Whole-set pooling bounds the estimate by log N (8.2 nats for PTB's test split).

Active units (Burda et al. 2016; He et al. 2019): dimension d is active when Var_x(E_q(z|x)[z_d]) >= 0.01, the
variance taken over the evaluation set with the N - 1 denominator, as He et al.; E_q[z] is ``Latent.mean``
(the posterior mean for Gaussians, the category probabilities for categorical variables, not the argmax one-hot
code that ``Latent.mode`` decodes from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from .batches import EvalBatch, EvalData, eval_batches, gather_rows, num_sentences
from .likelihood import evaluation_context

ACTIVE_THRESHOLD = 0.01  # Var_x E_q[z_d] at or above which dimension d is active (Burda et al. 2016; He et al. 2019)

MAX_PAIR_ELEMENTS = 2**22  # (points x sentences x D) per log q call: 16 MB of float32


def _bar(total: int, desc: str, progress: Optional[bool], unit: str = "sent"):
    """A tqdm bar; ``progress`` None shows it on a terminal only."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if progress is None else not progress, leave=False)


def posteriors(
    model, sentences: EvalData, batch_size: int = 256, progress: Optional[bool] = False
) -> tuple[list, list[EvalBatch]]:
    """q(z|x) for every batch of the evaluation set (in eval mode, no gradients), with the batches. ``progress``:
    a tqdm bar (None: on a terminal only)."""
    batches = eval_batches(model, sentences, batch_size)
    qs = []
    with evaluation_context(model), _bar(num_sentences(batches), "encoding", progress) as bar:
        for b in batches:
            qs.append(model.posterior(b.input_ids.to(model.device), b.lengths.to(model.device)))
            bar.update(b.size)
    return qs, batches


def mutual_information_from_posteriors(
    latent, posteriors: Sequence[torch.distributions.Distribution], num_samples: int = 1,
    progress: Optional[bool] = False,
) -> float:
    """I(x; z) with q(z) pooled over all the given posteriors (one ``Distribution`` per batch), in nats.

    Cheap enough to call during validation: it costs O(N^2 D) arithmetic and no decoder pass (``progress``: a
    tqdm bar over the sentences, None: on a terminal only)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if not posteriors:
        raise ValueError("no posteriors given")
    if latent.code_size == 0:
        return 0.0  # no latent variable (a language model): z carries nothing about x
    with torch.no_grad():
        sizes = [_batch_size(latent, q) for q in posteriors]
        total = sum(sizes)
        sum_log_q_own = sum_log_q_aggregate = 0.0
        with _bar(total, "mutual information", progress) as bar:
            for q_i, size_i in zip(posteriors, sizes):
                z = latent.rsample(q_i, num_samples=num_samples)  # (S, B_i, D)
                sum_log_q_own += float(latent.log_q(q_i, z).double().sum())
                points = z.reshape(-1, z.size(-1))  # (S * B_i, D)
                log_q_z = torch.full((points.size(0),), -math.inf, dtype=torch.float64, device=points.device)
                for q_j, size_j in zip(posteriors, sizes):
                    step = max(1, MAX_PAIR_ELEMENTS // (size_j * points.size(1)))
                    for start in range(0, points.size(0), step):
                        chunk = points[start : start + step]
                        # log q(z_m | x_j) for every point m and sentence j: (m, B_j)
                        pair = latent.log_q(q_j, chunk.unsqueeze(1).expand(-1, size_j, -1)).double()
                        log_q_z[start : start + step] = torch.logaddexp(
                            log_q_z[start : start + step], torch.logsumexp(pair, dim=1)
                        )
                sum_log_q_aggregate += float((log_q_z - math.log(total)).sum())
                bar.update(size_i)
    return (sum_log_q_own - sum_log_q_aggregate) / (total * num_samples)


def _batch_size(latent, q) -> int:
    return latent.mode(q).size(0)


def mutual_information(
    model, sentences: EvalData, num_samples: int = 1, batch_size: int = 256, seed: Optional[int] = None
) -> float:
    """I(x; z) in nats over the evaluation set, q(z) pooled over all of it (see the module docstring)."""
    qs, _ = posteriors(model, sentences, batch_size)
    with evaluation_context(model, seed):
        return mutual_information_from_posteriors(model.latent, qs, num_samples)


def unit_variances(means: torch.Tensor) -> torch.Tensor:
    """Var over sentences of each dimension of the posterior means (N, D) -> (D,), with the N - 1 denominator."""
    if means.dim() != 2:
        raise ValueError(f"means must have shape (N, D), got {tuple(means.shape)}")
    if means.size(0) < 2:
        raise ValueError("active units need at least two sentences")
    if means.size(1) == 0:  # no latent (a language model): no units, and no warning from var over nothing
        return means.new_zeros(0, dtype=torch.float64)
    return means.double().var(dim=0, unbiased=True)


def active_units_from_means(means: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of dimensions whose posterior mean varies across sentences by at least ``threshold``."""
    return int((unit_variances(means) >= threshold).sum())


def posterior_means(model, sentences: EvalData, batch_size: int = 256) -> torch.Tensor:
    """E_q[z] (``Latent.mean``) per sentence, (N, D), in input order."""
    qs, batches = posteriors(model, sentences, batch_size)
    return gather_rows([model.latent.mean(q) for q in qs], batches)


def active_units(model, sentences: EvalData, threshold: float = ACTIVE_THRESHOLD, batch_size: int = 256) -> int:
    """Dimensions with Var_x E_q(z|x)[z] >= ``threshold`` over the evaluation set."""
    return active_units_from_means(posterior_means(model, sentences, batch_size), threshold)


def kl_per_dimension(model, sentences: EvalData, batch_size: int = 256) -> torch.Tensor:
    """Mean analytic KL(q(z|x) || p(z)) of each latent variable over the evaluation set, (D,), in nats."""
    qs, batches = posteriors(model, sentences, batch_size)
    return gather_rows([model.latent.kl_per_dim(q) for q in qs], batches).double().mean(0)


@dataclass
class LatentStats:
    """Latent usage over an evaluation set. ``kl``: mean KL per sentence; ``kl_per_dim`` (D,);
    ``unit_variances`` (D,): Var_x of the posterior means; ``means`` (N, D)."""

    kl: float
    kl_per_dim: torch.Tensor
    mutual_information: float
    active_units: int
    unit_variances: torch.Tensor
    means: torch.Tensor

    def as_dict(self) -> dict:
        return {
            "kl": self.kl,
            "mutual_information": self.mutual_information,
            "active_units": self.active_units,
            "kl_per_dim": self.kl_per_dim.tolist(),
            "unit_variances": self.unit_variances.tolist(),
        }


def latent_statistics(
    model,
    sentences: EvalData,
    threshold: float = ACTIVE_THRESHOLD,
    num_samples: int = 1,
    batch_size: int = 256,
    seed: Optional[int] = None,
    progress: Optional[bool] = False,
) -> LatentStats:
    """KL, MI and active units from one encoder pass over the evaluation set (``progress``: tqdm bars for the
    encoder pass and MI; None: on a terminal only)."""
    qs, batches = posteriors(model, sentences, batch_size, progress)
    latent = model.latent
    means = gather_rows([latent.mean(q) for q in qs], batches)
    kl_per_dim = gather_rows([latent.kl_per_dim(q) for q in qs], batches).double()
    with evaluation_context(model, seed):
        mi = mutual_information_from_posteriors(latent, qs, num_samples, progress)
    variances = unit_variances(means)
    return LatentStats(
        kl=float(kl_per_dim.sum(-1).mean()),
        kl_per_dim=kl_per_dim.mean(0),
        mutual_information=mi,
        active_units=int((variances >= threshold).sum()),
        unit_variances=variances,
        means=means,
    )


def collapse_warning(
    kl: float,
    active_units: int,
    latent_size: int,
    objective=None,
    mutual_information: Optional[float] = None,
) -> Optional[str]:
    """One line when no latent dimension is active (Var_x E_q[z_d] < ``ACTIVE_THRESHOLD`` for every d): the
    encoder then tells the decoder almost nothing about the sentence, whatever the KL reads. With free bits or a
    capacity target in ``objective`` (an ``ObjectiveConfig``) the KL is held up by the objective, not by
    information, which the training figures alone hide. None when some unit is active or there is no latent."""
    if latent_size == 0 or active_units > 0:
        return None
    units = f"{active_units}/{latent_size} active units"
    if mutual_information is not None:
        units += f", MI {mutual_information:.2f} nats"
    free_bits = float(getattr(objective, "free_bits", 0.0) or 0.0)
    capacity = max(float(getattr(objective, "capacity", 0.0) or 0.0),
                   float(getattr(objective, "discrete_capacity", 0.0) or 0.0))
    floor = free_bits * latent_size
    if free_bits > 0 and kl >= 0.5 * floor:
        cause = (f"KL {kl:.1f} is the free-bits floor ({free_bits:g} nats x {latent_size} dimensions = "
                 f"{floor:.1f}), not information")
    elif capacity > 0 and kl >= 0.1:
        cause = f"KL {kl:.1f} is held up by the capacity target (C up to {capacity:g} nats), not by information"
    else:
        cause = f"posterior collapse (KL {kl:.2f} nats)"
    return (f"{cause}: {units}; the encoder carries almost no information about the sentence. Try more "
            "steps, KL annealing (model.objective.kl_schedule=linear or cyclical), word dropout "
            "(model.decoder.word_dropout=0.3) or a smaller decoder.")
