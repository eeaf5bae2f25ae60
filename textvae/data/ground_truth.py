"""Ground-truth data: sentences generated from known discrete factors, the interface disentanglement metrics sample
from (as disentanglement_lib's ``GroundTruthData``, with sentences for observations).

Implemented by the embedded corpus' ``SentenceGrammar`` (``textvae.data.synthetic.GRAMMAR``) and by
``textvae.data.dsentences.DSentences``. Factors are integer arrays of shape (n, num_factors), column k taking values
in ``range(factors_num_values[k])``; ``rng`` is a ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class GroundTruthData(Protocol):
    """What a metric needs from a data set with known generative factors."""

    @property
    def num_factors(self) -> int: ...

    @property
    def factors_num_values(self) -> Sequence[int]: ...

    @property
    def factor_names(self) -> Sequence[str]: ...

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor vectors (n, num_factors) drawn from the data set's factor distribution."""
        ...

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> list[str]:
        """One sentence for each factor row (a random one where several sentences share the factors)."""
        ...


def sample_observations(data: GroundTruthData, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` sentences drawn through random factors."""
    return data.sample_observations_from_factors(data.sample_factors(n, rng), rng)


def sample(data: GroundTruthData, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` random factor vectors (n, K) and their sentences."""
    factors = data.sample_factors(n, rng)
    return factors, data.sample_observations_from_factors(factors, rng)


def check_factors(data: GroundTruthData, factors: np.ndarray) -> np.ndarray:
    """``factors`` as an int64 array (n, K), or a ValueError naming the column and value out of range."""
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != data.num_factors:
        raise ValueError(f"factors must have shape (n, {data.num_factors}), got {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integers, got dtype {factors.dtype}")
    for k, (name, size) in enumerate(zip(data.factor_names, data.factors_num_values)):
        column = factors[:, k]
        if column.size and (column.min() < 0 or column.max() >= size):
            raise ValueError(f"factor {k} ({name}) must lie in [0, {size}), got values from {column.min()} to {column.max()}")
    return factors.astype(np.int64, copy=False)


def synthetic_ground_truth() -> GroundTruthData:
    """The embedded corpus' grammar: ten uniform, independent factors; every factor vector is one sentence."""
    from .synthetic import GRAMMAR

    return GRAMMAR
