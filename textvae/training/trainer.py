"""The training loop around ``accelerate.Accelerator``: one CPU, one GPU or many, mixed precision, gradient
accumulation, validation, JSONL/TensorBoard logs, atomic checkpoints and exact resume.

The loop knows nothing model-specific: it calls ``model(batch, step=step)`` and reads ``.loss`` (and the named
terms, for logs). Learning rate and KL weights are pure functions of the optimizer step, so a resumed run sees
exactly the schedule an uninterrupted one does.

It never saves garbage: a step whose loss or gradient norm is not finite is skipped (too many in a row stop the
run), and weights are checked before every validation, checkpoint and model folder. One run holds a folder at a
time (``run.lock``); a resume refuses changed model or data settings and trims the log back to its checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from tqdm.auto import tqdm

from ..config import Config, ConfigError, TrainConfig, save_config
from ..errors import CheckpointError, DataError, TrainingError
from ..data.pipeline import PreparedData, make_loader, prepare_data
from ..data.tokenization import load_tokenizer
from ..evaluation.latent_stats import active_units_from_means
from ..models import build_model
from ..models.base import BaseVAE
from .checkpoint import (
    LOG_NAME,
    TRAINER_STATE_NAME,
    RunLock,
    check_resume_weights,
    checkpoint_name,
    compare_run_config,
    json_line,
    latest_checkpoint,
    load_weights,
    nonfinite_tensors,
    prune_checkpoints,
    read_trainer_state,
    remove_leftovers,
    truncate_log,
    write_json,
)
from .host_memory import keep_freed_host_memory


@dataclass
class TrainerState:
    """Where a run is: saved with every checkpoint, so resume continues at the same batch."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this process's shard consumed in the current epoch
    best_elbo: float = -math.inf
    best_step: int = -1
    skipped_steps: int = 0  # steps not applied because their loss or gradients were not finite


@dataclass
class TrainResult:
    """What a finished run leaves: its folders and the last validation figures."""

    output_dir: Path
    best_dir: Optional[Path]
    final_dir: Path
    state: TrainerState
    valid: dict = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    start_step: int = 0  # where this run began (> 0 after a resume): it trained state.step - start_step steps
    skipped_steps: int = 0  # of those, the ones skipped (non-finite loss or gradients)


# ---------------------------------------------------------------- schedules and optimizers


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate at ``step``: linear warm-up, then constant, linear decay or cosine decay to 0 at max_steps."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.learning_rate
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, max(0.0, progress))
    if config.lr_schedule == "linear":
        return config.learning_rate * (1.0 - progress)
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum 0.9) over the model's parameters; Adam(W) uses the fused kernel, several times
    faster than the per-tensor one on a CPU for a 10k-word model's embeddings and output layer."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        try:
            return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
            return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay)


def clip_grad_norm_(parameters, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (L2), except that gradients already within ``max_norm`` are left alone:
    torch multiplies them by 1.0, a pass over every gradient (3 x 10 MB a step for a 10k-word model; 3.3 against
    2.0 ms on the CPU here). It reads the norm on the host, so the trainer uses it where that costs nothing: CPUs."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if total > max_norm:
        torch._foreach_mul_(grads, max_norm / (float(total) + 1e-6))
    return total


def clip_gradients(accelerator: Accelerator, model: torch.nn.Module, max_norm: float) -> Optional[torch.Tensor]:
    """Clip the gradients to ``max_norm`` (L2; ``inf``: measure only) and return their norm before clipping:
    accelerate's clipping (it unscales fp16 gradients and knows FSDP and DeepSpeed); on CPU processes, the cheaper
    ``clip_grad_norm_`` above."""
    if (accelerator.device.type == "cpu" and accelerator.scaler is None
            and accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU)):
        return clip_grad_norm_(model.parameters(), max_norm)
    if math.isinf(max_norm) and accelerator.scaler is None and \
            accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_GPU):
        grads = [p.grad for p in model.parameters() if p.grad is not None]  # no multiply by 1.0 as torch's clip does
        return torch.nn.utils.get_total_norm(grads) if grads else None
    return accelerator.clip_grad_norm_(model.parameters(), max_norm)


# ---------------------------------------------------------------- validation


@torch.no_grad()
def evaluate_loader(model: BaseVAE, loader, au_threshold: float = 0.01) -> dict:
    """Validation figures over a loader: per-sentence ELBO, reconstruction, KL, a perplexity bound from the ELBO,
    and active units (dimensions whose posterior mean varies across sentences by at least ``au_threshold``)."""
    was_training = model.training
    model.eval()
    device = model.device
    rec = kl = tokens = sentences = 0.0
    means = []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model.evaluate(batch)
        rec += float(out.rec.sum())
        kl += float(out.kl.sum())
        tokens += float(out.num_tokens)
        sentences += out.rec.numel()
        if out.z_mean is None:  # a model that does not report its posterior means: one more encoder pass
            out.z_mean = model.latent.mode(model.posterior(batch["input_ids"], batch["lengths"]))
        means.append(out.z_mean.float().cpu())
    model.train(was_training)
    means = torch.cat(means)
    active = active_units_from_means(means, au_threshold) if len(means) > 1 else 0
    return {
        "elbo": -(rec + kl) / sentences,
        "rec": rec / sentences,
        "kl": kl / sentences,
        "ppl_bound": math.exp(min(50.0, (rec + kl) / tokens)),
        "active_units": active,
        "sentences": int(sentences),
    }


def isolated_evaluation(model: BaseVAE, loader, seed: int) -> dict:
    """``evaluate_loader`` with its own fixed random stream: the training RNG is left exactly as it was, so
    validating (which samples z) never changes what training does next, and a resumed run matches a straight one."""
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return evaluate_loader(model, loader)


# ---------------------------------------------------------------- logging


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


# ---------------------------------------------------------------- the loop


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)


def resolved_intervals(config: TrainConfig) -> tuple[int, int]:
    """(eval_every, checkpoint_every): the configured values, or about 10 per run where they are None."""
    default = max(1, config.max_steps // 10)
    return config.eval_every or default, config.checkpoint_every or default


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

    def add(self, output) -> None:
        terms = {"loss": output.loss, "rec": output.rec.mean(), "kl": output.kl.mean(), "tokens": output.num_tokens}
        for key, value in terms.items():
            value = value.detach()
            self.pending[key] = self.pending[key] + value if key in self.pending else value
        self.pending_batches += 1

    def commit(self, applied: bool) -> None:
        """Count the pending micro-batches in (``applied``) or only their tokens and one skipped step."""
        pending = self.pending if applied else {"tokens": self.pending["tokens"]} if "tokens" in self.pending else {}
        for key, value in pending.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.batches += self.pending_batches if applied else 0
        self.skipped += 0 if applied else 1
        self.pending, self.pending_batches = {}, 0

    def means(self) -> dict:
        """Means of the applied steps' terms (none when every step was skipped), tokens and skipped steps."""
        values = {k: float(v) / self.batches for k, v in self.sums.items() if k != "tokens"} if self.batches else {}
        values["tokens"] = int(self.sums.get("tokens", 0))
        values["skipped_steps"] = self.skipped
        return values


def train(
    config: Config,
    resume: bool = False,
    data: Optional[PreparedData] = None,
    accelerator: Optional[Accelerator] = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` for ``config.train.max_steps`` optimizer steps.

    Writes into ``config.train.output_dir``: ``config.yaml``, ``log.jsonl``, ``checkpoints/step_*/`` (resume state),
    ``best/`` (the model folder with the best validation ELBO) and ``final/``, holding ``run.lock`` meanwhile (a
    second run on the folder gets a ``TrainingError``). With ``resume=True`` it continues from the newest complete
    checkpoint there, at the same step, batch, optimizer state and random state; the model and data settings must
    be the run's (``CheckpointError`` otherwise). Steps with a non-finite loss or gradient norm are skipped, and
    non-finite weights are never saved (``TrainingError``).

    On a CPU it runs ``train.cpu_threads`` threads per process (0: the machine's cores shared among its processes;
    ``accelerate launch`` alone would leave a single CPU process one thread) and restores the count when done.
    """
    tc = config.train
    if tc.cpu_threads < 0:
        raise ConfigError(f"train.cpu_threads must be 0 (the machine's cores) or a thread count, got {tc.cpu_threads}")
    if accelerator is None:
        accelerator = Accelerator(
            mixed_precision=None if tc.mixed_precision == "no" else tc.mixed_precision,
            gradient_accumulation_steps=tc.grad_accum_steps,
            # with no GPU, cpu=True is what lets accelerate see torchrun's processes (gloo) as one data-parallel job
            cpu=not torch.cuda.is_available(),
        )
    threads = torch.get_num_threads()
    if accelerator.device.type == "cpu":
        if tc.keep_host_memory:
            keep_freed_host_memory()
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
        torch.set_num_threads(tc.cpu_threads or cores_per_process(local_processes))
    try:
        return _train(config, resume, data, accelerator, progress)
    finally:
        torch.set_num_threads(threads)


def cores_per_process(local_processes: int) -> int:
    """Physical cores this process may use (its CPU affinity, at most the machine's cores) shared among
    ``local_processes``; at least 1."""
    import psutil  # an accelerate dependency

    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = min(available, psutil.cpu_count(logical=False) or available)
    return max(1, cores // max(1, local_processes))


def _train(config: Config, resume: bool, data: Optional[PreparedData], accelerator: Accelerator,
           progress: bool) -> TrainResult:
    """The body of ``train``, with the accelerator made and the process set up, holding the run folder's lock: the
    main process takes it (every process stops if it cannot), removes leftovers of interrupted writes, and releases
    it when the run ends, also on an error."""
    out_dir = Path(config.train.output_dir)
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
        return _run(config, resume, data, accelerator, progress)
    finally:
        if lock is not None:
            lock.release()


def agree(accelerator: Accelerator, message: Optional[str], error: type) -> None:
    """Raise ``error(message)`` on every process when the main process found a problem (``message``), so no
    process waits at a barrier for one that stopped."""
    if accelerator.num_processes > 1:
        message = broadcast_object_list([message if accelerator.is_main_process else None])[0]
    if message:
        raise error(message)


def check_batches(data: PreparedData, config: Config, train_loader, valid_loader) -> None:
    """A ``DataError`` for a split without a single batch: training would loop over an empty loader forever, and
    validation (which picks ``best/`` and reports the ELBO) would divide by zero."""
    for split, name, loader in (("train", "training", train_loader), ("valid", "validation", valid_loader)):
        if len(loader) > 0:
            continue
        report = getattr(data, "reports", {}).get(split)
        kept = str(report) if report is not None else f"{len(data.datasets[split])} examples"
        sampler = loader.batch_sampler
        hint = ("; raise model.max_length or set model.overlong=truncate" if report is not None and report.dropped
                else "; check the data folder's files")
        raise DataError(
            f"the {name} split has no batches: {kept} after length handling, batch size {sampler.batch_size}, "
            f"drop_last {getattr(sampler, 'drop_last', False)}{hint}"
        )


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


def load_error(exc: BaseException) -> str:
    """The gist of a failed ``load_state``: torch's size mismatches as one line per parameter with both shapes."""
    text = str(exc)
    sizes = re.findall(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
                       r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)", text)
    if sizes:
        return "its weights do not fit the model the config builds: " + "; ".join(
            f"{name}: checkpoint has ({a}), config builds ({b})" for name, a, b in sizes[:6])
    return " ".join(text.split())[:500]


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


def _run(config: Config, resume: bool, data: Optional[PreparedData], accelerator: Accelerator,
         progress: bool) -> TrainResult:
    """Prepare data, model and state (fresh or resumed), then the loop; the run folder's lock is held."""
    tc = config.train
    set_seed(config.seed)
    out_dir = Path(tc.output_dir)
    ckpt_dir = out_dir / "checkpoints"
    main = accelerator.is_main_process
    eval_every, checkpoint_every = resolved_intervals(tc)

    checkpoint = latest_checkpoint(ckpt_dir) if resume else None
    changed = check_resume_config(out_dir, config) if checkpoint is not None else {}
    if data is None:
        # weights from another model folder come with its vocabulary: token ids must mean the same words
        tokenizer = load_tokenizer(tc.init_from) if tc.init_from else None
        data = prepare_data(config.data, config.model.max_length, tokenizer=tokenizer, overlong=config.model.overlong)
    model = build_model(data.model_config(config), data.tokenizer)
    if tc.init_from and checkpoint is None:  # a resumed run has its own weights
        load_weights(model, tc.init_from, tc.init_modules)
    optimizer = build_optimizer(model, tc)
    sampler_seed = config.seed
    train_loader = make_loader(
        data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=True, seed=sampler_seed,
        bucket=config.data.bucket,
    )
    valid_loader = make_loader(
        data.datasets["valid"], data.tokenizer, config.data.eval_batch_size, shuffle=False, bucket=config.data.bucket
    )
    check_batches(data, config, train_loader, valid_loader)
    batch_sampler = train_loader.batch_sampler  # ours, also when accelerate wraps it in a shard sampler
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    raw_model: BaseVAE = accelerator.unwrap_model(model)

    state = TrainerState()
    if resume and checkpoint is None and main:
        print(f"--resume: no checkpoint in {ckpt_dir}; starting from step 0")
    if checkpoint is not None:
        check_resume_weights(raw_model, checkpoint)
        try:
            accelerator.load_state(str(checkpoint))
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise CheckpointError(f"cannot resume from {checkpoint}: {load_error(exc)}") from None
        saved_state = read_trainer_state(checkpoint)
        state = TrainerState(**{k: v for k, v in saved_state.items() if k in TrainerState.__dataclass_fields__})
    start_step, start_skipped = state.step, state.skipped_steps
    logger = RunLogger(out_dir, enabled=main)
    if main:
        if checkpoint is not None:
            dropped = truncate_log(logger.path, state.step)  # the steps after the checkpoint are trained again
            logger.event(state.step, "resume", checkpoint=str(checkpoint), dropped_log_lines=dropped, changed=changed)
            save_config_atomically(config, out_dir / "config.yaml")  # the folder describes the run as it goes on
            print(f"resumed from {checkpoint} at step {state.step}"
                  + (f" ({dropped} log lines after it removed)" if dropped else ""))
        else:
            logger.path.unlink(missing_ok=True)  # a fresh run in an old folder starts a fresh log
            save_config_atomically(config, out_dir / "config.yaml")
        defaults = [name for name in ("eval_every", "checkpoint_every") if getattr(tc, name) is None]
        print(f"validation every {eval_every} steps, a checkpoint every {checkpoint_every} steps"
              + (f" ({' and '.join('train.' + d for d in defaults)}: about 10 per run)" if defaults else ""))
    accelerator.wait_for_everyone()

    bar = tqdm(total=tc.max_steps, initial=state.step, disable=not (progress and main), desc="train", dynamic_ncols=True)
    valid: dict = {}
    start, tokens_seen = time.perf_counter(), 0
    window = LogWindow()
    fp16_scaler = accelerator.scaler is not None  # GradScaler skips steps whose gradients overflow, and backs off
    clip = tc.grad_clip if tc.grad_clip > 0 else math.inf  # inf: measure the norm (for the check), clip nothing
    in_a_row = 0

    def check_weights(what: str) -> None:
        """A ``TrainingError`` (on every process) when a weight is NaN or infinite: nothing non-finite is saved."""
        bad = nonfinite_tensors(raw_model.state_dict())
        count = torch.tensor([float(len(bad))], device=accelerator.device)
        if accelerator.num_processes > 1:
            count = accelerator.reduce(count, "sum")
        if float(count) == 0:
            return
        newest = latest_checkpoint(ckpt_dir)
        raise TrainingError(
            f"the weights are not finite after step {state.step} ({', '.join(bad[:3]) or 'on another process'}"
            f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}): stopping {what}. An optimizer step with finite "
            f"gradients made them so: lower train.learning_rate (now {tc.learning_rate:g})"
            + (" or set train.grad_clip" if tc.grad_clip <= 0 else "")
            + (f"; {newest} holds the newest (finite) weights" if newest is not None else "; nothing was saved")
        )

    def run_validation() -> None:
        nonlocal valid
        check_weights(f"before the validation at step {state.step}")
        error = None
        if main:
            valid = isolated_evaluation(raw_model, valid_loader, config.seed)
            logger.log(state.step, "valid", valid)
            if not math.isfinite(valid["elbo"]):
                error = (f"validation at step {state.step} gave a non-finite ELBO (rec {valid['rec']}, KL {valid['kl']}) "
                         f"with finite weights: the model overflows; lower train.learning_rate (now "
                         f"{tc.learning_rate:g}) or train.grad_clip; nothing was saved for this step")
            elif valid["elbo"] > state.best_elbo:
                state.best_elbo, state.best_step = valid["elbo"], state.step
                raw_model.save_pretrained(out_dir / "best")
            bar.write(
                f"step {state.step}: valid ELBO {valid['elbo']:.3f} rec {valid['rec']:.3f} KL {valid['kl']:.3f} "
                f"AU {valid['active_units']}"
            )
        agree(accelerator, error, TrainingError)  # also the barrier after the main process's work

    def save_checkpoint() -> None:
        check_weights(f"before checkpoint {checkpoint_name(state.step)} is written")
        target = ckpt_dir / checkpoint_name(state.step)
        staging = ckpt_dir / f".{target.name}"
        if main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))  # every process writes its own random state
        accelerator.wait_for_everyone()
        if main:
            write_json(staging / TRAINER_STATE_NAME, asdict(state))  # written last: marks the checkpoint complete
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            prune_checkpoints(ckpt_dir, tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    def nonfinite(output, loss_bad: bool, norm) -> None:
        """Bookkeeping of a step with a non-finite loss (or, without GradScaler, gradient norm): stop when the
        weights themselves are broken, or after ``train.max_nonfinite_steps`` such steps in a row."""
        terms = ", ".join(f"{k}={v:.4g}" for k, v in output.log_values().items())
        what = "loss" if loss_bad else "gradient norm"
        norm_text = f"{float(norm):.4g}" if norm is not None else "not measured"
        if in_a_row == 1:  # the weights only change in applied steps: one look per streak suffices
            check_weights(f"at a non-finite {what} ({terms})")
        limit = max(1, tc.max_nonfinite_steps)
        if in_a_row >= limit:
            raise TrainingError(
                f"{what} is not finite at step {state.step} ({in_a_row} in a row, each skipped, the limit of "
                f"train.max_nonfinite_steps={tc.max_nonfinite_steps}; {terms}; gradient norm {norm_text}). "
                f"Lower train.learning_rate (now {tc.learning_rate:g})"
                + (", set train.grad_clip" if tc.grad_clip <= 0 else ", lower train.grad_clip")
                + ", or check the data for empty or extreme examples"
            )
        bar.write(f"step {state.step}: {what} not finite ({terms}; gradient norm {norm_text}); step skipped "
                  f"({in_a_row} in a row, {limit} stop the run)")

    model.train()
    set_learning_rate(optimizer, tc, state.step)
    try:
        while state.step < tc.max_steps:
            train_loader.set_epoch(state.epoch)
            batch_sampler.set_epoch(state.epoch)
            resumed_mid_epoch = state.batch_in_epoch > 0
            loader = accelerator.skip_first_batches(train_loader, state.batch_in_epoch) if resumed_mid_epoch else train_loader
            batches = 0
            for batch in loader:
                batches += 1
                applied, loss_bad, norm = True, False, None
                with accelerator.accumulate(model):
                    output = model(batch, step=state.step)
                    accelerator.backward(output.loss)
                    window.add(output)  # running sums stay tensors: no device sync until they are logged
                    if accelerator.sync_gradients:
                        norm = clip_gradients(accelerator, model, clip)  # of unscaled gradients, under fp16 too
                        loss_bad, grad_bad = nonfinite_step(accelerator, window.pending["loss"], norm)
                        if fp16_scaler:
                            # GradScaler skips a step with inf or NaN gradients itself, and lowers its scale; its
                            # step_was_skipped misses the skips of fused optimizers, so the norm tells instead
                            optimizer.step()
                            applied = not grad_bad
                        elif loss_bad or grad_bad:
                            applied = False  # never step on NaN or inf: the gradients are zeroed below
                        else:
                            optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state.batch_in_epoch += 1
                if not accelerator.sync_gradients:
                    continue
                window.commit(applied)
                state.step += 1
                state.skipped_steps += not applied
                set_learning_rate(optimizer, tc, state.step)
                bar.update(1)
                if loss_bad or not (applied or fp16_scaler):  # GradScaler's own overflow skips are not counted
                    in_a_row += 1
                    nonfinite(output, loss_bad, norm)
                else:
                    in_a_row = 0
                if state.step % tc.log_every == 0 or state.step == tc.max_steps:
                    values = window.means()
                    tokens_seen += values.pop("tokens") * accelerator.num_processes
                    values.update(
                        kl_weight=output.kl_weight,
                        lr=optimizer.param_groups[0]["lr"],
                        tokens_per_s=tokens_seen / max(time.perf_counter() - start, 1e-9),
                    )
                    if output.capacity is not None:
                        values["capacity"] = output.capacity
                    logger.log(state.step, "train", values)
                    bar.set_postfix({k: f"{values[k]:.2f}" for k in ("loss", "rec", "kl", "kl_weight") if k in values})
                    window = LogWindow()
                if state.step % eval_every == 0 or state.step == tc.max_steps:
                    run_validation()
                if state.step % checkpoint_every == 0 or state.step == tc.max_steps:
                    save_checkpoint()
                if state.step >= tc.max_steps:
                    break
            else:
                if batches == 0 and not resumed_mid_epoch:  # guards the loop; check_batches normally catches this
                    raise DataError(f"epoch {state.epoch} of the training split gave no batches")
                state.epoch += 1
                state.batch_in_epoch = 0
        bar.close()
        seconds = time.perf_counter() - start
        check_weights("before final/ is written")
        if main:
            raw_model.save_pretrained(out_dir / "final")
            if not valid:
                valid = isolated_evaluation(raw_model, valid_loader, config.seed)
        accelerator.wait_for_everyone()
    except TrainingError as exc:
        logger.event(state.step, "stopped", reason=str(exc))
        raise
    finally:
        bar.close()
        logger.close()
    best = out_dir / "best"
    return TrainResult(
        output_dir=out_dir,
        best_dir=best if best.exists() else None,
        final_dir=out_dir / "final",
        state=state,
        valid=valid,
        seconds=seconds,
        tokens=tokens_seen,
        start_step=start_step,
        skipped_steps=state.skipped_steps - start_skipped,
    )


def save_config_atomically(config: Config, path: Path) -> None:
    """``save_config`` through a temporary file and a rename: a reader never sees half a config."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_config(config, tmp)
    os.replace(tmp, path)
