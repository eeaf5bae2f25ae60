"""Corpus -> tokenizer -> tokenized splits -> DataLoaders: the data half of a run, in one call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch.utils.data import DataLoader

from ..config import Config, DataConfig
from ..errors import DataError
from .batching import (
    LENGTH_PERCENTILE,
    BucketBatchSampler,
    LengthReport,
    SentenceDataset,
    derive_max_length,
    fit_length,
    warn_length_report,
)
from .corpora import SPLITS, Corpus, load_corpus
from .tokenization import Tokenizer, train_tokenizer


@dataclass
class PreparedData:
    """A corpus with its tokenizer, one tokenized dataset per split, and the max_length every split was fitted to
    (``length_note`` says where it came from)."""

    corpus: Corpus
    tokenizer: Tokenizer
    datasets: dict[str, SentenceDataset]
    reports: dict[str, LengthReport]
    kept_index: dict[str, list[int]] = field(default_factory=dict)  # positions of kept sentences in the corpus split
    max_length: int = 0
    length_note: str = ""

    def sentences(self, split: str) -> list[str]:
        """The sentences of ``split`` that survived length handling, aligned with ``datasets[split]``."""
        source = self.corpus.split(split)
        return [source[i] for i in self.kept_index[split]]

    def describe(self) -> str:
        """What a run trains on, in a few lines: split sizes, the tokenizer and the length limit."""
        sizes = ", ".join(f"{split} {len(self.datasets[split]):,}" for split in SPLITS)
        describe = getattr(self.tokenizer, "describe", None)
        tokenizer = describe() if describe is not None else repr(self.tokenizer)
        return f"data: {self.corpus.name} ({sizes} examples)\n{tokenizer}\n{self.length_note}"

    def model_config(self, config: Config) -> Config:
        """``config`` with ``model.max_length`` set to the limit the data was fitted to (derived when it was None)."""
        return dataclasses.replace(config, model=dataclasses.replace(config.model, max_length=self.max_length))


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


def check_kept(report: LengthReport, split: str) -> None:
    """A DataError when length handling left a split with nothing to train or evaluate on."""
    if report.kept == 0:
        raise DataError(
            f"no {split} example is left after length handling ({report}); raise model.max_length or set "
            "model.overlong=truncate"
        )


def prepare_data(
    config: DataConfig, max_length: Optional[int] = None, tokenizer: Optional[Tokenizer] = None,
    overlong: str = "truncate",
) -> PreparedData:
    """Load the corpus, train a tokenizer on its training split (unless one is given), tokenize every split and
    fit it to one length limit with one policy (the model's ``max_length`` and ``overlong``, the same ones the API
    applies); ``max_length=None`` derives the limit from the training split. A dialogue corpus gives
    ``DialogueData``: (context, response) examples instead of sentences (see ``data.dialogue``)."""
    corpus = load_corpus(config)
    for split in SPLITS:
        if not corpus.split(split) and getattr(corpus, "dialogues", None) is None:
            raise DataError(f"the {split} split of corpus {corpus.name!r} is empty")
    if getattr(corpus, "dialogues", None) is not None:
        from .dialogue import prepare_dialogue_data

        return prepare_dialogue_data(config, max_length, tokenizer=tokenizer, corpus=corpus, overlong=overlong)
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus.train, config.tokenizer)
    ids = {split: tokenizer.batch_encode(corpus.split(split)) for split in SPLITS}
    limit, note = resolve_max_length(max_length, [len(row) for row in ids["train"]])
    datasets, reports, kept_index = {}, {}, {}
    for split in SPLITS:
        kept, index, report = fit_length(ids[split], limit, overlong, what=f"{split} sentence")
        warn_length_report(report, split)
        check_kept(report, split)
        datasets[split], reports[split], kept_index[split] = SentenceDataset(kept), report, index
    return PreparedData(corpus, tokenizer, datasets, reports, kept_index, max_length=limit, length_note=note)


def make_loader(
    dataset: SentenceDataset,
    tokenizer: Tokenizer,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    bucket: bool = True,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader of padded batches, length-bucketed so padding stays small; the dataset names its collator."""
    sampler = BucketBatchSampler(
        dataset.lengths(), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, bucket=bucket
    )
    collator = dataset.collator(tokenizer)
    # an own generator: creating an iterator draws a worker seed, and from the global RNG that draw would shift the
    # training random stream whenever an iterator is made (e.g. on resume), breaking exact resumption
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collator, num_workers=num_workers, generator=generator
    )
