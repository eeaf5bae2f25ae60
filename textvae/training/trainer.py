"""The training loop around ``accelerate.Accelerator``: one CPU, one GPU or many, mixed precision, gradient
accumulation, validation, JSONL/TensorBoard logs, atomic checkpoints and exact resume.

The loop knows nothing model-specific: it calls ``model(batch, step=step)`` and reads ``.loss`` (and the named
terms, for logs). Learning rate and KL weights are pure functions of the optimizer step, so a resumed run sees
exactly the schedule an uninterrupted one does; the one rate that is not, plateau decay, keeps its state (rate,
reference loss, bad validations, decays, a copy of best/'s weights) in every checkpoint.

It never saves garbage: a step whose loss or gradient norm is not finite is skipped (too many in a row stop the
run), and weights are checked before every validation, checkpoint and model folder. One run holds a folder at a
time (``run.lock``); a resume refuses changed model or data settings and trims the log back to its checkpoint.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from tqdm.auto import tqdm

from ..config import Config, ConfigError, TrainConfig
from ..errors import CheckpointError, DataError, TrainingError
from ..data.pipeline import PreparedData, make_loader, prepare_data
from ..data.tokenization import load_tokenizer
from ..evaluation.likelihood import evaluation_context, forward_elbo
from ..evaluation.latent_stats import active_units_from_means
from ..models import build_model
from ..models.base import BaseVAE
from ..registry import MODELS
from .checkpoint import (
    BEST_COPY_NAME,
    TRAINER_STATE_NAME,
    WEIGHTS_NAME,
    check_checkpoint_format,
    check_resume_weights,
    checkpoint_name,
    latest_checkpoint,
    keep_best_copy,
    load_training_state,
    load_weights,
    prune_checkpoints,
    read_trainer_state,
    save_training_state,
    sync_files,
    write_json,
)
from .host_memory import keep_freed_host_memory
from .logs import LogWindow, RunLogger
from .nonfinite import NonfiniteGuard, nonfinite_step
from .run_folder import agree, check_resume_config, holding_run_folder, start_run_log


@dataclass
class TrainerState:
    """Where a run is: saved with every checkpoint, so resume continues at the same batch."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this process's shard consumed in the current epoch
    best_elbo: float = -math.inf  # the validation ELBO of best/
    best_step: int = -1
    skipped_steps: int = 0  # steps not applied because their loss or gradients were not finite
    best_score: float = -math.inf  # the train.select_on figure of best/: the ELBO, or -rec
    # plateau schedule: the current rate, the validation loss to beat (the best since the last decay), validations
    # in a row that did not beat it, decays so far, and where the weights a decay reloads are (the run folder's
    # best/; each checkpoint keeps a copy of them, which a resume puts back there)
    lr: Optional[float] = None
    lr_base: Optional[float] = None  # the train.learning_rate that lr's decays started from
    plateau_reference: float = math.inf
    plateau_bad: int = 0
    plateau_decays: int = 0
    best_weights: Optional[str] = None
    stop_reason: Optional[str] = None  # why the run ended before max_steps (plateau_max_decays reached)
    # wall seconds of training (validations and checkpoints included) up to this state, summed over resumes: steps
    # trained again after a kill count once; None when resumed from a checkpoint that did not record it
    train_seconds: Optional[float] = 0.0


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


def learning_rate(config: TrainConfig, step: int, plateau_lr: Optional[float] = None) -> float:
    """Learning rate at ``step``: linear warm-up, then constant, linear decay or cosine decay to 0 at max_steps, or
    for ``plateau`` the rate its decays have reached (``plateau_lr``, ``config.learning_rate`` before any)."""
    peak = plateau_lr if config.lr_schedule == "plateau" and plateau_lr is not None else config.learning_rate
    if config.warmup_steps and step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.lr_schedule in ("constant", "plateau"):
        return peak
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, max(0.0, progress))
    if config.lr_schedule == "linear":
        return config.learning_rate * (1.0 - progress)
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (``train.momentum``, default 0, and ``train.nesterov``, as torch.optim.SGD takes them) over
    the model's parameters; Adam(W) uses the fused kernel, several times faster than the per-tensor one on a CPU for
    a 10k-word model's embeddings and output layer. Momentum does not apply to Adam(W) (the config refuses it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        try:
            return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
            return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


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


BASE_FIGURES = ("elbo", "rec", "kl", "ppl_bound", "active_units", "sentences")  # evaluate_loader's own keys


def evaluate_loader(model: BaseVAE, loader, au_threshold: float = 0.01) -> dict:
    """Validation figures over a loader: per-sentence ELBO, reconstruction, KL, a perplexity bound from the ELBO,
    and active units (dimensions whose posterior mean varies across sentences by at least ``au_threshold``), all
    from ``evaluation``'s functions; and the model's own figures (``ForwardELBO.extras``)."""
    terms = forward_elbo(model, loader)
    sentences = terms.num_sentences
    return {
        "elbo": terms.elbo,
        "rec": terms.rec / sentences,
        "kl": terms.kl / sentences,
        "ppl_bound": terms.perplexity_bound(),
        "active_units": active_units_from_means(terms.means, au_threshold) if len(terms.means) > 1 else 0,
        "sentences": sentences,
        **terms.extras,  # a model's own figures, such as a negotiation agent's selection accuracy
    }


def isolated_evaluation(model: BaseVAE, loader, seed: int) -> dict:
    """``evaluate_loader`` with its own fixed random stream: the training RNG is left exactly as it was, so
    validating (which samples z) never changes what training does next, and a resumed run matches a straight one."""
    with evaluation_context(model, seed):
        return evaluate_loader(model, loader)


# ---------------------------------------------------------------- the loop


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int,
                      plateau_lr: Optional[float] = None) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step, plateau_lr)


def plateau_update(state: TrainerState, config: TrainConfig, loss: float) -> bool:
    """One validation's plateau decision (He et al. 2019's and Li et al. 2019's rule): ``loss`` not above the
    reference becomes the reference; otherwise it counts as bad, and ``plateau_patience`` bad ones in a row (from
    step ``plateau_start`` on) decay the rate, make this loss the reference and, at ``plateau_max_decays``, set
    ``stop_reason``. True when the rate decayed."""
    if loss <= state.plateau_reference:
        state.plateau_reference, state.plateau_bad = loss, 0
        return False
    state.plateau_bad += 1
    if state.plateau_bad < config.plateau_patience or state.step < config.plateau_start:
        return False
    state.plateau_reference, state.plateau_bad = loss, 0
    state.lr = (config.learning_rate if state.lr is None else state.lr) * config.plateau_factor
    state.plateau_decays += 1
    if config.plateau_max_decays and state.plateau_decays >= config.plateau_max_decays:
        state.stop_reason = (f"the learning rate decayed {state.plateau_decays} times (train.plateau_max_decays), "
                             f"the last to {state.lr:g} at step {state.step}")
    return True


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget momentum buffers and running averages, as re-creating the optimizer would (param groups stay)."""
    getattr(optimizer, "optimizer", optimizer).state.clear()  # the torch optimizer inside accelerate's wrapper


PLATEAU_FIELDS = ("lr", "plateau_reference", "plateau_bad", "plateau_decays", "stop_reason", "best_step")


def resolved_intervals(config: TrainConfig) -> tuple[int, int]:
    """(eval_every, checkpoint_every): the configured values, or about 10 per run where they are None."""
    default = max(1, config.max_steps // 10)
    return config.eval_every or default, config.checkpoint_every or default


def train(
    config: Config,
    resume: bool = False,
    data: Optional[PreparedData] = None,
    accelerator: Optional[Accelerator] = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` for ``config.train.max_steps`` optimizer steps.

    Writes into ``config.train.output_dir``: ``config.yaml``, ``log.jsonl``, ``checkpoints/step_*/`` (resume state),
    ``best/`` (the model folder with the best validation ELBO, or reconstruction with ``train.select_on: rec``) and
    ``final/``, holding ``run.lock`` meanwhile (a second run on the folder gets a ``TrainingError``). With
    ``train.lr_schedule: plateau`` the run may end before max_steps, after ``train.plateau_max_decays`` decays (an
    ``early_stop`` log event; its last checkpoint and ``final/`` hold the best weights the last decay reloaded).
    With ``resume=True`` it continues from the newest complete checkpoint there, at the same step, batch, optimizer state and random state; the model and data settings must
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
    """The body of ``train``, with the accelerator made and the process set up, holding the run folder
    (``run_folder.holding_run_folder``: its lock, taken by the main process, is released when the run ends, also on
    an error)."""
    with holding_run_folder(Path(config.train.output_dir), accelerator):
        return _run(config, resume, data, accelerator, progress)


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
    if checkpoint is not None:
        check_checkpoint_format(checkpoint)
    changed = check_resume_config(out_dir, config) if checkpoint is not None else {}
    if data is None:
        # weights from another model folder come with its vocabulary: token ids must mean the same words
        reads_text = MODELS.get(config.model.model_type).uses_tokenizer  # an image model's folder has no tokenizer
        tokenizer = load_tokenizer(tc.init_from) if tc.init_from and reads_text else None
        data = prepare_data(config.data, config.model.max_length, tokenizer=tokenizer, overlong=config.model.overlong)
    model = build_model(data.model_config(config), data.tokenizer)
    if tc.init_from and checkpoint is None:  # a resumed run has its own weights
        load_weights(model, tc.init_from, tc.init_modules)
    optimizer = build_optimizer(model, tc)
    sampler_seed = config.seed
    train_loader = make_loader(
        data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=True, seed=sampler_seed,
        bucket=config.data.bucket, same_length=config.data.same_length_batches,
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
        weights = check_resume_weights(raw_model, checkpoint)
        if main and (checkpoint / BEST_COPY_NAME / WEIGHTS_NAME).is_file():
            # best/ as it was at the checkpoint (a killed run may have replaced it since): the weights a plateau
            # decay reloads. The model carries them only until load_training_state puts the checkpoint's back
            load_weights(raw_model, checkpoint / BEST_COPY_NAME)
            raw_model.save_pretrained(out_dir / "best")
        accelerator.wait_for_everyone()
        load_training_state(checkpoint, weights, raw_model, optimizer, accelerator)
        saved_state = read_trainer_state(checkpoint)
        state = TrainerState(**{k: v for k, v in saved_state.items() if k in TrainerState.__dataclass_fields__})
        if "train_seconds" not in saved_state:  # a checkpoint from before the field: the time before it is unknown
            state.train_seconds = None
        if "best_score" not in saved_state and tc.select_on == "elbo":  # a checkpoint from before select_on
            state.best_score = state.best_elbo
    plateau = tc.lr_schedule == "plateau"
    if not plateau:  # a rate decayed by an earlier plateau stage of the run is not carried into a later one
        state.lr = state.lr_base = None
    elif state.lr is None:
        state.lr = state.lr_base = tc.learning_rate
    else:  # a new train.learning_rate is a new starting rate, with the run's decays so far applied to it
        base = state.lr_base
        if base is None:  # a checkpoint from before lr_base: the rate its run folder's config had
            base = changed["train.learning_rate"][0] if "train.learning_rate" in changed else tc.learning_rate
        state.lr, state.lr_base = state.lr * tc.learning_rate / base, tc.learning_rate
    start_step, start_skipped = state.step, state.skipped_steps
    logger = RunLogger(out_dir, enabled=main)
    if main:
        start_run_log(logger, config, out_dir, checkpoint, state.step, changed)
        defaults = [name for name in ("eval_every", "checkpoint_every") if getattr(tc, name) is None]
        print(f"validation every {eval_every} steps, a checkpoint every {checkpoint_every} steps"
              + (f" ({' and '.join('train.' + d for d in defaults)}: about 10 per run)" if defaults else ""))
    accelerator.wait_for_everyone()

    bar = tqdm(total=tc.max_steps, initial=state.step, disable=not (progress and main), desc="train", dynamic_ncols=True)
    # tqdm.write prints even where the bar is disabled: lines about the run come from the main process only
    write = bar.write if main else lambda line: None
    valid: dict = {}
    start, tokens_seen = time.perf_counter(), 0
    seconds_before = state.train_seconds  # of the run up to the checkpoint resumed from

    def count_train_seconds() -> None:
        if seconds_before is not None:
            state.train_seconds = seconds_before + time.perf_counter() - start
    window = LogWindow()
    fp16_scaler = accelerator.scaler is not None  # GradScaler skips steps whose gradients overflow, and backs off
    clip = tc.grad_clip if tc.grad_clip > 0 else math.inf  # inf: measure the norm (for the check), clip nothing
    guard = NonfiniteGuard(raw_model, accelerator, tc, ckpt_dir, optimizer)

    def check_weights(what: str) -> None:
        guard.check_weights(state.step, what)

    def run_validation() -> None:
        nonlocal valid
        check_weights(f"before the validation at step {state.step}")
        error, decayed = None, False
        if main:
            valid = isolated_evaluation(raw_model, valid_loader, config.seed)
            logger.log(state.step, "valid", valid)
            if not math.isfinite(valid["elbo"]):
                error = (f"validation at step {state.step} gave a non-finite ELBO (rec {valid['rec']}, KL {valid['kl']}) "
                         f"with finite weights: the model overflows; lower train.learning_rate "
                         f"({guard.learning_rate_text()}) or train.grad_clip; nothing was saved for this step")
            else:
                score = valid["elbo"] if tc.select_on == "elbo" else -valid["rec"]
                if score > state.best_score:
                    state.best_score, state.best_elbo, state.best_step = score, valid["elbo"], state.step
                    raw_model.save_pretrained(out_dir / "best")
                    state.best_weights = "best"
                decayed = plateau and plateau_update(state, tc, -score)
            bar.write(
                f"step {state.step}: valid ELBO {valid['elbo']:.3f} rec {valid['rec']:.3f} KL {valid['kl']:.3f} "
                f"AU {valid['active_units']}" + "".join(f" {k} {v:.3f}" for k, v in valid.items() if k not in BASE_FIGURES)
            )
        agree(accelerator, error, TrainingError)  # also the barrier after the main process's work
        if plateau:
            decide_plateau(decayed)

    def decide_plateau(decayed: bool) -> None:
        """Every process takes the main process's plateau decision; a decay lowers the rate, reloads best/ (written
        by the main process before the barrier in ``agree``) and resets the optimizer state."""
        nonlocal valid
        if accelerator.num_processes > 1:
            shared = {name: getattr(state, name) for name in PLATEAU_FIELDS} if main else None
            shared, decayed = broadcast_object_list([shared, decayed])
            for name, value in shared.items():
                setattr(state, name, value)
        if not decayed:
            return
        reload = tc.plateau_reload_best and (out_dir / "best" / WEIGHTS_NAME).is_file()
        if reload:
            load_weights(raw_model, out_dir / "best")
        reset_optimizer_state(optimizer)
        set_learning_rate(optimizer, tc, state.step, state.lr)
        logger.event(state.step, "lr_decay", lr=state.lr, decays=state.plateau_decays,
                     reloaded_step=state.best_step if reload else None)
        write(f"step {state.step}: learning rate decayed to {state.lr:g} ({state.plateau_decays} decays)"
              + (f", best weights of step {state.best_step} reloaded" if reload else ""))
        if state.stop_reason is not None:
            logger.event(state.step, "early_stop", reason=state.stop_reason)
            write(f"step {state.step}: stopping: {state.stop_reason}")
            valid = {}  # figures of the weights before the reload: final/'s are measured at the end

    def save_checkpoint() -> None:
        check_weights(f"before checkpoint {checkpoint_name(state.step)} is written")
        target = ckpt_dir / checkpoint_name(state.step)
        staging = ckpt_dir / f".{target.name}"
        if main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        save_training_state(staging, raw_model, optimizer, accelerator, main)  # every process its random state
        accelerator.wait_for_everyone()
        if main:
            if plateau and tc.plateau_reload_best:
                keep_best_copy(out_dir / "best", staging / BEST_COPY_NAME)
            count_train_seconds()
            write_json(staging / TRAINER_STATE_NAME, asdict(state))  # written last: marks the checkpoint complete
            sync_files(staging)  # on disk before the rename publishes it
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            prune_checkpoints(ckpt_dir, tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    model.train()
    set_learning_rate(optimizer, tc, state.step, state.lr)
    try:
        while state.step < tc.max_steps and state.stop_reason is None:
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
                set_learning_rate(optimizer, tc, state.step, state.lr)
                bar.update(1)
                if loss_bad or not (applied or fp16_scaler):  # GradScaler's own overflow skips are not counted
                    guard.skipped(state.step, output, loss_bad, norm, write)
                else:
                    guard.applied()
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
                if state.step % checkpoint_every == 0 or state.step == tc.max_steps or state.stop_reason:
                    save_checkpoint()
                if state.step >= tc.max_steps or state.stop_reason:
                    break
            else:
                if batches == 0 and not resumed_mid_epoch:  # guards the loop; check_batches normally catches this
                    raise DataError(f"epoch {state.epoch} of the training split gave no batches")
                state.epoch += 1
                state.batch_in_epoch = 0
        bar.close()
        seconds = time.perf_counter() - start
        count_train_seconds()
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
