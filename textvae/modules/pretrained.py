"""Hugging Face backbones for ``PretrainedEncoder`` and ``PretrainedDecoder``, always from local folders.

A fresh model loads config, weights and tokenizer from the checkpoint folder (``model.encoder.path``,
``model.decoder.path``), and a missing file is named in the error. ``save_pretrained`` then copies the backbone's
config and tokenizer (not its weights, which ``model.safetensors`` holds) into ``encoder_backbone/`` and
``decoder_backbone/`` of the model folder, and ``from_pretrained`` builds the backbones from those copies inside
``backbones_from``: a saved model needs neither the original checkpoint nor its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..config import ConfigError
from ..data.tokenization import PretrainedTokenizer, TokenizerError, load_hf_tokenizer
from ..errors import CheckpointError
# backbones_from and save_backbone are re-exported: they were defined here before model folders became serialization's
from ..serialization import backbone_folder, backbones_folder, backbones_from, save_backbone  # noqa: F401

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_checkpoint(path: Optional[str], role: str) -> Path:
    """The checkpoint folder ``model.<role>.path``; fails naming the folder and the file it lacks."""
    if not path:
        raise ConfigError(f"model.{role}.path is not set: a pretrained {role} loads a local Hugging Face checkpoint "
                          "folder (config.json, model.safetensors and tokenizer files)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"model.{role}.path: checkpoint folder not found: {folder}")
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"model.{role}.path: checkpoint folder {folder} has no {CONFIG_FILE}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(f"model.{role}.path: checkpoint folder {folder} has no weights file "
                              f"({' or '.join(WEIGHT_FILES[::2])})")
    return folder


def load_backbone(role: str, path: Optional[str], auto_class: Any) -> tuple[Any, Any]:
    """(model, its tokenizer) for ``role``: from the checkpoint folder, or, inside ``backbones_from``, from the
    config and tokenizer a model folder saved (weights left at their initial values, to be overwritten)."""
    from transformers import AutoConfig

    saved = backbones_folder()
    try:
        if saved is None:
            folder = check_checkpoint(path, role)
            model = auto_class.from_pretrained(str(folder), local_files_only=True, attn_implementation="sdpa")
        else:
            folder = backbone_folder(saved, role)
            if not (folder / CONFIG_FILE).is_file():
                raise CheckpointError(f"model folder {saved} has no {folder.name}/{CONFIG_FILE}")
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            model = auto_class.from_config(config, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        if isinstance(exc, (CheckpointError, ConfigError)):
            raise
        raise CheckpointError(f"model.{role}.path: cannot load the checkpoint in {folder}: {exc}") from None
    try:
        tokenizer = load_hf_tokenizer(folder)
    except TokenizerError as exc:
        raise CheckpointError(f"model.{role}.path: {exc}") from None
    return model.float(), tokenizer


def same_vocabulary(tokenizer: Any, hf_tokenizer: Any) -> bool:
    """Whether the model's tokenizer gives every token the id the checkpoint's tokenizer does."""
    return isinstance(tokenizer, PretrainedTokenizer) and tokenizer.hf.get_vocab() == hf_tokenizer.get_vocab()
