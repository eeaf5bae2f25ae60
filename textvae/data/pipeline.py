"""Corpus -> tokenizer -> tokenized splits -> DataLoaders: the data half of a run, in one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch.utils.data import DataLoader

from ..config import DataConfig
from .batching import BucketBatchSampler, LengthReport, SentenceDataset, fit_length, warn_length_report
from .corpora import SPLITS, Corpus, load_corpus
from .tokenization import Tokenizer, train_tokenizer


@dataclass
class PreparedData:
    """A corpus with its tokenizer and one tokenized dataset per split."""

    corpus: Corpus
    tokenizer: Tokenizer
    datasets: dict[str, SentenceDataset]
    reports: dict[str, LengthReport]
    kept_index: dict[str, list[int]] = field(default_factory=dict)  # positions of kept sentences in the corpus split

    def sentences(self, split: str) -> list[str]:
        """The sentences of ``split`` that survived length handling, aligned with ``datasets[split]``."""
        source = self.corpus.split(split)
        return [source[i] for i in self.kept_index[split]]


def prepare_data(config: DataConfig, max_length: int, tokenizer: Optional[Tokenizer] = None) -> PreparedData:
    """Load the corpus, train a tokenizer on its training split (unless one is given), tokenize every split and
    apply maximum-length handling (``config.max_length`` or the model's ``max_length``). A dialogue corpus gives
    ``DialogueData``: (context, response) examples instead of sentences (see ``data.dialogue``)."""
    corpus = load_corpus(config)
    if getattr(corpus, "dialogues", None) is not None:
        from .dialogue import prepare_dialogue_data

        return prepare_dialogue_data(config, max_length, tokenizer=tokenizer, corpus=corpus)
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus.train, config.tokenizer)
    limit = config.max_length or max_length
    datasets, reports, kept_index = {}, {}, {}
    for split in SPLITS:
        ids = tokenizer.batch_encode(corpus.split(split))
        kept, index, report = fit_length(ids, limit, config.overlong, what=f"{split} sentence")
        warn_length_report(report, split)
        datasets[split], reports[split], kept_index[split] = SentenceDataset(kept), report, index
    return PreparedData(corpus, tokenizer, datasets, reports, kept_index)


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
