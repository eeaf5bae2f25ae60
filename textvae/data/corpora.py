"""Named corpora: line-per-sentence folders (PTB, Yahoo, Yelp), Hugging Face ``datasets`` from local files,
and the embedded synthetic corpus. Every loader returns a ``Corpus`` with train/valid/test sentence lists."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import DataError
from ..registry import CORPORA
from .base import SPLITS, Corpus  # re-exported: their public home was here


def default_data_dir() -> Optional[str]:
    """The ``TEXTVAE_DATA`` environment variable, where real corpora live (``../shared/data``)."""
    return os.environ.get("TEXTVAE_DATA")


# ---------------------------------------------------------------- line-per-sentence folders

SPLIT_FILE_NAMES = {
    "train": ("ptb.train.txt", "train.txt"),
    "valid": ("ptb.valid.txt", "valid.txt", "validation.txt", "dev.txt"),
    "test": ("ptb.test.txt", "test.txt"),
}


def _require_dir(data_dir: "str | Path | None", corpus: str) -> Path:
    if not data_dir:
        raise DataError(f"corpus {corpus!r} needs data.data_dir (a folder with train/valid/test files)")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder not found: {path}")
    return path


def find_split_file(folder: Path, split: str, suffixes: tuple[str, ...] = (".txt",)) -> Path:
    """The file holding ``split`` in ``folder`` (PTB naming or plain train/valid/test), or a DataError naming both."""
    stems = [name.rsplit(".", 1)[0] for name in SPLIT_FILE_NAMES[split]]
    candidates = [folder / f"{stem}{suffix}" for stem in stems for suffix in suffixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = ", ".join(c.name for c in candidates)
    raise DataError(f"no {split} file in {folder}: looked for {names}")


def read_text(path: "str | Path", errors: str = "strict") -> str:
    """A UTF-8 text file (a leading byte-order mark dropped). Bytes that are not UTF-8 are a DataError naming the
    file, line and column under ``errors="strict"``, and read as U+FFFD under ``"replace"``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise DataError(
            f"{path}, line {line}, column {column}: not valid UTF-8 (byte 0x{raw[start]:02x}); convert the file to "
            "UTF-8 or set data.encoding_errors=replace to read bad bytes as U+FFFD"
        ) from None


def read_lines(path: "str | Path", errors: str = "strict") -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (see ``read_text`` for ``errors``)."""
    return [line for line in (raw.strip() for raw in read_text(path, errors).splitlines()) if line]


def require_sentences(sentences: list[str], split: str, source: "str | Path") -> list[str]:
    """``sentences``, or a DataError when a split has none (an empty or blank file, or nothing in its column)."""
    if not sentences:
        raise DataError(f"the {split} split is empty: {source} holds no non-blank sentence")
    return sentences


@CORPORA.register("lines")
def load_line_corpus(config) -> Corpus:
    """A folder with one sentence per line in ``ptb.{train,valid,test}.txt`` or ``{train,valid,test}.txt``."""
    folder = _require_dir(config.data_dir, "lines")
    splits = {}
    for split in SPLITS:
        path = find_split_file(folder, split)
        splits[split] = require_sentences(read_lines(path, config.encoding_errors), split, path)
    return Corpus(name=folder.name, **splits, info={"data_dir": str(folder)})


# ---------------------------------------------------------------- Hugging Face datasets from local files

HF_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".txt": "text", ".parquet": "parquet"}


@CORPORA.register("hf")
def load_hf_corpus(config) -> Corpus:
    """Local JSON/JSONL/CSV/Parquet/text files per split read with ``datasets.load_dataset``; the sentence is in
    ``config.text_column`` (plain text files give the column ``text``). Nothing is fetched from the network."""
    import datasets

    folder = _require_dir(config.data_dir, "hf")
    files = {split: find_split_file(folder, split, tuple(HF_FORMATS)) for split in SPLITS}
    formats = {HF_FORMATS[path.suffix] for path in files.values()}
    if len(formats) > 1:
        raise DataError(f"split files in {folder} mix formats ({', '.join(sorted(formats))}); use one")
    builder = formats.pop()
    column = "text" if builder == "text" else config.text_column
    options = {}
    if builder != "parquet":
        for path in files.values():  # datasets' own decoding error names neither the file nor the line
            read_text(path, config.encoding_errors)
        options["encoding_errors"] = config.encoding_errors
    loaded = datasets.load_dataset(builder, data_files={k: str(v) for k, v in files.items()}, **options)
    splits = {}
    for split in SPLITS:
        data = loaded[split]
        if column not in data.column_names:
            raise DataError(
                f"{files[split]} has no column {column!r} (columns: {', '.join(data.column_names)}); "
                "set data.text_column"
            )
        sentences = [s.strip() for s in data[column] if isinstance(s, str) and s.strip()]
        splits[split] = require_sentences(sentences, split, f"{files[split]} (column {column!r})")
    return Corpus(name=folder.name, **splits, info={"data_dir": str(folder), "format": builder})


def load_corpus(config) -> Corpus:
    """The corpus ``config.corpus`` names (a ``DataConfig``); ``synthetic`` needs no files. Every corpus registers
    itself in ``CORPORA`` where it is defined; ``textvae.data``'s ``__init__`` imports their modules."""
    return CORPORA.get(config.corpus)(config)
