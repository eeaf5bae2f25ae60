"""What evaluation functions accept: sentences (``list[str]``), one padded batch (a dict from ``collate`` or an
``(input_ids, lengths)`` pair) or an iterable of such batches (a DataLoader). All become the same list of
``EvalBatch`` with each row's position in the input, so results come back in input order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union

import torch

from ..data.batching import collate

Batch = Union[dict, tuple]
EvalData = Union[str, Sequence[str], Batch, Iterable[Batch]]


@dataclass
class EvalBatch:
    """A padded batch and where its rows sit in the evaluation set. Shapes: ``input_ids`` (B, T) as
    ``<bos> w.. <eos> <pad>..``; ``lengths`` (B,) counting <bos> and <eos>; ``index`` (B,)."""

    input_ids: torch.Tensor
    lengths: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device) -> "EvalBatch":
        return EvalBatch(self.input_ids.to(device), self.lengths.to(device), self.index)

    @property
    def size(self) -> int:
        return self.input_ids.size(0)


def _is_batch(obj) -> bool:
    return (isinstance(obj, dict) and "input_ids" in obj) or (
        isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj)
    )


def _split(ids: torch.Tensor, lengths: torch.Tensor, start: int, batch_size: int) -> Iterator[EvalBatch]:
    for a in range(0, ids.size(0), batch_size):
        b = min(a + batch_size, ids.size(0))
        width = int(lengths[a:b].max())  # trim padding no row of this slice uses
        yield EvalBatch(ids[a:b, :width], lengths[a:b], torch.arange(start + a, start + b))


def eval_batches(model, data: EvalData, batch_size: int = 64, sort: bool = True) -> list[EvalBatch]:
    """Turn ``data`` into batches of at most ``batch_size`` rows. Sentences are sorted by length first (``sort``),
    so padding stays small; pre-made batches keep their order and are only split when larger than ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(data, str) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str)):
        ids = model.token_ids([data] if isinstance(data, str) else list(data))
        order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if sort else list(range(len(ids)))
        tok = model.tokenizer
        batches = []
        for a in range(0, len(order), batch_size):
            rows = order[a : a + batch_size]
            padded = collate([ids[i] for i in rows], tok.pad_id, tok.bos_id, tok.eos_id)
            batches.append(EvalBatch(padded["input_ids"], padded["lengths"], torch.tensor(rows)))
        return batches
    items = [data] if _is_batch(data) else list(data)
    if not items:
        raise ValueError("no data to evaluate: expected sentences or batches")
    batches, start = [], 0
    for item in items:
        if not _is_batch(item):
            raise TypeError(
                f"cannot evaluate a {type(item).__name__}: expected a list of sentences, a batch dict with "
                "'input_ids' and 'lengths', an (input_ids, lengths) pair, or an iterable of batches"
            )
        ids, lengths = (item["input_ids"], item["lengths"]) if isinstance(item, dict) else item
        batches.extend(_split(ids.cpu(), lengths.cpu(), start, batch_size))
        start += ids.size(0)
    return batches


def gather_rows(values: list[torch.Tensor], batches: list[EvalBatch]) -> torch.Tensor:
    """Per-batch results (B, ...) -> one tensor (N, ...) in input order."""
    total = sum(b.size for b in batches)
    first = values[0]
    out = torch.empty((total, *first.shape[1:]), dtype=first.dtype)
    for value, batch in zip(values, batches):
        out[batch.index] = value.detach().cpu()
    return out


def num_sentences(batches: list[EvalBatch]) -> int:
    return sum(b.size for b in batches)
