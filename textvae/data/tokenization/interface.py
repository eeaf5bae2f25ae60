"""The ``Tokenizer`` interface, the special tokens, the helpers every backend shares, and the entry points
``train_tokenizer`` / ``load_tokenizer``, which find a backend by name in ``registry.TOKENIZERS`` (each backend
registers itself where it is defined; ``textvae.data.tokenization`` imports them all)."""

from __future__ import annotations

import abc
import json
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

from ...config import TokenizerConfig
from ...errors import TokenizerError
from ...registry import TOKENIZERS, unknown_name_message


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
