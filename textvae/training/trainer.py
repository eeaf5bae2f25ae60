"""The training loop around ``accelerate.Accelerator``: one CPU, one GPU or many, mixed precision, gradient
accumulation, validation, JSONL/TensorBoard logs, atomic checkpoints and exact resume.

The loop knows nothing model-specific: it calls ``model(batch, step=step)`` and reads ``.loss`` (and the named
terms, for logs). Learning rate and KL weights are pure functions of the optimizer step, so a resumed run sees
exactly the schedule an uninterrupted one does.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm

from ..errors import TrainingError
from ..config import Config, ConfigError, TrainConfig, save_config
from ..data.pipeline import PreparedData, make_loader, prepare_data
from ..data.tokenization import load_tokenizer
from ..evaluation.latent_stats import active_units_from_means
from ..models.base import BaseVAE
from .checkpoint import (
    TRAINER_STATE_NAME,
    checkpoint_name,
    latest_checkpoint,
    load_weights,
    prune_checkpoints,
    read_trainer_state,
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


def clip_gradients(accelerator: Accelerator, model: torch.nn.Module, max_norm: float) -> None:
    """accelerate's clipping (it unscales fp16 gradients and knows FSDP and DeepSpeed); on CPU processes, the
    cheaper ``clip_grad_norm_`` above."""
    if accelerator.device.type == "cpu" and accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU):
        clip_grad_norm_(model.parameters(), max_norm)
    else:
        accelerator.clip_grad_norm_(model.parameters(), max_norm)


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
    """JSONL log on the main process (and TensorBoard when it is installed); silent elsewhere."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = folder / "log.jsonl"
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
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, "split": split, **values}) + "\n")
        if self.tensorboard is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


# ---------------------------------------------------------------- the loop


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)


class LogWindow:
    """Running sums of the logged terms between two log lines, kept as tensors."""

    def __init__(self) -> None:
        self.sums: dict = {}
        self.batches = 0

    def add(self, output) -> None:
        terms = {"loss": output.loss, "rec": output.rec.mean(), "kl": output.kl.mean(), "tokens": output.num_tokens}
        for key, value in terms.items():
            value = value.detach()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.batches += 1

    def means(self) -> dict:
        n = max(1, self.batches)
        values = {k: float(v) / n for k, v in self.sums.items() if k != "tokens"}
        values["tokens"] = int(self.sums.get("tokens", 0))
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
    ``best/`` (the model folder with the best validation ELBO) and ``final/``. With ``resume=True`` it continues from
    the newest complete checkpoint there, at the same step, batch, optimizer state and random state.

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
    """The body of ``train``, with the accelerator made and the process set up."""
    tc = config.train
    set_seed(config.seed)
    out_dir = Path(tc.output_dir)
    ckpt_dir = out_dir / "checkpoints"
    main = accelerator.is_main_process

    if data is None:
        # weights from another model folder come with its vocabulary: token ids must mean the same words
        tokenizer = load_tokenizer(tc.init_from) if tc.init_from else None
        data = prepare_data(config.data, config.model.max_length, tokenizer=tokenizer, overlong=config.model.overlong)
    model = BaseVAE.from_config(data.model_config(config), data.tokenizer)
    if tc.init_from:
        load_weights(model, tc.init_from, tc.init_modules)  # a resumed run then overwrites them with its own
    optimizer = build_optimizer(model, tc)
    sampler_seed = config.seed
    train_loader = make_loader(
        data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=True, seed=sampler_seed,
        bucket=config.data.bucket,
    )
    valid_loader = make_loader(
        data.datasets["valid"], data.tokenizer, config.data.eval_batch_size, shuffle=False, bucket=config.data.bucket
    )
    batch_sampler = train_loader.batch_sampler  # ours, also when accelerate wraps it in a shard sampler
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    raw_model: BaseVAE = accelerator.unwrap_model(model)

    state = TrainerState()
    checkpoint = latest_checkpoint(ckpt_dir) if resume else None
    if resume and checkpoint is None and main:
        print(f"--resume: no checkpoint in {ckpt_dir}; starting from step 0")
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = TrainerState(**read_trainer_state(checkpoint))
        if main:
            print(f"resumed from {checkpoint} at step {state.step}")
    elif main:
        if out_dir.exists() and (out_dir / "log.jsonl").exists():
            (out_dir / "log.jsonl").unlink()  # a fresh run in an old folder starts a fresh log
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")
    accelerator.wait_for_everyone()

    logger = RunLogger(out_dir, enabled=main)
    bar = tqdm(total=tc.max_steps, initial=state.step, disable=not (progress and main), desc="train", dynamic_ncols=True)
    valid: dict = {}
    start, tokens_seen = time.perf_counter(), 0
    window = LogWindow()

    def run_validation() -> None:
        nonlocal valid
        if main:
            valid = isolated_evaluation(raw_model, valid_loader, config.seed)
            logger.log(state.step, "valid", valid)
            if valid["elbo"] > state.best_elbo:
                state.best_elbo, state.best_step = valid["elbo"], state.step
                raw_model.save_pretrained(out_dir / "best")
            bar.write(
                f"step {state.step}: valid ELBO {valid['elbo']:.3f} rec {valid['rec']:.3f} KL {valid['kl']:.3f} "
                f"AU {valid['active_units']}"
            )
        accelerator.wait_for_everyone()

    def save_checkpoint() -> None:
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

    model.train()
    set_learning_rate(optimizer, tc, state.step)
    while state.step < tc.max_steps:
        train_loader.set_epoch(state.epoch)
        batch_sampler.set_epoch(state.epoch)
        loader = accelerator.skip_first_batches(train_loader, state.batch_in_epoch) if state.batch_in_epoch else train_loader
        for batch in loader:
            with accelerator.accumulate(model):
                output = model(batch, step=state.step)
                if not torch.isfinite(output.loss):
                    terms = ", ".join(f"{k}={v:.4g}" for k, v in output.log_values().items())
                    raise TrainingError(
                        f"loss is not finite at step {state.step} ({terms}); lower train.learning_rate, "
                        "raise train.grad_clip or check the data"
                    )
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and tc.grad_clip > 0:
                    clip_gradients(accelerator, model, tc.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state.batch_in_epoch += 1
            window.add(output)  # running sums stay tensors: no device sync until they are logged
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            set_learning_rate(optimizer, tc, state.step)
            bar.update(1)
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
                bar.set_postfix({k: f"{values[k]:.2f}" for k in ("loss", "rec", "kl", "kl_weight")})
                window = LogWindow()
            if state.step % tc.eval_every == 0 or state.step == tc.max_steps:
                run_validation()
            if state.step % tc.checkpoint_every == 0 or state.step == tc.max_steps:
                save_checkpoint()
            if state.step >= tc.max_steps:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    bar.close()
    seconds = time.perf_counter() - start
    if main:
        raw_model.save_pretrained(out_dir / "final")
        if not valid:
            valid = isolated_evaluation(raw_model, valid_loader, config.seed)
    accelerator.wait_for_everyone()
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
    )
