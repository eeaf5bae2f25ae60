"""A run's folder as the trainer holds it: one run at a time (``run.lock``), leftovers of interrupted writes
removed, a resume checked against the run's settings, the log trimmed back to the checkpoint a resume starts from,
and ``config.yaml`` kept up to date. The file-level pieces (lock, leftovers, log trimming) are ``checkpoint``'s."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from ..config import Config, save_config
from ..errors import CheckpointError, TrainingError
from .checkpoint import RunLock, compare_run_config, remove_leftovers, truncate_log
from .logs import RunLogger


def agree(accelerator: Accelerator, message: Optional[str], error: type) -> None:
    """Raise ``error(message)`` on every process when the main process found a problem (``message``), so no
    process waits at a barrier for one that stopped."""
    if accelerator.num_processes > 1:
        message = broadcast_object_list([message if accelerator.is_main_process else None])[0]
    if message:
        raise error(message)


@contextmanager
def holding_run_folder(out_dir: Path, accelerator: Accelerator) -> Iterator[None]:
    """Hold ``out_dir`` for the block: the main process takes its lock (every process stops if it cannot), removes
    leftovers of interrupted writes, and releases the lock when the block ends, also on an error."""
    main = accelerator.is_main_process
    lock = RunLock(out_dir) if main else None
    error = None
    if lock is not None:
        try:
            note = lock.acquire()
            removed = remove_leftovers(out_dir)
        except (TrainingError, OSError) as exc:  # OSError: a folder this process may not write
            error = str(exc) if isinstance(exc, TrainingError) else f"cannot take the run folder {out_dir}: {exc}"
        else:
            if note:
                print(note)
            if removed:
                names = ", ".join(str(p.relative_to(out_dir)) for p in removed[:4])
                print(f"removed {len(removed)} leftovers of an interrupted run in {out_dir}: {names}"
                      + (f" and {len(removed) - 4} more" if len(removed) > 4 else ""))
    try:
        agree(accelerator, error, TrainingError)
        yield
    finally:
        if lock is not None:
            lock.release()


def check_resume_config(out_dir: Path, config: Config) -> dict:
    """Compare the run folder's ``config.yaml`` with the config it is resumed with: a ``CheckpointError`` naming
    every model or data key (or the optimizer, or the seed) that differs; the keys that may change, as
    ``{key: [before, now]}``."""
    path = out_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        saved = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"cannot resume {out_dir}: its config.yaml is not valid YAML: {exc}") from None
    if not isinstance(saved, dict):
        return {}
    refused, allowed = compare_run_config(saved, config.to_dict())
    if refused:
        show = lambda value: json.dumps(value)  # noqa: E731  (16, "lstm", null, [2, 3])
        keys = "; ".join(f"{key} is {show(before)} in the run, {show(now)} now" for key, before, now in refused)
        raise CheckpointError(
            f"cannot resume {out_dir}: {keys}. A resume continues the run's model, data, seed and optimizer as they "
            f"were; to train with new ones from its weights, start a new run with train.init_from={out_dir / 'best'}"
        )
    return allowed


def start_run_log(logger: RunLogger, config: Config, out_dir: Path, checkpoint: Optional[Path], step: int,
                  changed: dict) -> None:
    """On the main process, before the first step: a resumed run's log loses the lines after its checkpoint (those
    steps are trained again) and gets a ``resume`` event; a fresh run in an old folder starts a fresh log. Either
    way ``config.yaml`` describes the run as it goes on."""
    if checkpoint is not None:
        dropped = truncate_log(logger.path, step)
        logger.event(step, "resume", checkpoint=str(checkpoint), dropped_log_lines=dropped, changed=changed)
        save_config_atomically(config, out_dir / "config.yaml")
        print(f"resumed from {checkpoint} at step {step}"
              + (f" ({dropped} log lines after it removed)" if dropped else ""))
    else:
        logger.path.unlink(missing_ok=True)
        save_config_atomically(config, out_dir / "config.yaml")


def save_config_atomically(config: Config, path: Path) -> None:
    """``save_config`` through a temporary file and a rename: a reader never sees half a config."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_config(config, tmp)
    os.replace(tmp, path)
