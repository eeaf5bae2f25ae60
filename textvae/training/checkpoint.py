"""Model folders: ``config.json`` + ``model.safetensors`` + tokenizer files, written atomically, read without pickle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

from ..errors import CheckpointError

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
        for path in tmp.rglob("*"):  # make the bytes durable before the rename publishes them
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
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
    problems = []
    for name, tensor in expected.items():
        if name not in stored:
            if not _is_tied_alias(model, name, stored):
                problems.append(f"missing {name} {tuple(tensor.shape)}")
        elif stored[name].shape != tensor.shape:
            problems.append(f"{name}: checkpoint has {tuple(stored[name].shape)}, config builds {tuple(tensor.shape)}")
    problems += [f"unexpected {name}" for name in stored if name not in expected]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CheckpointError(f"weights in {path} do not match the model its config.json describes: {shown}")
    model.load_state_dict(stored, strict=False)


def _is_tied_alias(model: torch.nn.Module, name: str, stored: dict) -> bool:
    """True when ``name`` shares storage with a stored tensor (safetensors keeps tied weights once)."""
    state = model.state_dict(keep_vars=True)
    pointer = state[name].data_ptr()
    return any(state[other].data_ptr() == pointer for other in stored if other in state and other != name)


# ---------------------------------------------------------------- training checkpoints (resume)

TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:08d}"


def list_checkpoints(folder: "str | Path") -> list[Path]:
    """Complete training checkpoints in ``folder``, oldest first. A checkpoint only appears under its final name
    after it was fully written (see ``atomic_folder``), and must hold ``trainer_state.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / TRAINER_STATE_NAME).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(folder: "str | Path") -> "Path | None":
    """The newest complete checkpoint in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def read_trainer_state(checkpoint: "str | Path") -> dict:
    path = Path(checkpoint) / TRAINER_STATE_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def prune_checkpoints(folder: "str | Path", keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and leftovers of interrupted writes)."""
    folder = Path(folder)
    for stale in folder.glob(f".{CHECKPOINT_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    found = list_checkpoints(folder)
    for old in found[: max(0, len(found) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
