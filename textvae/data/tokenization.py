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
"""

from __future__ import annotations

import abc
import io
import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

from ..errors import TokenizerError
from ..config import TokenizerConfig
from ..registry import TOKENIZERS, unknown_name_message
from .words import detokenize, ptb_numbers, word_splitter

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
CONFIG_FILE = "tokenizer_config.json"

PathLike = Union[str, Path]


def _as_id_list(ids: Any) -> list[int]:
    """A plain list of ints from a list, tuple, 1-D torch tensor or numpy array."""
    if hasattr(ids, "tolist"):  # torch tensors and numpy arrays
        if getattr(ids, "ndim", 1) != 1:
            raise TokenizerError(f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}; use batch_decode")
        ids = ids.tolist()
    return [int(i) for i in ids]


class Tokenizer(abc.ABC):
    """Text <-> ids. Subclasses implement the backend; the special ids are 0..3 unless a backend keeps its own."""

    type_name: str = ""
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    unk_id: int = UNK_ID
    requested_size: "int | None" = None  # data.tokenizer.vocab_size at training; vocab_size is what was trained
    unk_token: "str | None" = None  # the corpus's own unknown token, read as <unk>
    _unk_pattern: "re.Pattern | None" = None
    unit: str = "pieces"  # what describe() calls the vocabulary's entries

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, without ``<bos>``/``<eos>``."""

    def batch_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(t) for t in texts]``, through the backend's batch path where it has one."""
        return [self.encode(t) for t in texts]

    @abc.abstractmethod
    def _decode_clean(self, ids: list[int]) -> str:
        """Text of ids that hold no pad/bos/eos."""

    def _clean(self, ids: Any) -> list[int]:
        out = []
        size = self.vocab_size
        for i in _as_id_list(ids):
            if i == self.eos_id:
                break
            if i == self.pad_id or i == self.bos_id:
                continue
            if not 0 <= i < size:
                raise IndexError(f"token id {i} is outside the vocabulary (size {size})")
            out.append(i)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``: skips ``<pad>``/``<bos>``, stops at the first ``<eos>``."""
        return self._decode_clean(self._clean(ids))

    def batch_decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """``[decode(row) for row in ids]``; also takes a 2-D tensor or array."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return [self.decode(row) for row in ids]

    def tokenize(self, text: str) -> list[str]:
        """The token strings ``encode`` maps ``text`` to (unknown pieces read ``<unk>``)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    @abc.abstractmethod
    def id_to_token(self, i: int) -> str:
        """The token string of id ``i``."""

    @abc.abstractmethod
    def token_to_id(self, tok: str) -> int:
        """The id of token ``tok``; ``unk_id`` when it is not in the vocabulary."""

    @abc.abstractmethod
    def _settings(self) -> dict:
        """What goes into tokenizer_config.json besides the type."""

    @abc.abstractmethod
    def _save_backend(self, folder: Path) -> None:
        """Write the backend's files into ``folder``."""

    def save(self, folder: PathLike) -> None:
        """Write ``tokenizer_config.json`` and the backend files into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_backend(folder)
        config = {"type": self.type_name, **self._settings()}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    @abc.abstractmethod
    def train(cls, sentences: Iterable[str], config: TokenizerConfig) -> "Tokenizer":
        """Build a tokenizer from training sentences."""

    @classmethod
    @abc.abstractmethod
    def _load(cls, folder: Path, settings: dict) -> "Tokenizer":
        """Restore a tokenizer from its folder; ``settings`` is the parsed tokenizer_config.json."""

    def describe(self) -> str:
        """One line for logs, e.g. ``word tokenizer: 5,126 entries (10,000 requested, min_count 1)``."""
        details = [f"{self.requested_size:,} requested"] if self.requested_size else []
        details += self._details()
        return f"{self.type_name} tokenizer: {self.vocab_size:,} {self.unit}" + (f" ({', '.join(details)})" if details else "")

    def _details(self) -> list[str]:
        """Settings worth a word in ``describe``."""
        return []

    def _set_unk_token(self, unk_token: "str | None") -> None:
        self.unk_token = unk_token or None
        self._unk_pattern = _unk_pattern(unk_token)

    def _replace_unk(self, text: str) -> str:
        """``text`` with the corpus's own unknown token written as ``<unk>``."""
        return self._unk_pattern.sub(UNK, text) if self._unk_pattern is not None else text

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.type_name!r}, vocab_size={self.vocab_size})"


def _backend_file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise TokenizerError(f"tokenizer file not found: {path}")
    return path


def _unk_pattern(unk_token: "str | None") -> "re.Pattern | None":
    """What finds a corpus's own unknown token as a whole word: ``_UNK`` in "a _UNK." but not in "x_UNKy"."""
    return re.compile(rf"(?<!\w){re.escape(unk_token)}(?!\w)") if unk_token else None


def _unk_replaced(sentences: Iterable[str], unk_token: "str | None") -> Iterable[str]:
    """Training sentences with the corpus's own unknown token written ``<unk>``, so it is never learned."""
    pattern = _unk_pattern(unk_token)
    return sentences if pattern is None else (pattern.sub(UNK, s) for s in sentences)


def _check_size(config: TokenizerConfig, minimum: int, why: str) -> None:
    """A ``TokenizerError`` if ``data.tokenizer.vocab_size`` is below the ``minimum`` a usable vocabulary needs."""
    if config.vocab_size < minimum:
        raise TokenizerError(f"data.tokenizer.vocab_size {config.vocab_size:,} is too small for a {config.type} tokenizer: "
                             f"the minimum is {minimum:,} ({why})")


def _warn_underfilled(tok: Tokenizer, reason: str) -> None:
    """One ``UserWarning`` when training gave fewer entries than ``data.tokenizer.vocab_size`` asked for."""
    if tok.requested_size and tok.vocab_size < tok.requested_size:
        warnings.warn(f"{tok.type_name} tokenizer: trained {tok.vocab_size:,} {tok.unit} of the {tok.requested_size:,} "
                      f"requested (data.tokenizer.vocab_size); {reason}", UserWarning, stacklevel=3)


def _check_specials(tok: Tokenizer) -> None:
    """Fail loudly if a backend did not put the specials at ids 0..3."""
    got = [tok.id_to_token(i) for i in range(len(SPECIALS))]
    if got != list(SPECIALS):
        raise TokenizerError(f"{tok.type_name} tokenizer has specials {got}, expected {list(SPECIALS)} at ids 0..3")


# ---------------------------------------------------------------- word level


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


# ---------------------------------------------------------------- Hugging Face tokenizers: BPE and WordPiece


def _unk_controls(ids: list[int]) -> list[int]:
    """Literal ``<pad>``/``<bos>``/``<eos>`` in text match the special tokens; encode must not emit them."""
    if not ids or min(ids) >= UNK_ID:
        return ids
    return [i if i >= UNK_ID else UNK_ID for i in ids]


@TOKENIZERS.register("bpe", "wordpiece")
class HFTokenizer(Tokenizer):
    """BPE or WordPiece from the ``tokenizers`` library, saved as ``tokenizer.json`` (which holds the whole pipeline,
    so a folder decodes as it did when saved, whatever the defaults are now).

    ``bpe`` is byte-level (GPT-2's scheme: 256 byte pieces, then merges; words keep their leading space as ``Ġ``):
    no unknown pieces, and ``decode`` gives any text back exactly. ``wordpiece``, and ``bpe`` with
    ``byte_level: false``, split words on whitespace only and give pieces after the first a ``##`` prefix, so decoding
    is exact up to whitespace, but characters not seen in training become ``<unk>``. (Splitting on punctuation too
    would turn PTB's ``u.s.`` or ``n't`` into ``u . s .`` and ``n ' t``.)
    """

    PREFIX = "##"

    def __init__(self, tokenizer: Any, type_name: str, lowercase: bool = False, target_size: int | None = None,
                 byte_level: bool = False, unk_token: str | None = None) -> None:
        self._tok = tokenizer
        self.type_name = type_name
        self.lowercase = lowercase
        self.target_size = self.requested_size = target_size
        self.byte_level = byte_level
        self._set_unk_token(unk_token)
        self._size = tokenizer.get_vocab_size(with_added_tokens=True)
        _check_specials(self)

    @property
    def vocab_size(self) -> int:
        return self._size

    def encode(self, text: str) -> list[int]:
        """Subword ids of ``text``."""
        return _unk_controls(self._tok.encode(self._replace_unk(text), add_special_tokens=False).ids)

    def batch_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of many texts, encoded in parallel by the Rust backend."""
        texts = [self._replace_unk(t) for t in texts]
        return [_unk_controls(e.ids) for e in self._tok.encode_batch_fast(texts, add_special_tokens=False)]

    def _decode_clean(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def batch_decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts of many id rows, decoded in one backend call."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self._tok.decode_batch([self._clean(row) for row in ids], skip_special_tokens=False)

    def tokenize(self, text: str) -> list[str]:
        """The subword strings of ``text`` (byte-level: a leading space reads ``Ġ``; else continuations start with
        ``##``)."""
        return self._tok.encode(self._replace_unk(text), add_special_tokens=False).tokens

    def id_to_token(self, i: int) -> str:
        """The subword string of id ``i``."""
        tok = self._tok.id_to_token(i) if i >= 0 else None
        if tok is None:
            raise IndexError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return tok

    def token_to_id(self, tok: str) -> int:
        """The id of subword ``tok``; ``unk_id`` if unknown."""
        i = self._tok.token_to_id(tok)
        return UNK_ID if i is None else i

    def _settings(self) -> dict:
        return {"vocab_size": self.target_size, "lowercase": self.lowercase, "byte_level": self.byte_level,
                "unk_token": self.unk_token}

    def _details(self) -> list[str]:
        return ["byte-level"] if self.byte_level else []

    def _save_backend(self, folder: Path) -> None:
        self._tok.save(str(folder / "tokenizer.json"))

    @classmethod
    def train(cls, sentences: Iterable[str], config: TokenizerConfig) -> "HFTokenizer":
        """Train a BPE or WordPiece model (``config.type``) to about ``config.vocab_size`` pieces."""
        from tokenizers import Tokenizer as HFBackend
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        if config.type not in ("bpe", "wordpiece"):
            raise TokenizerError(unknown_name_message("tokenizer", config.type, ["bpe", "wordpiece"]))
        byte_level = config.type == "bpe" and config.byte_level
        if byte_level:
            alphabet = pre_tokenizers.ByteLevel.alphabet()
            _check_size(config, len(SPECIALS) + len(alphabet), f"the {len(SPECIALS)} specials and 256 byte pieces")
            tok = HFBackend(models.BPE())
            trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=list(SPECIALS),
                                          initial_alphabet=alphabet, show_progress=False)
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
        else:
            _check_size(config, len(SPECIALS) + 1, f"the {len(SPECIALS)} specials and one piece")
            common = dict(vocab_size=config.vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                          continuing_subword_prefix=cls.PREFIX)
            if config.type == "bpe":
                tok = HFBackend(models.BPE(unk_token=UNK, continuing_subword_prefix=cls.PREFIX))
                trainer = trainers.BpeTrainer(**common)
            else:
                tok = HFBackend(models.WordPiece(unk_token=UNK, continuing_subword_prefix=cls.PREFIX))
                trainer = trainers.WordPieceTrainer(**common)
            tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            tok.decoder = decoders.WordPiece(prefix=cls.PREFIX, cleanup=False)
        if config.lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.train_from_iterator(iter(_unk_replaced(sentences, config.unk_token)), trainer=trainer)
        tokenizer = cls(tok, config.type, lowercase=config.lowercase, target_size=config.vocab_size,
                        byte_level=byte_level, unk_token=config.unk_token)
        # the trainer keeps every character of the text (alone and as a ## continuation) whatever the size asked
        _check_size(config, tokenizer.vocab_size, f"the {len(SPECIALS)} specials and the characters of the text")
        _warn_underfilled(tokenizer, "the training text has no more merges" if config.type == "bpe"
                          else "the training text has no more words and pieces to add")
        return tokenizer

    @classmethod
    def _load(cls, folder: Path, settings: dict) -> "HFTokenizer":
        from tokenizers import Tokenizer as HFBackend

        path = _backend_file(folder, "tokenizer.json")
        try:
            tok = HFBackend.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise TokenizerError(f"cannot read {path}: {exc}") from None
        return cls(tok, settings["type"], lowercase=bool(settings.get("lowercase", False)),
                   target_size=settings.get("vocab_size"), byte_level=bool(settings.get("byte_level", False)),
                   unk_token=settings.get("unk_token"))


# ---------------------------------------------------------------- SentencePiece


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (unigram by default), saved as ``spm.model``.

    Trained with byte fallback (``byte_level``, the default): characters outside the pieces are spelled in UTF-8
    bytes, so no text is unknown, and without normalization, so ``decode`` gives the text back exactly up to
    whitespace (SentencePiece drops leading and trailing whitespace and collapses runs). SentencePiece drops a
    literal ``<unk>`` from training text and spells it out letter by letter when encoding, so ``<unk>`` in the text
    (PTB) is mapped to ``unk_id`` here; ``unk_id`` decodes as a separate word ``<unk>``.
    """

    type_name = "sentencepiece"
    model_type = "unigram"

    def __init__(self, model_proto: bytes, lowercase: bool = False, target_size: int | None = None,
                 byte_fallback: bool = False, unk_token: str | None = None) -> None:
        import sentencepiece as spm

        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.lowercase = lowercase
        self.target_size = self.requested_size = target_size
        self.byte_fallback = byte_fallback
        self._set_unk_token(unk_token)
        self._size = self._sp.get_piece_size()
        _check_specials(self)

    def __getstate__(self) -> dict:  # the C++ processor does not pickle; rebuild it from the proto
        return {"model_proto": self._proto, "lowercase": self.lowercase, "target_size": self.target_size,
                "byte_fallback": self.byte_fallback, "unk_token": self.unk_token}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def vocab_size(self) -> int:
        return self._size

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text``."""
        return self.batch_encode([text])[0]

    def batch_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of many texts, in one multi-threaded backend call."""
        texts = [self._replace_unk(t) for t in texts]
        parts = [(t.lower() if self.lowercase else t).split(UNK) for t in texts]
        flat = self._sp.encode([p for ps in parts for p in ps], out_type=int)
        out, k = [], 0
        for ps in parts:
            ids = flat[k]
            for piece_ids in flat[k + 1 : k + len(ps)]:
                ids = ids + [UNK_ID] + piece_ids
            out.append(ids)
            k += len(ps)
        return out

    def _decode_clean(self, ids: list[int]) -> str:
        # the runs between <unk>s decode on their own; each is stripped, so "a <unk> b" reads with single spaces
        words, run = [], []
        for i in ids + [UNK_ID]:
            if i != UNK_ID:
                run.append(i)
                continue
            if run:
                words.append(self._sp.decode(run).strip())
                run = []
            words.append(UNK)
        return " ".join(w for w in words[:-1] if w)

    def id_to_token(self, i: int) -> str:
        """The piece string of id ``i``."""
        if not 0 <= i < self._size:
            raise IndexError(f"token id {i} is outside the vocabulary (size {self._size})")
        return self._sp.id_to_piece(i)

    def token_to_id(self, tok: str) -> int:
        """The id of piece ``tok``; ``unk_id`` if unknown."""
        return self._sp.piece_to_id(tok)

    def _settings(self) -> dict:
        return {"vocab_size": self.target_size, "lowercase": self.lowercase, "model_type": self.model_type,
                "byte_fallback": self.byte_fallback, "unk_token": self.unk_token}

    def _details(self) -> list[str]:
        return ["byte fallback"] if self.byte_fallback else []

    def _save_backend(self, folder: Path) -> None:
        (folder / "spm.model").write_bytes(self._proto)

    @classmethod
    def train(cls, sentences: Iterable[str], config: TokenizerConfig) -> "SentencePieceTokenizer":
        """Train a SentencePiece model in memory to at most ``config.vocab_size`` pieces (fewer, with a warning, if
        the text supports no more)."""
        import sentencepiece as spm

        byte_fallback = config.byte_level
        why = f"the {len(SPECIALS)} specials{', 256 byte pieces' if byte_fallback else ''} and the characters of the text"
        _check_size(config, len(SPECIALS) + (256 if byte_fallback else 0) + 1, why)
        lines = _unk_replaced(sentences, config.unk_token)
        if config.lowercase:
            lines = (s.lower() for s in lines)
        writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=writer, model_type=cls.model_type,
                vocab_size=config.vocab_size, hard_vocab_limit=False,  # small corpora give fewer pieces, not an error
                pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
                pad_piece=PAD, bos_piece=BOS, eos_piece=EOS, unk_piece=UNK,
                character_coverage=1.0, minloglevel=2, byte_fallback=byte_fallback,
                # no NFKC: decode gives back the characters that were encoded
                normalization_rule_name="identity" if byte_fallback else "nmt_nfkc",
            )
        except RuntimeError as exc:
            needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
            if needed:  # every character of the text needs a piece of its own
                _check_size(config, int(needed.group(1)), why)
            raise TokenizerError(f"sentencepiece training failed: {exc}") from None
        tokenizer = cls(writer.getvalue(), lowercase=config.lowercase, target_size=config.vocab_size,
                        byte_fallback=byte_fallback, unk_token=config.unk_token)
        _warn_underfilled(tokenizer, "the training text supports no more pieces")
        return tokenizer

    @classmethod
    def _load(cls, folder: Path, settings: dict) -> "SentencePieceTokenizer":
        proto = _backend_file(folder, "spm.model").read_bytes()
        try:
            return cls(proto, lowercase=bool(settings.get("lowercase", False)), target_size=settings.get("vocab_size"),
                       byte_fallback=bool(settings.get("byte_fallback", False)), unk_token=settings.get("unk_token"))
        except RuntimeError as exc:
            raise TokenizerError(f"cannot read {folder / 'spm.model'}: {exc}") from None


# ---------------------------------------------------------------- a pretrained checkpoint's own tokenizer

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


def load_hf_tokenizer(folder: PathLike) -> Any:
    """``AutoTokenizer`` from a local checkpoint folder (never the hub); a missing folder or file is named."""
    from transformers import AutoTokenizer

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TokenizerError(f"tokenizer folder not found: {folder}")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerError(f"{folder} holds no tokenizer files (expected tokenizer.json, vocab.txt, or vocab.json "
                             "and merges.txt, with tokenizer_config.json)")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise TokenizerError(f"cannot load the tokenizer in {folder}: {exc}") from None


def _first_id(*ids: "int | None") -> "int | None":
    """The first id that is set."""
    return next((int(i) for i in ids if i is not None), None)


@TOKENIZERS.register("pretrained")
class PretrainedTokenizer(Tokenizer):
    """The tokenizer of a Hugging Face checkpoint (``data.tokenizer.path``, a local folder), unchanged: its vocabulary
    and special ids are the checkpoint's, so a pretrained decoder predicts exactly the tokens it was trained on.

    Specials: ``<bos>`` is the checkpoint's bos token, else its cls token ([CLS] for BERT); ``<eos>`` its eos token,
    else its sep token ([SEP]); ``<pad>`` and ``<unk>`` fall back to ``<eos>`` when missing. GPT-2 so uses
    <|endoftext|> for all four, as it was trained (word dropout masks with it too); lengths, not pad ids, mark
    where sentences end, and no token is added, so the checkpoint's embeddings fit unchanged. Saved as
    ``tokenizer_config.json`` plus the Hugging Face files in ``hf_tokenizer/``, so a model folder needs no checkpoint.
    """

    type_name = "pretrained"
    unit = "entries"
    SUBFOLDER = "hf_tokenizer"

    def __init__(self, hf_tokenizer: Any, path: str | None = None) -> None:
        self.hf = hf_tokenizer
        self.path = path
        tok = hf_tokenizer
        eos = _first_id(tok.eos_token_id, tok.sep_token_id)
        if eos is None:
            raise TokenizerError(f"the tokenizer of {path} has no eos or sep token: textvae needs one to end sentences")
        self.eos_id = eos
        self.bos_id = _first_id(tok.bos_token_id, tok.cls_token_id, eos)
        self.pad_id = _first_id(tok.pad_token_id, eos)
        self.unk_id = _first_id(tok.unk_token_id, eos)
        self._size = len(tok)

    @property
    def vocab_size(self) -> int:
        return self._size

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special-token strings in the text are split like any other text."""
        return self.batch_encode([text])[0]

    def batch_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts, in one backend call."""
        return self.hf(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def _clean(self, ids: Any) -> list[int]:
        ids = _as_id_list(ids)
        if self.bos_id == self.eos_id and ids[:1] == [self.bos_id]:  # GPT-2: a leading <|endoftext|> is <bos>
            ids = ids[1:]
        return super()._clean(ids)

    def _decode_clean(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def id_to_token(self, i: int) -> str:
        """The token string of id ``i``."""
        if not 0 <= i < self._size:
            raise IndexError(f"token id {i} is outside the vocabulary (size {self._size})")
        return self.hf.convert_ids_to_tokens(i)

    def token_to_id(self, tok: str) -> int:
        """The id of token ``tok``; ``unk_id`` if unknown."""
        i = self.hf.convert_tokens_to_ids(tok)
        return self.unk_id if i is None else int(i)

    def _settings(self) -> dict:
        return {"path": self.path, "folder": self.SUBFOLDER}

    def _details(self) -> list[str]:
        return [f"from {self.path}"] if self.path else []

    def _save_backend(self, folder: Path) -> None:
        self.hf.save_pretrained(str(folder / self.SUBFOLDER))

    @classmethod
    def train(cls, sentences: Iterable[str], config: TokenizerConfig) -> "PretrainedTokenizer":
        """Load the checkpoint's tokenizer from ``config.path``; nothing is trained."""
        if not config.path:
            raise TokenizerError("data.tokenizer.path is not set: tokenizer type 'pretrained' reads the tokenizer of a "
                                 "local Hugging Face checkpoint folder (e.g. the decoder's, model.decoder.path)")
        return cls(load_hf_tokenizer(config.path), path=str(config.path))

    @classmethod
    def _load(cls, folder: Path, settings: dict) -> "PretrainedTokenizer":
        return cls(load_hf_tokenizer(folder / settings.get("folder", cls.SUBFOLDER)), path=settings.get("path"))


# ---------------------------------------------------------------- entry points


def _tokenizer_class(name: str) -> type[Tokenizer]:
    if name not in TOKENIZERS:
        raise TokenizerError(unknown_name_message("tokenizer", name, TOKENIZERS.names()))
    return TOKENIZERS.get(name)


def train_tokenizer(sentences: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    """Train the tokenizer ``config.type`` names on ``sentences``."""
    return _tokenizer_class(config.type).train(sentences, config)


def load_tokenizer(folder: PathLike) -> Tokenizer:
    """Restore a tokenizer that ``Tokenizer.save`` wrote to ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TokenizerError(f"tokenizer folder not found: {folder}" if not folder.exists() else f"not a folder: {folder}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise TokenizerError(f"tokenizer config not found: {path}")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("type"), str):
        raise TokenizerError(f"{path} must be a JSON object with a \"type\" string (one of {', '.join(TOKENIZERS.names())})")
    return _tokenizer_class(settings["type"])._load(folder, settings)
