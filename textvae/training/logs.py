"""What a run writes as it goes: ``log.jsonl`` lines (and TensorBoard scalars), and the running sums of the logged
training terms between two lines."""

from __future__ import annotations

import math
from pathlib import Path

from .checkpoint import LOG_NAME, json_line


class RunLogger:
    """JSONL log on the main process (and TensorBoard when it is installed); silent elsewhere. Every line is valid
    JSON: a NaN or infinite value is written as ``null``."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = folder / LOG_NAME
        self.tensorboard = None
        if enabled:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(folder / "tensorboard"))
            except Exception:  # tensorboard is optional
                self.tensorboard = None

    def log(self, step: int, split: str, values: dict) -> None:
        if not self.enabled:
            return
        self.write({"step": step, "split": split, **values})
        if self.tensorboard is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tensorboard.add_scalar(f"{split}/{key}", value, step)

    def event(self, step: int, event: str, **values) -> None:
        """A line that is not a measurement (a resume, a stop), e.g. ``{"event": "resume", "step": 300, ...}``."""
        if self.enabled:
            self.write({"event": event, "step": step, **values})

    def write(self, record: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json_line(record))

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


class LogWindow:
    """Running sums of the logged terms between two log lines, kept as tensors. The micro-batches of the current
    optimizer step wait in ``pending`` until ``commit`` says whether the step was applied: a skipped step's terms
    (NaN, inf) never reach the logged means, only its count does."""

    def __init__(self) -> None:
        self.sums: dict = {}
        self.batches = 0
        self.skipped = 0
        self.pending: dict = {}
        self.pending_batches = 0
        self.figures: dict = {}  # name -> [numerator, denominator] of a model's own figures (``figure_sums``)
        self.pending_figures: dict = {}

    def add(self, output) -> None:
        terms = {"loss": output.loss, "rec": output.rec.mean(), "kl": output.kl.mean(), "tokens": output.num_tokens}
        for key, value in terms.items():
            value = value.detach()
            self.pending[key] = self.pending[key] + value if key in self.pending else value
        for name, pair in output.figure_sums().items():
            self.pending_figures[name] = add_pairs(self.pending_figures.get(name), pair)
        self.pending_batches += 1

    def commit(self, applied: bool) -> None:
        """Count the pending micro-batches in (``applied``) or only their tokens and one skipped step."""
        pending = self.pending if applied else {"tokens": self.pending["tokens"]} if "tokens" in self.pending else {}
        for key, value in pending.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        for name, pair in (self.pending_figures if applied else {}).items():
            self.figures[name] = add_pairs(self.figures.get(name), pair)
        self.batches += self.pending_batches if applied else 0
        self.skipped += 0 if applied else 1
        self.pending, self.pending_batches, self.pending_figures = {}, 0, {}

    def means(self) -> dict:
        """Means of the applied steps' terms (none when every step was skipped), the model's own figures (sum of
        numerators over sum of denominators, where the denominators are not 0), tokens and skipped steps."""
        values = {k: float(v) / self.batches for k, v in self.sums.items() if k != "tokens"} if self.batches else {}
        for name, (num, den) in self.figures.items():
            if float(den) > 0:
                values[name] = float(num) / float(den)
        values["tokens"] = int(self.sums.get("tokens", 0))
        values["skipped_steps"] = self.skipped
        return values


def add_pairs(total, pair) -> list:
    """[numerator, denominator] sums (``total`` None: the first pair), kept as detached tensors."""
    num, den = (p.detach() if hasattr(p, "detach") else p for p in pair)
    return [num, den] if total is None else [total[0] + num, total[1] + den]
