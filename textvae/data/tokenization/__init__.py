"""One ``Tokenizer`` interface over four backends: a word-level vocabulary (PTB style), BPE/WordPiece trained with
Hugging Face ``tokenizers``, SentencePiece, and the tokenizer of a pretrained Hugging Face checkpoint.

The trained tokenizers give ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` the ids 0, 1, 2, 3; a pretrained one keeps
its checkpoint's ids, so code reads them from ``pad_id``, ``bos_id``, ``eos_id``, ``unk_id``. ``encode`` never adds
``<bos>``/``<eos>`` (the batching code does); ``decode`` drops ``<pad>``/``<bos>`` and stops at the first ``<eos>``.
A tokenizer is a folder: ``tokenizer_config.json`` (``{"type": ..., settings}``) plus the backend's own files;
``load_tokenizer(folder)`` restores it. ``describe()`` is a one-line summary for logs, the size trained beside the
size requested (``data.tokenizer.vocab_size``).

Raw text in, text out: what ``decode(encode(text))`` gives back.

- ``word``: the words of ``textvae.data.words`` (punctuation and clitics split off, PTB style) joined again: with
  ``detokenize`` on (the default for raw training text) ``A man's umbrella, red.`` comes back as it was; off (the
  default for tokenized text like PTB's, and for folders saved before these settings) words are joined by single
  spaces, ``A man 's umbrella , red .``. Either way whitespace is collapsed, words outside the vocabulary read
  ``<unk>``, text is lowercased with ``lowercase`` and numbers read ``N`` with ``numbers: ptb``; emoji and other
  symbols are words of their own, set apart by spaces. A folder saved before pre-tokenization existed splits on
  whitespace only, as it did.
- ``bpe`` (byte-level) gives the text back exactly, whitespace included; ``sentencepiece`` (byte fallback) exactly
  up to whitespace (leading and trailing removed, runs collapsed to one space). Neither has unknown pieces.
- ``wordpiece``, and ``bpe``/``sentencepiece`` with ``byte_level: false``: characters not seen in training are
  ``<unk>``; whitespace is collapsed.
- Every type: with ``lowercase`` the text comes back lowercased; a literal ``<unk>``, or the corpus's own unknown
  token ``unk_token`` (e.g. ``_UNK``), is ``unk_id`` and reads ``<unk>``.

The package: ``interface`` (the ``Tokenizer`` interface, specials, ``train_tokenizer``/``load_tokenizer``),
``word``, ``subword`` (BPE, WordPiece), ``sentence_piece`` and ``pretrained``; each backend registers itself in
``registry.TOKENIZERS`` where it is defined, and the imports below load them all.
"""

from ...errors import TokenizerError
from .interface import (
    BOS,
    BOS_ID,
    CONFIG_FILE,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    SPECIALS,
    UNK,
    UNK_ID,
    PathLike,
    Tokenizer,
    load_tokenizer,
    train_tokenizer,
)
from .pretrained import TOKENIZER_FILES, PretrainedTokenizer, load_hf_tokenizer
from .sentence_piece import SentencePieceTokenizer
from .subword import HFTokenizer
from .word import WordTokenizer

__all__ = [
    "BOS", "BOS_ID", "CONFIG_FILE", "EOS", "EOS_ID", "PAD", "PAD_ID", "SPECIALS", "UNK", "UNK_ID", "TOKENIZER_FILES",
    "HFTokenizer", "PathLike", "PretrainedTokenizer", "SentencePieceTokenizer", "Tokenizer", "TokenizerError",
    "WordTokenizer", "load_hf_tokenizer", "load_tokenizer", "train_tokenizer",
]
