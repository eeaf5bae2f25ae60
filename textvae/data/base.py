"""What every data module shares, at the bottom of ``textvae.data``: the split names, the ``Corpus`` a loader
returns and the ``PreparedData`` a pipeline returns. Imports nothing from ``textvae.data`` but for type hints, so
corpora, the sentence pipeline and the dialogue pipeline all build on it without importing one another back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:
    from ..config import Config
    from .batching import LengthReport, SentenceDataset
    from .tokenization import Tokenizer

SPLITS = ("train", "valid", "test")


@dataclass
class Corpus:
    """Sentences per split, with ground-truth factor labels where the corpus has them.

    ``factors[split]`` is an int array of shape (num_sentences, len(factor_names)), row-aligned with the sentences.
    """

    name: str
    train: list[str]
    valid: list[str]
    test: list[str]
    factor_names: Optional[list[str]] = None
    factors: Optional[dict[str, np.ndarray]] = None
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.split(s))}" for s in SPLITS)
        return f"Corpus({self.name!r}, {sizes})"


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
        return f"data: {self.corpus.name} ({sizes} examples)\n{self.tokenizer.describe()}\n{self.length_note}"

    def model_config(self, config: Config) -> Config:
        """``config`` with ``model.max_length`` set to the limit the data was fitted to (derived when it was None)."""
        return dataclasses.replace(config, model=dataclasses.replace(config.model, max_length=self.max_length))
