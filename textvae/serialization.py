"""Model folders: ``config.json`` + ``model.safetensors`` + tokenizer files (+ the config and tokenizer of any
pretrained backbone, in ``<role>_backbone/``), written atomically and read without pickle.

The bottom floor of the package, beside ``config`` and ``errors``: it knows the folder's layout, not the models, so
loading a model folder never imports the trainer (``training.checkpoint`` keeps only a run's resume bookkeeping)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

from .errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@contextmanager
def atomic_folder(folder: "str | Path") -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder`` in one rename, so a reader
    (or a resumed run) never sees a half-written folder. On failure the temporary folder is removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        yield tmp
        sync_files(tmp)  # make the bytes durable before the rename publishes them
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.getpid()}"
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sync_files(folder: Path) -> None:
    """fsync every file under ``folder``: what a rename is about to publish must be on disk first."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def write_json(path: "str | Path", data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_model_folder(
    folder: "str | Path", model: torch.nn.Module, config: dict, tokenizer=None, extra: "Callable[[Path], None] | None" = None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` (tied weights stored once), the tokenizer and whatever ``extra``
    writes into the folder it is given, atomically."""
    with atomic_folder(folder) as tmp:
        write_json(tmp / CONFIG_NAME, config)
        save_model(model, str(tmp / WEIGHTS_NAME))
        if tokenizer is not None:
            tokenizer.save(tmp)
        if extra is not None:
            extra(tmp)
    return Path(folder)


def read_config(folder: "str | Path") -> dict:
    """The JSON config of a model folder; a missing folder or file is named in the error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"model folder {folder} has no {CONFIG_NAME}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def load_weights(model: torch.nn.Module, folder: "str | Path", modules: Sequence[str] = ()) -> None:
    """Load ``model.safetensors`` into ``model``, failing with the mismatched names and shapes, not a torch trace.
    ``modules``: load only these top-level modules (e.g. ``["encoder"]``) and leave the rest as they are."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"model folder {folder} has no {WEIGHTS_NAME}")
    try:
        stored = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} cannot be read as safetensors: {exc}") from None
    expected = model.state_dict()
    if modules:
        known = {name.split(".")[0] for name in expected}
        unknown = [m for m in modules if m not in known]
        if unknown:
            raise CheckpointError(f"no module {', '.join(map(repr, unknown))} in the model; it has {', '.join(sorted(known))}")
        wanted = tuple(f"{m}." for m in modules)
        expected = {k: v for k, v in expected.items() if k.startswith(wanted)}
        stored = {k: v for k, v in stored.items() if k.startswith(wanted)}
    problems = weight_problems(model, stored, expected)
    if problems:
        raise CheckpointError(f"weights in {path} do not match the model its config.json describes: {problems}")
    model.load_state_dict(stored, strict=False)


def weight_problems(model: torch.nn.Module, stored: dict, expected: Optional[dict] = None) -> str:
    """Missing, unexpected and differently shaped tensors of ``stored`` against ``expected`` (the model's state
    dict), named with both shapes; "" when they fit."""
    expected = model.state_dict() if expected is None else expected
    problems = []
    for name, tensor in expected.items():
        if name not in stored:
            if not _is_tied_alias(model, name, stored):
                problems.append(f"missing {name} {tuple(tensor.shape)}")
        elif stored[name].shape != tensor.shape:
            problems.append(f"{name}: checkpoint has {tuple(stored[name].shape)}, config builds {tuple(tensor.shape)}")
    problems += [f"unexpected {name}" for name in stored if name not in expected]
    return "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")


def _is_tied_alias(model: torch.nn.Module, name: str, stored: dict) -> bool:
    """True when ``name`` shares storage with a stored tensor (safetensors keeps tied weights once)."""
    state = model.state_dict(keep_vars=True)
    pointer = state[name].data_ptr()
    return any(state[other].data_ptr() == pointer for other in stored if other in state and other != name)


# ---------------------------------------------------------------- pretrained backbones inside a model folder

_saved_model_folder: ContextVar[Optional[Path]] = ContextVar("textvae_saved_model_folder", default=None)


def backbone_folder(model_folder: "str | Path", role: str) -> Path:
    """Where a textvae model folder keeps the config and tokenizer of its ``role`` ("encoder", "decoder") backbone."""
    return Path(model_folder) / f"{role}_backbone"


@contextmanager
def backbones_from(model_folder: "str | Path") -> Iterator[None]:
    """While active, pretrained modules build their architecture from the copies in a textvae model folder and
    skip the checkpoint's weights (``from_pretrained`` loads the folder's own weights next)."""
    token = _saved_model_folder.set(Path(model_folder))
    try:
        yield
    finally:
        _saved_model_folder.reset(token)


def backbones_folder() -> Optional[Path]:
    """The model folder ``backbones_from`` is active for, or None outside it."""
    return _saved_model_folder.get()


def save_backbone(model_folder: "str | Path", role: str, model: Any, tokenizer: Any) -> None:
    """Copy a backbone's config and tokenizer into a model folder (see ``backbones_from``)."""
    folder = backbone_folder(model_folder, role)
    model.config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
