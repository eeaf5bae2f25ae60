"""From sentences to padded batches: token ids with <bos>/<eos>, maximum-length handling, and
length-bucketed sampling so that padding stays small."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .corpora import DataError


@dataclass
class LengthReport:
    """What maximum-length handling did to a list of sentences."""

    total: int
    kept: int
    truncated: int
    dropped: int
    empty: int

    def __str__(self) -> str:
        return (
            f"{self.kept}/{self.total} sentences kept ({self.truncated} truncated, "
            f"{self.dropped} dropped as too long, {self.empty} empty dropped)"
        )


def fit_length(
    token_ids: Sequence[list[int]], max_length: int, overlong: str, what: str = "sentence"
) -> tuple[list[list[int]], list[int], LengthReport]:
    """Apply ``overlong`` (truncate, drop or error) to token id lists longer than ``max_length``; empty ones are
    dropped. Returns the kept id lists, their positions in the input, and a report."""
    kept, index = [], []
    truncated = dropped = empty = 0
    for i, ids in enumerate(token_ids):
        if not ids:
            empty += 1
            continue
        if len(ids) > max_length:
            if overlong == "error":
                raise DataError(f"{what} {i} has {len(ids)} tokens, more than max_length={max_length}")
            if overlong == "drop":
                dropped += 1
                continue
            ids = ids[:max_length]
            truncated += 1
        kept.append(list(ids))
        index.append(i)
    return kept, index, LengthReport(len(token_ids), len(kept), truncated, dropped, empty)


def collate(sequences: Sequence[Sequence[int]], pad_id: int, bos_id: int, eos_id: int) -> dict[str, torch.Tensor]:
    """Token id lists -> ``input_ids`` (B, T) as <bos> w1..wn <eos> <pad>..., and ``lengths`` (B,) = n + 2."""
    lengths = [len(s) + 2 for s in sequences]
    width = max(lengths)
    batch = np.full((len(sequences), width), pad_id, dtype=np.int64)
    batch[:, 0] = bos_id
    for row, ids in enumerate(sequences):
        batch[row, 1 : len(ids) + 1] = ids
        batch[row, len(ids) + 1] = eos_id
    return {"input_ids": torch.from_numpy(batch), "lengths": torch.tensor(lengths, dtype=torch.long)}


class SentenceDataset(Dataset):
    """Tokenized sentences; items are id lists, batched by ``Collator``."""

    def __init__(self, token_ids: Sequence[list[int]]) -> None:
        self.token_ids = list(token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    def __getitem__(self, index: int) -> list[int]:
        return self.token_ids[index]

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.token_ids]

    def collator(self, tokenizer) -> "Collator":
        """The collate function for this dataset's items (dialogue datasets bring their own)."""
        return Collator(tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)


@dataclass
class Collator:
    """A picklable collate function for DataLoader workers."""

    pad_id: int
    bos_id: int
    eos_id: int

    def __call__(self, sequences: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        return collate(sequences, self.pad_id, self.bos_id, self.eos_id)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length sentences in random order.

    Each epoch shuffles the indices, cuts them into pools of ``pool_batches`` batches, sorts each pool by length and
    cuts it into batches, then shuffles the batches: padding stays small while batch order stays random. The order is
    a pure function of (seed, epoch), so a resumed run sees the same batches; as with torch's DistributedSampler,
    call ``set_epoch`` before each epoch for a new order.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int = 50,
        bucket: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pool_batches = pool_batches
        self.bucket = bucket
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        if self.bucket:
            pool = self.batch_size * self.pool_batches
            chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
            order = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")] for c in chunks]) if chunks else order
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return iter(batches)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded positions over the given batches (to show what bucketing saves)."""
    lengths = np.asarray(lengths)
    total = padded = 0
    for batch in batches:
        lens = lengths[list(batch)]
        total += lens.max() * len(lens)
        padded += lens.max() * len(lens) - lens.sum()
    return float(padded / total) if total else 0.0


def warn_length_report(report: LengthReport, split: str) -> None:
    """Warn when maximum-length handling changed a split."""
    if report.truncated or report.dropped or report.empty:
        warnings.warn(f"{split}: {report}", stacklevel=2)
