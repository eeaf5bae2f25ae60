"""Codes for the metrics: a trained model's posterior modes as one column per latent variable, and the perfectly
disentangled text encoder whose scores are the ceiling any encoder of the text can reach."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ...data.ground_truth import GroundTruthData
from .metrics import EncodeFn, evaluate_disentanglement


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


def model_encode_fn(model, variables: bool = True, cache: bool = True) -> tuple[EncodeFn, np.ndarray]:
    """``(encode_fn, categorical)`` for a trained model: sentences -> posterior modes (Gaussian means, argmax
    categories), one column per latent variable when ``variables`` (else the raw one-hot codes, all continuous).

    Posterior modes are deterministic, so with ``cache`` each distinct sentence (images are not cached) is encoded
    once and its code reused: the sampled scores draw millions of sentences from a corpus of a few hundred thousand
    (dSentences: 2.9 million draws, 311,040 distinct sentences), and the encoder is most of their time."""
    latent = model.latent
    if variables:
        categorical = latent_variables(latent, torch.zeros(1, latent.code_size))[1]
    else:
        categorical = np.zeros(latent.code_size, dtype=bool)

    def encode_new(sentences: list[str]) -> np.ndarray:
        z = model.encode(sentences)
        return latent_variables(latent, z)[0] if variables else z.double().cpu().numpy()

    if not cache:
        return encode_new, categorical
    rows: dict[str, int] = {}
    blocks: list[np.ndarray] = []

    def encode_fn(sentences: list[str]) -> np.ndarray:
        if sentences and not isinstance(sentences[0], str):  # images and other unhashable observations
            return encode_new(sentences)
        new = list(dict.fromkeys(s for s in sentences if s not in rows))
        if new:
            first = len(rows)
            rows.update((s, first + i) for i, s in enumerate(new))
            blocks.append(encode_new(new))
        table = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        if len(blocks) > 1:
            blocks[:] = [table]
        return table[[rows[s] for s in sentences]]

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
        """The oracle for dSentences (built from every row), for the embedded grammar its exact parser, or the one a
        data set supplies itself (``data.oracle_encoder()``, e.g. the sprites grid's encoder of images)."""
        if hasattr(data, "oracle_encoder"):
            return data.oracle_encoder()
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


def metric_ceilings(data: GroundTruthData, **kwargs) -> dict:
    """``evaluate_disentanglement`` of the oracle text encoder: per factor, the best score any encoder of the text
    can reach (below 1 where the text hides a factor, e.g. dSentences' gender)."""
    oracle = OracleTextEncoder.for_data(data)
    result = evaluate_disentanglement(oracle, data, categorical=oracle.categorical, **kwargs)
    result["undetermined_fraction"] = oracle.undetermined
    return result
