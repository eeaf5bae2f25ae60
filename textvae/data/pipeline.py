"""Corpus -> tokenizer -> tokenized splits -> DataLoaders: the data half of a run, in one call."""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import DataLoader

from ..config import DataConfig
from ..errors import DataError
from .base import SPLITS, PreparedData
from .batching import (  # resolve_max_length and check_kept re-exported: their public home was here
    BucketBatchSampler,
    SentenceDataset,
    check_kept,
    fit_length,
    resolve_max_length,
    warn_length_report,
)
from .corpora import load_corpus
from .dealornodeal import NegotiationCorpus, prepare_negotiation_data
from .dialogue import prepare_dialogue_data
from .images import ImageCorpus, prepare_image_data
from .tokenization import Tokenizer, train_tokenizer


def prepare_data(
    config: DataConfig, max_length: Optional[int] = None, tokenizer: Optional[Tokenizer] = None,
    overlong: str = "truncate",
) -> PreparedData:
    """Load the corpus, train a tokenizer on its training split (unless one is given), tokenize every split and
    fit it to one length limit with one policy (the model's ``max_length`` and ``overlong``, the same ones the API
    applies); ``max_length=None`` derives the limit from the training split. A dialogue corpus gives
    ``DialogueData``: (context, response) examples instead of sentences (see ``data.dialogue``); an image corpus
    gives ``PreparedImages`` (see ``data.images``)."""
    corpus = load_corpus(config)
    if isinstance(corpus, ImageCorpus):  # images need no tokenizer or length limit
        return prepare_image_data(corpus)
    for split in SPLITS:
        if not corpus.split(split) and getattr(corpus, "dialogues", None) is None:
            raise DataError(f"the {split} split of corpus {corpus.name!r} is empty")
    if isinstance(corpus, NegotiationCorpus):
        return prepare_negotiation_data(config, max_length, tokenizer=tokenizer, corpus=corpus, overlong=overlong)
    if getattr(corpus, "dialogues", None) is not None:
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
    same_length: bool = False,
) -> DataLoader:
    """A DataLoader of padded batches, length-bucketed so padding stays small; the dataset names its collator."""
    sampler = BucketBatchSampler(
        dataset.lengths(), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, bucket=bucket,
        same_length=same_length,
    )
    collator = dataset.collator(tokenizer)
    # an own generator: creating an iterator draws a worker seed, and from the global RNG that draw would shift the
    # training random stream whenever an iterator is made (e.g. on resume), breaking exact resumption
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collator, num_workers=num_workers, generator=generator
    )
