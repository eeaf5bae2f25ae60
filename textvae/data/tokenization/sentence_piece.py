"""SentencePiece tokenizers (unigram by default), with byte fallback."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterable, Sequence

from ...config import TokenizerConfig
from ...errors import TokenizerError
from ...registry import TOKENIZERS
from .interface import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
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
