"""The word-level tokenizer: a PTB-style vocabulary of the words of ``textvae.data.words``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from ...config import TokenizerConfig
from ...errors import TokenizerError
from ...registry import TOKENIZERS
from ..words import detokenize, ptb_numbers, word_splitter
from .interface import BOS, EOS, PAD, SPECIALS, UNK_ID, Tokenizer, _backend_file, _check_size


@TOKENIZERS.register("word")
class WordTokenizer(Tokenizer):
    """Words, the most frequent ones (ties alphabetical) up to ``vocab_size`` with specials. ``pretokenize`` splits
    punctuation and clitics off (``textvae.data.words``), else words are split on whitespace only (folders saved before the
    setting existed). ``detokenize``: ``decode`` re-attaches them (``Don't go.``) instead of joining the words with
    spaces (``Do n't go .``)."""

    type_name = "word"
    unit = "entries"

    def __init__(self, vocab: Sequence[str], lowercase: bool = False, min_count: int = 1, max_size: int | None = None,
                 pretokenize: bool = True, numbers: str = "keep", unk_token: str | None = None,
                 detokenize: bool = False) -> None:
        vocab = list(vocab)
        if vocab[: len(SPECIALS)] != list(SPECIALS):
            raise TokenizerError(f"word vocabulary must start with {list(SPECIALS)}, got {vocab[:4]}")
        if len(set(vocab)) != len(vocab):
            dup = next(w for w, c in Counter(vocab).items() if c > 1)
            raise TokenizerError(f"word vocabulary lists {dup!r} twice")
        if numbers not in ("keep", "ptb"):
            raise TokenizerError(f"word tokenizer numbers must be 'keep' or 'ptb', got {numbers!r}")
        self.itos = vocab
        self.lowercase = lowercase
        self.min_count = min_count
        self.max_size = self.requested_size = max_size if max_size is not None else len(vocab)
        self.pretokenize = pretokenize
        self.numbers = numbers
        self.detokenize = detokenize
        self._set_unk_token(unk_token)
        self.stoi = {w: i for i, w in enumerate(vocab)}
        self._lookup = dict(self.stoi)  # for encode: literal "<eos>" etc. in text is just an unknown word
        for special in (PAD, BOS, EOS):
            self._lookup[special] = UNK_ID

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def words(self, text: str, spacing: Counter | None = None) -> list[str]:
        """The words ``encode`` looks up (split, lowercased, numbers mapped); ``spacing`` as in ``WordSplitter``."""
        text = self._replace_unk(text)
        if not self.pretokenize:
            words = (text.lower() if self.lowercase else text).split()
        else:
            words = word_splitter()(text, spacing)
            if self.lowercase:
                words = [w.lower() for w in words]
        return ptb_numbers(words) if self.numbers == "ptb" else words

    def encode(self, text: str) -> list[int]:
        """Ids of the words of ``text``."""
        get, unk = self._lookup.get, UNK_ID
        return [get(w, unk) for w in self.words(text)]

    def batch_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts, with the lookups hoisted out of the loop."""
        get, unk, words = self._lookup.get, UNK_ID, self.words
        return [[get(w, unk) for w in words(t)] for t in texts]

    def _decode_clean(self, ids: list[int]) -> str:
        itos = self.itos
        words = [itos[i] for i in ids]
        return detokenize(words) if self.detokenize else " ".join(words)

    def id_to_token(self, i: int) -> str:
        """The word of id ``i``."""
        if not 0 <= i < len(self.itos):
            raise IndexError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self.itos[i]

    def token_to_id(self, tok: str) -> int:
        """The id of word ``tok`` (lowercased if the tokenizer lowercases); ``unk_id`` if unknown."""
        return self.stoi.get(tok.lower() if self.lowercase else tok, UNK_ID)

    def _settings(self) -> dict:
        return {"vocab_size": self.max_size, "min_count": self.min_count, "lowercase": self.lowercase,
                "pretokenize": self.pretokenize, "numbers": self.numbers, "unk_token": self.unk_token,
                "detokenize": self.detokenize}

    def _details(self) -> list[str]:
        return [f"min_count {self.min_count}"] + (["whitespace-split"] if not self.pretokenize else [])

    def _save_backend(self, folder: Path) -> None:
        with open(folder / "vocab.txt", "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(self.itos) + "\n")

    @classmethod
    def train(cls, sentences: Iterable[str], config: TokenizerConfig) -> "WordTokenizer":
        """Count words; keep those seen ``min_count`` times or more, most frequent first, ``vocab_size`` in all.
        ``detokenize: auto`` turns on if the text mostly writes punctuation and clitics attached to words (raw text)."""
        _check_size(config, len(SPECIALS) + 1, f"the {len(SPECIALS)} specials and one word")
        tok = cls(list(SPECIALS), lowercase=config.lowercase, min_count=config.min_count, pretokenize=config.pretokenize,
                  numbers=config.numbers, unk_token=config.unk_token)
        counts: Counter = Counter()
        spacing: Counter = Counter()
        for s in sentences:
            counts.update(tok.words(s, spacing))
        for special in SPECIALS:  # PTB's own <unk> is our <unk>, never a second entry
            counts.pop(special, None)
        words = sorted((w for w, c in counts.items() if c >= config.min_count), key=lambda w: (-counts[w], w))
        vocab = list(SPECIALS) + words[: config.vocab_size - len(SPECIALS)]
        if config.detokenize == "auto":
            detok = config.pretokenize and spacing["attached"] > spacing["apart"]
        else:
            detok = config.detokenize == "always"
        return cls(vocab, lowercase=config.lowercase, min_count=config.min_count, max_size=config.vocab_size,
                   pretokenize=config.pretokenize, numbers=config.numbers, unk_token=config.unk_token, detokenize=detok)

    @classmethod
    def _load(cls, folder: Path, settings: dict) -> "WordTokenizer":
        text = _backend_file(folder, "vocab.txt").read_text(encoding="utf-8")
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        # folders saved before pre-tokenization existed lack its settings: whitespace split, words joined by spaces
        return cls(vocab, lowercase=bool(settings.get("lowercase", False)), min_count=int(settings.get("min_count", 1)),
                   max_size=settings.get("vocab_size"), pretokenize=bool(settings.get("pretokenize", False)),
                   numbers=settings.get("numbers", "keep"), unk_token=settings.get("unk_token"),
                   detokenize=bool(settings.get("detokenize", False)))
