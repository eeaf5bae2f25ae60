"""From sentences to padded batches: token ids with <bos>/<eos>, maximum-length handling, and
length-bucketed sampling so that padding stays small."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import DataError, LengthWarning


LENGTH_PERCENTILE = 99.9  # max_length, when not set, covers this share of the training sentences


@dataclass
class LengthReport:
    """What maximum-length handling did to a list of sentences; ``first_changed`` is the position (in the list the
    caller gave) of the first sentence truncated, dropped or empty, or -1."""

    total: int
    kept: int
    truncated: int
    dropped: int
    empty: int
    max_length: int = 0
    first_changed: int = -1

    def __str__(self) -> str:
        changes = [f"{n} {what}" for n, what in ((self.truncated, f"truncated to max_length={self.max_length}"),
                   (self.dropped, f"dropped as longer than max_length={self.max_length}"), (self.empty, "empty dropped")) if n]
        first = f" (first: sentence {self.first_changed})" if self.first_changed >= 0 else ""
        return f"{self.kept:,} of {self.total:,} sentences kept" + (f"; {', '.join(changes)}{first}" if changes else "")


def derive_max_length(lengths: Sequence[int], percentile: float = LENGTH_PERCENTILE) -> int:
    """The smallest length that covers ``percentile`` percent of ``lengths`` (at least 1): the default max_length,
    so a corpus of long documents keeps its documents and a rare outlier does not set the padding of every batch."""
    lengths = sorted(n for n in lengths if n > 0)
    if not lengths:
        return 1
    covered = math.ceil(round(percentile / 100 * len(lengths), 9))  # rounding: 99.9% of 1,000 is 999, not 999.0..01
    return max(1, lengths[max(covered, 1) - 1])


def resolve_max_length(max_length: Optional[int], train_lengths: list[int], what: str = "sentence") -> tuple[int, str]:
    """The length limit and a line saying where it came from: the config's value, or the
    ``LENGTH_PERCENTILE``th percentile of the training lengths when the config leaves it unset (None)."""
    longest = max(train_lengths, default=0)
    if max_length is not None:
        return max_length, f"max_length {max_length} tokens (from the config; the longest training {what} has {longest})"
    limit = derive_max_length(train_lengths)
    return limit, (
        f"max_length {limit} tokens: the {LENGTH_PERCENTILE:g}th percentile of {len(train_lengths):,} training "
        f"{what}s (the longest has {longest}); set model.max_length to choose"
    )


def fit_length(
    token_ids: Sequence[list[int]], max_length: int, overlong: str, what: str = "sentence"
) -> tuple[list[list[int]], list[int], LengthReport]:
    """Apply ``overlong`` (truncate, drop or error) to token id lists longer than ``max_length``; empty ones are
    dropped. Returns the kept id lists, their positions in the input, and a report."""
    kept, index = [], []
    truncated = dropped = empty = 0
    first = -1
    for i, ids in enumerate(token_ids):
        if not ids:
            empty += 1
            first = i if first < 0 else first
            continue
        if len(ids) > max_length:
            if overlong == "error":
                raise DataError(
                    f"{what} {i} has {len(ids)} tokens, more than max_length={max_length} (model.overlong=error; "
                    "set model.max_length or model.overlong=truncate)"
                )
            first = i if first < 0 else first
            if overlong == "drop":
                dropped += 1
                continue
            ids = ids[:max_length]
            truncated += 1
        kept.append(list(ids))
        index.append(i)
    return kept, index, LengthReport(len(token_ids), len(kept), truncated, dropped, empty, max_length, first)


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

    ``same_length`` batches as He et al.'s and Li et al.'s code does (``MonoTextData.create_data_batch``): every
    batch holds sentences of one length (a length's last batch may be smaller), the same batches every epoch, only
    their order shuffled. For reproducing that code; it gives more, smaller batches than ``bucket``.
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
        same_length: bool = False,
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
        self.same_length = same_length
        self.epoch = 0
        self._fixed = self._same_length_batches() if same_length else None

    def _same_length_batches(self) -> list[list[int]]:
        order = np.argsort(self.lengths, kind="stable")
        batches: list[list[int]] = []
        for length in np.unique(self.lengths):
            group = order[self.lengths[order] == length]
            batches += [group[i : i + self.batch_size].tolist() for i in range(0, len(group), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self._fixed is not None:
            return len(self._fixed)
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self._fixed is not None:
            order = rng.permutation(len(self._fixed)) if self.shuffle else range(len(self._fixed))
            return iter([list(self._fixed[i]) for i in order])
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


def warn_length_report(report: LengthReport, split: str, stacklevel: int = 2) -> None:
    """One warning when maximum-length handling changed a split (or the sentences of one API call)."""
    if report.truncated or report.dropped or report.empty:
        warnings.warn(f"{split}: {report}", LengthWarning, stacklevel=stacklevel + 1)


def check_kept(report: LengthReport, split: str) -> None:
    """A DataError when length handling left a split with nothing to train or evaluate on."""
    if report.kept == 0:
        raise DataError(
            f"no {split} example is left after length handling ({report}); raise model.max_length or set "
            "model.overlong=truncate"
        )
