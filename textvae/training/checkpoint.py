"""The bookkeeping of a training run's folder: resume checkpoints, the lock that keeps one run per folder,
leftovers of interrupted writes, the log a resume trims, and the settings a resume may not change. Model folders
(``config.json`` + ``model.safetensors`` + tokenizer files) are ``textvae.serialization``'s; their names are
re-exported here for code that imported them from this module."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

from ..errors import CheckpointError, TrainingError
from ..serialization import (  # noqa: F401  (re-exported: model folders moved to textvae.serialization)
    CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_folder,
    load_weights,
    read_config,
    save_model_folder,
    sync_files,
    weight_problems,
    write_json,
)
from .state_files import LAYOUT_ERRORS, load_state_file, random_states, restore_random_states, save_state_file


def nonfinite_tensors(tensors: "dict[str, torch.Tensor]") -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity, with one device sync for all of them.
    A tensor's minimum and maximum tell (NaN propagates through both): 5x faster than ``isfinite(t).all()``."""
    names = [name for name, t in tensors.items() if t.is_floating_point() and t.numel()]
    if not names:
        return []
    ends = torch.stack([torch.stack(torch.aminmax(tensors[name].detach())).float() for name in names])
    finite = torch.isfinite(ends).all(dim=1).tolist()
    return [name for name, ok in zip(names, finite) if not ok]


# ---------------------------------------------------------------- training checkpoints (resume)

TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_PREFIX = "step_"


BEST_COPY_NAME = "best"  # in a plateau run's checkpoint: best/'s weights as they were when it was written


def keep_best_copy(best_dir: Path, target: Path) -> None:
    """Put ``best_dir``'s weights into ``target`` (a folder in a checkpoint being written), as a hard link where the
    file system allows: best/ is only ever replaced by a rename (``atomic_folder``), never written in place, so the
    link keeps the old bytes. Nothing when there is no best/ yet."""
    source = best_dir / WEIGHTS_NAME
    if not source.is_file():
        return
    target.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target / WEIGHTS_NAME)
    except OSError:
        shutil.copy2(source, target / WEIGHTS_NAME)


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


OPTIMIZER_STATE_NAME = "optimizer.safetensors"  # the optimizer's and gradient scaler's state, and the step counter
LEGACY_STATE_NAMES = ("optimizer.bin", "random_states_0.pkl")  # accelerate's pickle files, written before


def random_states_name(process_index: int) -> str:
    return f"random_states_{process_index}.safetensors"


def save_training_state(folder: Path, model: torch.nn.Module, optimizer, accelerator, main: bool) -> None:
    """Write a checkpoint's weights (``model.safetensors``), optimizer state and each process's random state into
    ``folder``, as safetensors files only. The main process writes the shared parts; every process its generators."""
    if main:
        save_model(model, str(folder / WEIGHTS_NAME))
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
        save_state_file(folder / OPTIMIZER_STATE_NAME,
                        {"optimizer": optimizer.state_dict(), "scaler": scaler, "accumulation_step": accelerator.step})
    save_state_file(folder / random_states_name(accelerator.process_index), random_states())


def check_checkpoint_format(checkpoint: Path) -> None:
    """Refuse, before anything is read or rewritten, a checkpoint without this version's state files; one in
    accelerate's pickle format (written by earlier versions) is named as such and never unpickled."""
    if (checkpoint / OPTIMIZER_STATE_NAME).is_file():
        return
    legacy = [name for name in LEGACY_STATE_NAMES if (checkpoint / name).is_file()]
    if not legacy:
        raise CheckpointError(f"cannot resume from {checkpoint}: it has no {OPTIMIZER_STATE_NAME}")
    best = checkpoint.parent.parent / "best"
    restart = (f"start a new run from the run's best weights with train.init_from={best} and a new "
               "train.output_dir (the optimizer and random state start afresh)") if (best / WEIGHTS_NAME).is_file() \
        else "the run has no best/ model folder to start a new run from"
    raise CheckpointError(f"cannot resume from {checkpoint}: it holds {' and '.join(legacy)}, the pickle files of "
                          f"textvae versions before safetensors-only checkpoints, which this version never unpickles; "
                          f"{restart}")


# the optimizer settings (train.<name>) that a saved optimizer state carries back: a resume may not change them
OPTIMIZER_SETTINGS = ("momentum", "nesterov", "weight_decay")


def optimizer_settings(optimizer) -> "list[dict]":
    """Each param group's ``OPTIMIZER_SETTINGS``, as the optimizer holds them."""
    return [{key: group[key] for key in OPTIMIZER_SETTINGS if key in group} for group in optimizer.param_groups]


def load_training_state(checkpoint: Path, weights: "dict[str, torch.Tensor]", model: torch.nn.Module, optimizer,
                        accelerator) -> None:
    """Put back what ``save_training_state`` wrote (after ``check_checkpoint_format``): ``weights``, as
    ``check_resume_weights`` read and checked them, the optimizer and scaler state, the accumulation counter and this
    process's generators."""
    model.load_state_dict(weights, strict=False)  # tied weights are stored once; weight_problems checked the rest
    path = checkpoint / OPTIMIZER_STATE_NAME
    state = load_state_file(path)
    wanted = optimizer_settings(optimizer)
    try:
        optimizer.load_state_dict(state["optimizer"])
        saved = optimizer_settings(optimizer)
        if saved != wanted:  # load_state_dict has put the checkpoint's settings back: they would silently win
            raise CheckpointError(
                f"cannot resume from {checkpoint}: its optimizer ran with {saved[0]}, this run's config asks for "
                f"{wanted[0]}; a resume keeps the optimizer's settings (train.momentum, nesterov, weight_decay): "
                f"resume with the run's, or start a new run from its weights with train.init_from")
        if accelerator.scaler is not None and state["scaler"] is not None:
            accelerator.scaler.load_state_dict(state["scaler"])
        accelerator.step = int(state["accumulation_step"])
    except LAYOUT_ERRORS as exc:
        raise CheckpointError(f"cannot resume from {checkpoint}: {path.name} does not fit this run's optimizer "
                              f"({type(exc).__name__}: {exc})") from None
    own = checkpoint / random_states_name(accelerator.process_index)
    if not own.is_file():
        print(f"warning: {checkpoint} has no random state for process {accelerator.process_index} (it was written by "
              "fewer processes); this process continues from its seeded generators", file=sys.stderr)
        return
    states = load_state_file(own)
    try:
        restore_random_states(states)
    except LAYOUT_ERRORS as exc:
        raise CheckpointError(f"cannot resume from {checkpoint}: {own.name} does not hold the generators' states "
                              f"({type(exc).__name__}: {exc})") from None


def check_resume_weights(model: torch.nn.Module, checkpoint: "str | Path") -> "dict[str, torch.Tensor]":
    """Refuse a checkpoint whose ``model.safetensors`` does not fit ``model`` (each tensor named with both shapes)
    or holds a NaN or an infinity, before loading it would fail with a torch trace or load it; returns the weights."""
    path = Path(checkpoint) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"cannot resume from {checkpoint}: it has no {WEIGHTS_NAME}")
    try:
        stored = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot resume from {checkpoint}: {path} cannot be read as safetensors: {exc}") from None
    problems = weight_problems(model, stored)
    if problems:
        raise CheckpointError(f"cannot resume from {checkpoint}: its weights do not fit the model the config builds: {problems}")
    bad = nonfinite_tensors(stored)
    if bad:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: its weights are not finite ({', '.join(bad[:4])}"
            f"{f' and {len(bad) - 4} more' if len(bad) > 4 else ''} hold NaN or inf); delete that folder to resume "
            "from the checkpoint before it"
        )
    return stored


# ---------------------------------------------------------------- the run folder: one run at a time

LOCK_NAME = "run.lock"
_HELD: set = set()  # lock files this process holds: a lock naming our own pid is ours only if it is in here


def _read_lock(path: Path) -> Optional[dict]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _holder_is_running(holder: dict) -> bool:
    """Whether the process named in a lock still runs. A lock from another host cannot be checked: it counts as
    running. A process with that pid that started after the lock was written is a reused pid, not the holder."""
    import psutil  # an accelerate dependency

    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False  # not one of ours (checked before): an earlier process that had our pid, e.g. in a container
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = holder.get("started_unix")
        # psutil reads start times to about a second: allow a few
        return not (isinstance(started, (int, float)) and process.create_time() > started + 5)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # cannot inspect it (permissions): assume it runs
        return True


def describe_holder(holder: dict) -> str:
    return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


class RunLock:
    """A lock file in a run folder (``run.lock``: pid, host, start time and command, as JSON), created atomically
    with ``O_CREAT | O_EXCL``, so two runs never write into one folder. A lock whose process is gone (on this host)
    is stale and taken over."""

    def __init__(self, folder: "str | Path") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.record: Optional[dict] = None

    def acquire(self) -> Optional[str]:
        """Take the lock, or raise ``TrainingError`` naming the run that holds it; returns a note when a stale lock
        was taken over."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        record = {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)), "started_unix": now,
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) if sys.argv and sys.argv[0] else "",
        }
        note = None
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(self.path)
                if holder is None:  # being written this instant, or cut short by a kill: wait, then call it stale
                    if self._age() < 2.0:
                        time.sleep(0.1)
                        continue
                    holder = {}
                elif str(self.path.resolve()) in _HELD or _holder_is_running(holder):
                    raise TrainingError(
                        f"{self.folder} is in use by another run: {describe_holder(holder)}; lock file {self.path}. "
                        "Wait for that run to finish or use another output folder; if no run uses it any more "
                        "(e.g. it ran on another host), delete the lock file"
                    )
                if self._take_over(holder):
                    note = (f"note: {self.folder} was locked by a run that no longer runs "
                            f"({describe_holder(holder) if holder else 'an unreadable lock file'}); taking it over")
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.record = record
            _HELD.add(str(self.path.resolve()))
            return note
        raise TrainingError(f"could not take the lock {self.path}: other processes keep replacing it")

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _take_over(self, stale: dict) -> bool:
        """Move the stale lock aside; False if another process got there first (then the loop looks again)."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return False
        moved = _read_lock(aside) or {}
        if moved != stale:  # a run took the stale lock over between our read and the move: give its lock back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        if self.record is None:
            return
        _HELD.discard(str(self.path.resolve()))
        current = _read_lock(self.path)
        if current is not None and current.get("pid") == self.record["pid"] and \
                current.get("started_unix") == self.record["started_unix"]:
            self.path.unlink(missing_ok=True)
        self.record = None


def remove_leftovers(folder: "str | Path") -> list[Path]:
    """Delete what interrupted writes leave in a run folder: ``.best.tmp-*``/``.final.tmp-*`` (``atomic_folder``),
    ``.X.old-*``, checkpoint staging folders ``checkpoints/.step_*``, ``step_*`` folders without their trainer state,
    and a half-written log rewrite. Call it only while holding the folder's lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [*folder.glob(".*.tmp-*"), *folder.glob(".*.old-*"), *folder.glob(f"{LOG_NAME}.tmp-*")]
    checkpoints = folder / "checkpoints"
    if checkpoints.is_dir():
        found += checkpoints.glob(f".{CHECKPOINT_PREFIX}*")
        found += [p for p in checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and not (p / TRAINER_STATE_NAME).is_file()]
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return sorted(found)


# ---------------------------------------------------------------- the log and the settings a resume sees

LOG_NAME = "log.jsonl"


def json_line(record: dict) -> str:
    """One log line: NaN and infinities become ``null``, so every line is valid JSON."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def truncate_log(path: "str | Path", step: int) -> int:
    """Drop the lines of a JSONL log with a step after ``step`` (what a resumed run will log again) and lines cut
    short by a kill, in one atomic rewrite; the number of lines dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step:
            dropped += 1
            continue
        kept.append(json_line(record) if isinstance(record, dict) else line + "\n")  # old logs: NaN -> null
    if dropped:
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return dropped


# model and data settings fix parameter shapes, token ids and the examples' order; of the train settings, the
# optimizer and its settings that its saved state carries back (loading it restores them). Everything else may
# change on resume (steps, intervals, learning rate).
RESUME_MAY_CHANGE = ("train.", "data.eval_batch_size")
RESUME_MUST_KEEP = ("train.optimizer", *(f"train.{name}" for name in OPTIMIZER_SETTINGS))


def flatten_config(data: dict, prefix: str = "") -> dict:
    """``{"model": {"latent": {"size": 32}}}`` -> ``{"model.latent.size": 32}``."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare_run_config(saved: dict, now: dict) -> "tuple[list[tuple[str, Any, Any]], dict]":
    """Keys whose value differs between a run folder's config and the config it is resumed with: (the ones a resume
    may not change, as (key, saved, now); the others, as {key: [saved, now]}). Keys only one side has (written by
    another version of the library) are not compared."""
    saved, now = flatten_config(saved), flatten_config(now)
    refused, allowed = [], {}
    for key in saved.keys() & now.keys():
        old, new = saved[key], now[key]
        if old == new:
            continue
        if key.startswith(RESUME_MAY_CHANGE) and key not in RESUME_MUST_KEEP:
            allowed[key] = [old, new]
        else:
            refused.append((key, old, new))
    return sorted(refused), dict(sorted(allowed.items()))
