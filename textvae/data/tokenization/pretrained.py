"""The tokenizer of a pretrained Hugging Face checkpoint, unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from ...config import TokenizerConfig
from ...errors import TokenizerError
from ...registry import TOKENIZERS
from .interface import PathLike, Tokenizer, _as_id_list


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
