"""BPE and WordPiece tokenizers trained with Hugging Face ``tokenizers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from ...config import TokenizerConfig
from ...errors import TokenizerError
from ...registry import TOKENIZERS, unknown_name_message
from .interface import (
    SPECIALS,
    UNK,
    UNK_ID,
    Tokenizer,
    _backend_file,
    _check_size,
    _check_specials,
    _unk_replaced,
    _warn_underfilled,
)


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
