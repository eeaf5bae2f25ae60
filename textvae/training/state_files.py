"""Resume state (optimizer, gradient scaler, random generators, RL statistics) as one safetensors file per writer:
the tensors in its body, the nested structure that holds them as JSON in its header. Nothing is ever unpickled, so
a resume reads a checkpoint it was handed as safely as a model folder.

The structure keeps what ``torch.optim.Optimizer.state_dict`` and the generators' states are made of: dicts (with
int or str keys), lists, tuples, tensors, numpy arrays, numbers, strings, booleans and None."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError

TREE_KEY = "textvae.state"  # the header entry that holds the JSON structure
NUMERIC_KINDS = "biufc"  # the numpy dtype kinds a state file keeps: bool, int, uint, float, complex
# what putting a readable state file's contents back raises when they have another layout than the reader expects
LAYOUT_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError)


def _encode(value: Any, tensors: "dict[str, torch.Tensor]", where: str) -> Any:
    """``value`` as JSON, its tensors and arrays moved into ``tensors`` under the names the JSON gives them."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"state at {where}: a numpy {value.dtype} value cannot be stored in a state file")
    if isinstance(value, np.generic):  # before int and float: np.float64 is a float, and must come back as itself
        return {"scalar": value.item(), "dtype": value.dtype.str}
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().to("cpu").contiguous().clone()  # clone: safetensors refuses shared storage
        return {"tensor": name}
    if isinstance(value, np.ndarray):  # integers as int64 (torch has no uint32), the rest in native byte order
        name = f"t{len(tensors)}"
        stored = np.dtype(np.int64) if value.dtype.kind in "iu" else value.dtype.newbyteorder("=")
        tensors[name] = torch.from_numpy(value.astype(stored, order="C", copy=True))
        return {"array": name, "dtype": value.dtype.str}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"state at {where}: key {key!r} is a {type(key).__name__}, not a str or int")
        return {"dict": [[key, _encode(v, tensors, f"{where}[{key!r}]")] for key, v in value.items()]}
    raise TypeError(f"state at {where}: a {type(value).__name__} cannot be stored in a state file")


def _decode(node: Any, tensors: "dict[str, torch.Tensor]") -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "array" in node:
        return tensors[node["array"]].numpy().astype(_numeric_dtype(node["dtype"]))
    if "scalar" in node:
        return _numeric_dtype(node["dtype"]).type(node["scalar"])
    if "tuple" in node:
        return tuple(_decode(v, tensors) for v in node["tuple"])
    return {key: _decode(v, tensors) for key, v in node["dict"]}


def _numeric_dtype(name: str) -> np.dtype:
    dtype = np.dtype(name)
    if dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"dtype {name!r} is not numeric")
    return dtype


def save_state_file(path: "str | Path", state: Any) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file beside it, made durable, then renamed over it)."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    tree = json.dumps(_encode(state, tensors, "root"))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={TREE_KEY: tree})
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state_file(path: "str | Path") -> Any:
    """What ``save_state_file`` wrote to ``path``; a missing, truncated or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"state file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            tree = (handle.metadata() or {}).get(TREE_KEY)
            if tree is None:
                raise CheckpointError(f"{path} is a safetensors file without textvae's state header ({TREE_KEY})")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        return _decode(json.loads(tree), tensors)
    except CheckpointError:
        raise
    except Exception as exc:  # a foreign or damaged file can fail anywhere in the decoding: name the file
        raise CheckpointError(f"{path} cannot be read as a textvae state file: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------- the process's random generators


def random_states() -> dict:
    """The state of every global generator a training step draws from: Python's, numpy's, torch's (and CUDA's)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Put back what ``random_states`` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
