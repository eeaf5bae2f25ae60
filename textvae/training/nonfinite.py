"""NaN and inf during training: which optimizer steps to skip (the same on every process), weights checked before
anything is saved, and the streak of skipped steps that stops a run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from accelerate import Accelerator

from ..config import TrainConfig
from ..errors import TrainingError
from .checkpoint import latest_checkpoint, nonfinite_tensors


def nonfinite_step(accelerator: Accelerator, loss: torch.Tensor, norm: Optional[torch.Tensor]) -> tuple[bool, bool]:
    """(loss not finite, gradient norm not finite) for this optimizer step, on any process: one device sync (and,
    with several processes, one all-reduce of two numbers), so that every process skips the same steps."""
    flags = [~torch.isfinite(loss)]
    if norm is not None:
        norm = norm if isinstance(norm, torch.Tensor) else torch.tensor(float(norm))
        flags.append(~torch.isfinite(norm.to(loss.device)))
    bad = torch.stack(flags).float()
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, "sum")
    values = (bad > 0).tolist()
    return values[0], bool(values[1]) if len(values) > 1 else False


class NonfiniteGuard:
    """Keeps a run from saving or going on with NaN and inf: ``check_weights`` before every validation, checkpoint
    and model folder; ``skipped`` for each step skipped for a non-finite loss or gradient norm, ``applied`` for
    each other step."""

    def __init__(
        self, model: torch.nn.Module, accelerator: Accelerator, config: TrainConfig, checkpoints: Path,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        self.model, self.accelerator, self.config, self.checkpoints = model, accelerator, config, checkpoints
        self.optimizer = optimizer
        self.in_a_row = 0  # skipped steps since the last applied one

    def learning_rate_text(self) -> str:
        """``train.learning_rate`` as the advice to lower it quotes it: with the rate of the current step beside it
        when a warm-up, schedule or plateau decay has moved that away from the configured one."""
        configured, current = self.config.learning_rate, float(self.optimizer.param_groups[0]["lr"])
        if abs(current - configured) <= 1e-9 * abs(configured):
            return f"now {configured:g}"
        return f"set to {configured:g}; the rate at this step is {current:g}"

    def check_weights(self, step: int, what: str) -> None:
        """A ``TrainingError`` (on every process) when a weight is NaN or infinite: nothing non-finite is saved."""
        accelerator, tc = self.accelerator, self.config
        bad = nonfinite_tensors(self.model.state_dict())
        count = torch.tensor([float(len(bad))], device=accelerator.device)
        if accelerator.num_processes > 1:
            count = accelerator.reduce(count, "sum")
        if float(count) == 0:
            return
        newest = latest_checkpoint(self.checkpoints)
        raise TrainingError(
            f"the weights are not finite after step {step} ({', '.join(bad[:3]) or 'on another process'}"
            f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}): stopping {what}. An optimizer step with finite "
            f"gradients made them so: lower train.learning_rate ({self.learning_rate_text()})"
            + (" or set train.grad_clip" if tc.grad_clip <= 0 else "")
            + (f"; {newest} holds the newest (finite) weights" if newest is not None else "; nothing was saved")
        )

    def applied(self) -> None:
        self.in_a_row = 0

    def skipped(self, step: int, output, loss_bad: bool, norm, write: Callable[[str], None]) -> None:
        """Bookkeeping of a step with a non-finite loss (or, without GradScaler, gradient norm): stop when the
        weights themselves are broken, or after ``train.max_nonfinite_steps`` such steps in a row; else ``write``
        a line about it."""
        tc = self.config
        self.in_a_row += 1
        in_a_row = self.in_a_row
        terms = ", ".join(f"{k}={v:.4g}" for k, v in output.log_values().items())
        what = "loss" if loss_bad else "gradient norm"
        norm_text = f"{float(norm):.4g}" if norm is not None else "not measured"
        if in_a_row == 1:  # the weights only change in applied steps: one look per streak suffices
            self.check_weights(step, f"at a non-finite {what} ({terms})")
        limit = max(1, tc.max_nonfinite_steps)
        if in_a_row >= limit:
            raise TrainingError(
                f"{what} is not finite at step {step} ({in_a_row} in a row, each skipped, the limit of "
                f"train.max_nonfinite_steps={tc.max_nonfinite_steps}; {terms}; gradient norm {norm_text}). "
                f"Lower train.learning_rate ({self.learning_rate_text()})"
                + (", set train.grad_clip" if tc.grad_clip <= 0 else ", lower train.grad_clip")
                + ", or check the data for empty or extreme examples"
            )
        write(f"step {step}: {what} not finite ({terms}; gradient norm {norm_text}); step skipped "
              f"({in_a_row} in a row, {limit} stop the run)")
