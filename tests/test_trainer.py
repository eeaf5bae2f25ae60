import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from textvae import load_config, load_pretrained
from textvae.config import TrainConfig
from textvae.training.checkpoint import latest_checkpoint, list_checkpoints, read_trainer_state
from textvae.training.state_files import load_state_file
from textvae.errors import CheckpointError, ConfigError, DataError
from textvae.models.base import BaseVAE
from textvae.cli.train import trained_line
from textvae.training.trainer import TrainingError, learning_rate, train

from .conftest import SENTENCES

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.synthetic_size=400",
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "model.encoder.embedding_size=8",
    "model.encoder.hidden_size=16",
    "model.decoder.embedding_size=8",
    "model.decoder.hidden_size=16",
    "model.decoder.word_dropout=0.2",
    "model.latent.size=4",
    "model.objective.kl_schedule=linear",
    "model.objective.kl_warmup_steps=10",
    "train.log_every=2",
]


def tiny_config(tmp_path, name, *extra):
    return load_config(ROOT / "configs" / "default.yaml", TINY + [f"train.output_dir={tmp_path / name}", *extra])


def strict_json(line):
    """json.loads that refuses NaN and Infinity, which Python's json reads but JSON does not have."""
    def refuse(constant):
        raise ValueError(f"{constant} in a log line: not JSON")
    return json.loads(line, parse_constant=refuse)


def read_log(folder):
    return [strict_json(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def assert_nothing_nonfinite_saved(folder):
    """Every weight file under a run folder is finite, every log line is JSON, and the run released its lock."""
    for path in folder.rglob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(path)).values()), path
    read_log(folder)
    assert not (folder / "run.lock").exists()


@contextmanager
def deadline(seconds):
    """Fail a test that would otherwise hang (e.g. a loop over an empty loader) after ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    every = ["train.eval_every=7", "train.checkpoint_every=7", "train.keep_checkpoints=5"]
    # 320 training sentences at batch 16: 20 steps an epoch. Stopped at step 14 (mid-epoch), resumed to 26: the
    # resumed part finishes epoch 1 and starts epoch 2, whose order must be the uninterrupted run's
    straight = train(tiny_config(tmp_path, "a", "train.max_steps=26", *every), progress=False)
    first = train(tiny_config(tmp_path, "b", "train.max_steps=14", *every), progress=False)
    assert first.state.step == 14 and first.state.epoch == 0 and first.state.batch_in_epoch == 14  # mid-epoch
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_00000007", "step_00000014"]
    shutil.copytree(tmp_path / "b", tmp_path / "old")  # for a checkpoint from before train_seconds, below
    at_14 = read_trainer_state(tmp_path / "b" / "checkpoints" / "step_00000014")["train_seconds"]
    assert 0 < at_14 <= first.state.train_seconds
    resumed = train(tiny_config(tmp_path, "b", "train.max_steps=26", *every), resume=True, progress=False)
    assert resumed.state.step == straight.state.step == 26
    # the training time is summed over the resume: the checkpoint's seconds, then this process's
    assert resumed.state.train_seconds == pytest.approx(at_14 + resumed.seconds, abs=0.05)
    state_file = tmp_path / "old" / "checkpoints" / "step_00000014" / "trainer_state.json"
    old_state = json.loads(state_file.read_text())
    del old_state["train_seconds"]
    state_file.write_text(json.dumps(old_state))
    unknown = train(tiny_config(tmp_path, "old", "train.max_steps=16", *every), resume=True, progress=False)
    assert unknown.state.step == 16 and unknown.state.train_seconds is None  # not just this process's seconds
    assert resumed.state.epoch == straight.state.epoch == 1  # crossed the epoch boundary after resuming
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:  # the README promises the same weights, not close ones
        assert torch.equal(a[name], b[name]), (name, (a[name] - b[name]).abs().max())
    # the resumed run did not start over: its log has no lines from before the checkpoint it resumed from
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_outputs_logs_and_best_model(tmp_path):
    result = train(tiny_config(tmp_path, "run", "train.max_steps=6", "train.eval_every=3"), progress=False)
    out = tmp_path / "run"
    assert (out / "config.yaml").is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["split"] == "train"]
    valid_lines = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train_lines] == [2, 4, 6]
    assert [r["step"] for r in valid_lines] == [3, 6]
    assert {"loss", "rec", "kl", "kl_weight", "lr", "tokens_per_s"} <= train_lines[0].keys()
    assert train_lines[0]["kl_weight"] == pytest.approx(0.1)  # linear warm-up over 10 steps, logged at step 2 (weight of step 1)
    assert {"elbo", "rec", "kl", "active_units", "ppl_bound"} <= valid_lines[0].keys()
    best_elbo = max(r["elbo"] for r in valid_lines)
    assert result.state.best_elbo == pytest.approx(best_elbo)
    model = load_pretrained(result.best_dir)
    assert len(model.reconstruct(["the man bought the book ."])) == 1


def test_killed_mid_write_checkpoint_is_never_picked(tmp_path):
    train(tiny_config(tmp_path, "run", "train.max_steps=4", "train.checkpoint_every=2", "train.eval_every=100"), progress=False)
    ckpts = tmp_path / "run" / "checkpoints"
    # a write that was killed leaves a staging folder, or a step folder without trainer_state.json
    (ckpts / ".step_00000006").mkdir()
    (ckpts / "step_00000008").mkdir()
    (ckpts / "step_00000008" / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(ckpts).name == "step_00000004"
    resumed = train(tiny_config(tmp_path, "run", "train.max_steps=5", "train.eval_every=100"), resume=True, progress=False)
    assert resumed.state.step == 5


def test_nan_loss_is_a_clear_error(tmp_path):
    # SGD at 1e30 leaves finite but huge weights after step 1; from step 2 on every loss is NaN: skipped, twice in a row
    config = tiny_config(tmp_path, "nan", "train.max_steps=6", "train.learning_rate=1e30", "train.grad_clip=0",
                         "train.optimizer=sgd", "train.max_nonfinite_steps=2", "train.checkpoint_every=1",
                         "train.eval_every=100")
    with pytest.raises(TrainingError, match=r"loss is not finite at step 3 \(2 in a row, .*; loss=nan.*learning_rate"):
        train(config, progress=False)
    # the skipped step 2 left the weights of step 1 (finite), so its checkpoint was written; step 3 stopped the run
    assert [p.name for p in list_checkpoints(tmp_path / "nan" / "checkpoints")] == ["step_00000001", "step_00000002"]
    assert_nothing_nonfinite_saved(tmp_path / "nan")


def test_nonfinite_error_quotes_the_rate_of_the_step_beside_the_configured_one(tmp_path):
    # a 10-step warm-up: when the run stops, the optimizer's rate is 4/10 of train.learning_rate (warm-up index 3)
    config = tiny_config(tmp_path, "warm", "train.max_steps=6", "train.learning_rate=1e30", "train.grad_clip=0",
                         "train.optimizer=sgd", "train.max_nonfinite_steps=2", "train.lr_schedule=linear",
                         "train.warmup_steps=10", "train.eval_every=100")
    with pytest.raises(TrainingError, match=r"at step 3 .*learning_rate \(set to 1e\+30; the rate at this step is "
                                            r"4e\+29\)"):
        train(config, progress=False)


def test_learning_rate_schedules():
    config = TrainConfig(learning_rate=1.0, warmup_steps=10, lr_schedule="linear", max_steps=110)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 9) == pytest.approx(1.0)
    assert learning_rate(config, 60) == pytest.approx(0.5)
    assert learning_rate(config, 110) == pytest.approx(0.0)
    cosine = TrainConfig(learning_rate=1.0, lr_schedule="cosine", max_steps=100)
    assert learning_rate(cosine, 50) == pytest.approx(0.5)
    assert learning_rate(TrainConfig(learning_rate=0.3), 1000) == 0.3


def script_env():
    """The environment of a script run: this checkout's textvae first, whatever package is installed."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_script(args, tmp_path, launcher=None, timeout=300):
    env = script_env()
    command = (launcher or [sys.executable]) + [str(ROOT / "scripts" / "train_text_vae.py"), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_script_bad_override_is_a_clear_error(tmp_path):
    proc = run_script(["--max-steps", "2", "model.latent.sise=3"], tmp_path)
    assert proc.returncode == 2
    assert "did you mean" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_script(["--max-steps", "2", "--data-dir", str(tmp_path / "nowhere")], tmp_path)
    assert proc.returncode == 2 and "data folder not found" in proc.stderr and "Traceback" not in proc.stderr


def test_two_process_data_parallel_run(tmp_path):
    """torchrun starts two CPU processes (gloo); only the main one writes, and the result loads."""
    out = tmp_path / "ddp"
    args = ["--max-steps", "6", "--output-dir", str(out), "--no-progress", "train.eval_every=3", "train.checkpoint_every=3", *TINY]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    proc = run_script(args, tmp_path, launcher=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 6 steps") == 1  # the summary is printed by the main process only
    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt.name == "step_00000006"
    names = {p.name for p in ckpt.iterdir()}
    assert {"random_states_0.safetensors", "random_states_1.safetensors"} <= names  # both processes saved
    assert not [name for name in names if name.endswith((".bin", ".pkl", ".pt"))]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "valid"] == [3, 6]  # written once, not once per process
    assert load_pretrained(out / "best").sample(2, seed=0)


def test_two_processes_see_different_shards_and_average_gradients(tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29532"]
    env = script_env()
    proc = subprocess.run(
        launcher + [str(ROOT / "tests" / "helpers" / "ddp_probe.py"), str(ROOT / "configs" / "default.yaml"), *TINY],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"num_processes": 2, "first_rows_differ": True, "parameters_equal": True}


def test_init_from_loads_only_the_named_modules(tmp_path):
    """AE pretraining (Li et al. 2019): a second run starts from the first's encoder, with a fresh decoder."""
    ae = train(tiny_config(tmp_path, "ae", "train.max_steps=3", "model.objective.beta=0"), progress=False)
    fresh = train(tiny_config(tmp_path, "fresh", "train.max_steps=0"), progress=False)
    second = train(
        tiny_config(tmp_path, "vae", "train.max_steps=0", f"train.init_from={ae.final_dir}",
                    "train.init_modules=[encoder]"),
        progress=False,
    )
    a, f, s = (load_file(str(r.final_dir / "model.safetensors")) for r in (ae, fresh, second))
    for name in s:
        source = a if name.startswith("encoder.") else f
        assert torch.equal(s[name], source[name]), name
    assert any(not torch.equal(a[n], f[n]) for n in a if n.startswith("encoder."))


def test_init_from_unknown_module_is_a_clear_error(tmp_path):
    from textvae.training.checkpoint import CheckpointError

    ae = train(tiny_config(tmp_path, "ae", "train.max_steps=1"), progress=False)
    with pytest.raises(CheckpointError, match="no module 'encodr'"):
        train(tiny_config(tmp_path, "b", "train.max_steps=1", f"train.init_from={ae.final_dir}",
                          "train.init_modules=[encodr]"), progress=False)


def test_clip_grad_norm_matches_torch_and_skips_gradients_within_the_limit():
    from textvae.training.trainer import clip_grad_norm_

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(2))]
    params[2].grad = None  # a parameter without a gradient is skipped
    for scale, limit in ((10.0, 1.0), (0.01, 1.0)):
        grads = [torch.randn_like(p) * scale for p in params[:2]]
        expected = [g.clone() for g in grads]
        reference = [torch.nn.Parameter(p.detach().clone()) for p in params[:2]]
        for p, r, g in zip(params, reference, expected):
            p.grad, r.grad = g.clone(), g.clone()
        norm = clip_grad_norm_(params, limit)
        torch.testing.assert_close(norm, torch.nn.utils.clip_grad_norm_(reference, limit))
        for p, r in zip(params, reference):
            torch.testing.assert_close(p.grad, r.grad)
        if scale < 1:  # within the limit: untouched, bit for bit
            assert all(torch.equal(p.grad, g) for p, g in zip(params, expected))


def test_validation_keeps_the_training_random_stream_and_mode(tiny_model):
    from textvae.training.trainer import isolated_evaluation

    ids, lengths = tiny_model.tokenize(SENTENCES)
    loader = [{"input_ids": ids[:5], "lengths": lengths[:5]}, {"input_ids": ids[5:], "lengths": lengths[5:]}]
    tiny_model.train()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    figures = isolated_evaluation(tiny_model, loader, seed=0)
    assert torch.equal(torch.get_rng_state(), before) and tiny_model.training
    assert isolated_evaluation(tiny_model, loader, seed=0) == figures  # its own fixed stream, not training's
    assert figures.keys() == {"elbo", "rec", "kl", "ppl_bound", "active_units", "sentences"}
    assert figures["sentences"] == len(SENTENCES) and figures["elbo"] == pytest.approx(-figures["rec"] - figures["kl"])
    assert figures["ppl_bound"] == pytest.approx(
        math.exp(-figures["elbo"] * len(SENTENCES) / sum(len(s.split()) + 1 for s in SENTENCES)))


def test_cpu_threads_are_set_for_training_and_restored(monkeypatch):
    import textvae.training.trainer as trainer
    from textvae.config import Config

    seen = []
    monkeypatch.setattr(trainer, "_train", lambda *args: seen.append(torch.get_num_threads()))
    torch.set_num_threads(1)  # as accelerate launch leaves a single CPU process
    config = Config()
    config.train.cpu_threads = 2
    trainer.train(config)
    config.train.cpu_threads = 0
    trainer.train(config)
    assert seen == [2, trainer.cores_per_process(1)] and torch.get_num_threads() == 1
    assert trainer.cores_per_process(1000) == 1
    config.train.cpu_threads = -1
    with pytest.raises(ValueError, match="train.cpu_threads must be 0"):
        trainer.train(config)


# ---------------------------------------------------------------- never saving garbage


def test_huge_learning_rate_stops_before_saving_nonfinite_weights(tmp_path):
    """The review's case: Adam at 1e39 makes every weight inf in one step with finite gradients. The script stops
    with one error line and leaves no final/, best/ or checkpoint."""
    out = tmp_path / "lr"
    proc = run_script(["--max-steps", "1", "--output-dir", str(out), "--no-summary", "--no-progress",
                       "train.learning_rate=1e39", *TINY], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: the weights are not finite after step 1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "final").exists() and not (out / "best").exists()
    assert list_checkpoints(out / "checkpoints") == []
    assert_nothing_nonfinite_saved(out)
    assert read_log(out)[-1]["event"] == "stopped"
    # longer runs stop at the next step's NaN loss, before any interval saves anything
    with pytest.raises(TrainingError, match="weights are not finite after step 2"):
        train(tiny_config(tmp_path, "lr5", "train.max_steps=5", "train.learning_rate=1e39", "train.eval_every=100",
                          "train.checkpoint_every=100"), progress=False)
    assert_nothing_nonfinite_saved(tmp_path / "lr5")
    assert not (tmp_path / "lr5" / "final").exists()


def test_nonfinite_validation_is_logged_as_null_and_stops_the_run(tmp_path):
    # finite but huge weights (SGD at 1e30) whose validation ELBO is NaN: the valid line says null, nothing is saved
    config = tiny_config(tmp_path, "v", "train.max_steps=3", "train.learning_rate=1e30", "train.grad_clip=0",
                         "train.optimizer=sgd", "train.eval_every=3")
    with pytest.raises(TrainingError, match="validation at step 3 gave a non-finite ELBO"):
        train(config, progress=False)
    records = read_log(tmp_path / "v")  # strict: a NaN would fail here
    valid = [r for r in records if r.get("split") == "valid"]
    assert valid[0]["elbo"] is None and valid[0]["rec"] is None
    assert sum(r["skipped_steps"] for r in records if r.get("split") == "train") == 2  # steps 2 and 3
    assert not (tmp_path / "v" / "best").exists() and not (tmp_path / "v" / "final").exists()
    assert_nothing_nonfinite_saved(tmp_path / "v")


def poison_steps(monkeypatch, steps):
    """Make the loss NaN at the given (0-based) steps of every model the trainer builds."""
    build = BaseVAE.from_config

    def from_config(*args, **kwargs):
        model = build(*args, **kwargs)
        forward = model.forward

        def poisoned(batch, step=0):
            output = forward(batch, step=step)
            if step in steps:
                output.loss = output.loss * float("nan")
            return output

        model.forward = poisoned
        return model

    monkeypatch.setattr(BaseVAE, "from_config", from_config)


def test_nonfinite_steps_are_skipped_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    clean = train(tiny_config(tmp_path, "clean", "train.max_steps=2", "train.log_every=1"), progress=False)
    poison_steps(monkeypatch, {2, 3, 5})
    result = train(tiny_config(tmp_path, "run", "train.max_steps=8", "train.log_every=1", "train.eval_every=4",
                               "train.checkpoint_every=4"), progress=False)
    assert result.state.step == 8 and result.state.skipped_steps == result.skipped_steps == 3
    lines = [r for r in read_log(tmp_path / "run") if r.get("split") == "train"]
    assert [r["skipped_steps"] for r in lines] == [0, 0, 1, 1, 0, 1, 0, 0]
    skipped = [r for r in lines if r["skipped_steps"]]
    assert all("loss" not in r for r in skipped)  # no NaN means: a skipped step has no terms to average
    assert all(math.isfinite(r["loss"]) for r in lines if not r["skipped_steps"])
    assert_nothing_nonfinite_saved(tmp_path / "run")
    # the first two steps were not poisoned: the same as a clean run's, so the skip check changed nothing else
    assert lines[1]["loss"] == pytest.approx([r for r in read_log(tmp_path / "clean") if r.get("split") == "train"][1]["loss"])
    assert clean.skipped_steps == 0
    assert "3 skipped as not finite" in trained_line(result, 8)
    assert read_trainer_state(latest_checkpoint(tmp_path / "run" / "checkpoints"))["skipped_steps"] == 3  # resumable


def test_skipped_steps_leave_the_weights_untouched(tmp_path, monkeypatch):
    # no optimizer step and the NaN gradients dropped: two clean steps then two skipped equal two clean steps
    base = train(tiny_config(tmp_path, "a", "train.max_steps=2"), progress=False)
    poison_steps(monkeypatch, {2, 3})
    skipped = train(tiny_config(tmp_path, "b", "train.max_steps=4"), progress=False)
    a = load_file(str(base.final_dir / "model.safetensors"))
    b = load_file(str(skipped.final_dir / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_fp16_overflow_skips_are_gradscalers_and_a_nan_loss_still_counts(tmp_path, monkeypatch):
    """CUDA fp16 on a CPU: a GradScaler whose first scale overflows the gradients. It skips that step and halves its
    scale, as it does early in every fp16 run: counted in skipped_steps but not toward max_nonfinite_steps=1. A NaN
    loss does count."""
    from accelerate import Accelerator

    def fp16_accelerator():
        accelerator = Accelerator(cpu=True)
        accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # 50 nats x 2^127 = inf
        # what accelerate does for native fp16 (a CUDA device): gradients unscaled before their norm is taken
        accelerator.unscale_gradients = lambda optimizer=None: [
            accelerator.scaler.unscale_(o.optimizer) for o in accelerator._optimizers]
        return accelerator

    accelerator = fp16_accelerator()
    every = ["train.max_nonfinite_steps=1", "train.log_every=1", "train.eval_every=100"]
    result = train(tiny_config(tmp_path, "a", "train.max_steps=4", *every), accelerator=accelerator, progress=False)
    assert result.state.skipped_steps == 1 and accelerator.scaler.get_scale() == 2.0**126
    assert [r["skipped_steps"] for r in read_log(tmp_path / "a") if r.get("split") == "train"] == [1, 0, 0, 0]
    assert_nothing_nonfinite_saved(tmp_path / "a")
    poison_steps(monkeypatch, {2})
    with pytest.raises(TrainingError, match=r"loss is not finite at step 3 \(1 in a row"):
        train(tiny_config(tmp_path, "b", "train.max_steps=4", *every), accelerator=fp16_accelerator(), progress=False)


def test_log_lines_are_json_with_null_for_nonfinite_values(tmp_path):
    from textvae.training.trainer import RunLogger

    logger = RunLogger(tmp_path, enabled=True)
    logger.log(1, "train", {"loss": float("nan"), "kl": float("inf"), "rec": -float("inf"), "lr": 1e-3})
    logger.event(1, "resume", changed={})
    logger.close()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert "NaN" not in lines[0] and "Infinity" not in lines[0]
    assert strict_json(lines[0]) == {"step": 1, "split": "train", "loss": None, "kl": None, "rec": None, "lr": 1e-3}
    assert strict_json(lines[1]) == {"event": "resume", "step": 1, "changed": {}}


def test_resume_refuses_a_checkpoint_with_nonfinite_weights(tmp_path):
    from safetensors.torch import save_file

    train(tiny_config(tmp_path, "run", "train.max_steps=2", "train.checkpoint_every=2"), progress=False)
    path = latest_checkpoint(tmp_path / "run" / "checkpoints") / "model.safetensors"
    weights = load_file(str(path))
    weights["latent.proj.bias"][0] = float("nan")
    save_file(weights, str(path))
    with pytest.raises(CheckpointError, match=r"weights are not finite \(latent.proj.bias hold NaN or inf\)"):
        train(tiny_config(tmp_path, "run", "train.max_steps=4"), resume=True, progress=False)


def test_checkpoints_hold_no_pickle_and_an_old_pickled_one_is_refused(tmp_path):
    train(tiny_config(tmp_path, "run", "train.max_steps=2", "train.checkpoint_every=2"), progress=False)
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "random_states_0.safetensors", "trainer_state.json"]
    # a checkpoint of an earlier version: accelerate's pickle files in place of the safetensors ones
    (ckpt / "optimizer.safetensors").rename(ckpt / "optimizer.bin")
    (ckpt / "random_states_0.safetensors").rename(ckpt / "random_states_0.pkl")
    best = (tmp_path / "run" / "best" / "model.safetensors").read_bytes()
    # a plateau run's checkpoint carries a copy of best/ that a resume puts back: here one that differs from best/
    weights = {name: t + 1 for name, t in load_file(str(ckpt / "model.safetensors")).items()}
    (ckpt / "best").mkdir()
    save_file(weights, str(ckpt / "best" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"holds optimizer.bin and random_states_0.pkl, .* never unpickles; .*"
                                              r"train.init_from=.*run/best and a new train.output_dir"):
        train(tiny_config(tmp_path, "run", "train.max_steps=4"), resume=True, progress=False)
    assert (tmp_path / "run" / "best" / "model.safetensors").read_bytes() == best  # refused before anything was written
    (ckpt / "optimizer.bin").unlink(), (ckpt / "random_states_0.pkl").unlink(), shutil.rmtree(ckpt / "best")
    with pytest.raises(CheckpointError, match=r"it has no optimizer.safetensors"):
        train(tiny_config(tmp_path, "run", "train.max_steps=4"), resume=True, progress=False)


# ---------------------------------------------------------------- one run per folder


def write_lock(folder, pid, started=None):
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time() if started is None else started
    record = {"pid": pid, "host": socket.gethostname(), "started": "then", "started_unix": started, "command": "other run"}
    (folder / "run.lock").write_text(json.dumps(record))
    return record


def test_a_live_run_holds_its_folder_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        record = write_lock(out, holder.pid)
        with pytest.raises(TrainingError, match=rf"{out} is in use by another run: process {holder.pid} on "
                                                 rf"{socket.gethostname()}, started then \(other run\)"):
            train(tiny_config(tmp_path, "run", "train.max_steps=1"), progress=False)
        assert json.loads((out / "run.lock").read_text()) == record  # the holder's lock is left alone
        assert not (out / "config.yaml").exists() and not (out / "log.jsonl").exists()  # nothing was written
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over with a note, and released at the end
    train(tiny_config(tmp_path, "run", "train.max_steps=1"), progress=False)
    assert f"locked by a run that no longer runs (process {holder.pid}" in capsys.readouterr().out
    assert not (out / "run.lock").exists() and (out / "final").is_dir()


def test_lock_of_a_reused_pid_or_another_host(tmp_path):
    from textvae.training.checkpoint import RunLock

    # a live process whose pid is in a lock written before it started is not the lock's holder (a reused pid)
    write_lock(tmp_path / "a", os.getppid(), started=1.0)
    lock = RunLock(tmp_path / "a")
    assert "no longer runs" in lock.acquire()
    with pytest.raises(TrainingError, match="in use by another run"):  # and now this process holds it
        RunLock(tmp_path / "a").acquire()
    lock.release()
    assert not (tmp_path / "a" / "run.lock").exists()
    # a lock from another host cannot be checked: refused, with the way out
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(TrainingError, match="process 1 on elsewhere.*delete the lock file"):
        RunLock(tmp_path / "b").acquire()


def test_a_second_run_is_refused_while_the_first_trains(tmp_path):
    """Two real processes: the second exits with one error line naming the first; the first, interrupted with
    Ctrl-C, releases the folder."""
    out = tmp_path / "run"
    args = ["--output-dir", str(out), "--no-summary", "--no-progress", "train.eval_every=100000", *TINY]
    # SIGINT at its default in the child: a shell's background job (`pytest ... &`) starts with it ignored, and a
    # child inheriting that would never see the Ctrl-C below
    first = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train_text_vae.py"), "--max-steps", "100000", *args],
                             cwd=tmp_path, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(1200):
            if (out / "run.lock").exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert (out / "run.lock").exists(), first.communicate()[1][-2000:]
        second = run_script(["--max-steps", "2", *args], tmp_path)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"is in use by another run: process {first.pid}" in second.stderr
        assert first.poll() is None  # still training
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        first.kill()
        first.wait()
    assert not (out / "run.lock").exists()
    assert_nothing_nonfinite_saved(out)


# ---------------------------------------------------------------- resume bookkeeping


def test_resume_trims_the_log_marks_the_resume_and_removes_leftovers(tmp_path):
    every = ["train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2", "train.keep_checkpoints=5"]
    out = tmp_path / "run"
    train(tiny_config(tmp_path, "run", "train.max_steps=6", *every), progress=False)
    # as if the run had been killed after logging step 6 but before its checkpoint was complete
    shutil.rmtree(out / "checkpoints" / "step_00000006")
    leftovers = [out / ".final.tmp-k1lled", out / ".best.old-4242", out / "checkpoints" / ".step_00000099",
                 out / "checkpoints" / "step_00000099"]  # the last without trainer_state.json: cut short
    for folder in leftovers:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    with (out / "log.jsonl").open("a") as handle:
        handle.write('{"step": 7, "split": "tr')  # a line cut short by the kill
    result = train(tiny_config(tmp_path, "run", "train.max_steps=8", *every), resume=True, progress=False)
    assert result.start_step == 4 and result.state.step == 8
    assert not any(folder.exists() for folder in leftovers)
    records = read_log(out)
    events = [r for r in records if "event" in r]
    assert len(events) == 1 and events[0]["event"] == "resume" and events[0]["step"] == 4
    assert events[0]["dropped_log_lines"] == 4  # train 5, train 6, valid 6 and the cut line
    assert events[0]["changed"] == {"train.max_steps": [6, 8]}
    assert [r["step"] for r in records if r.get("split") == "train"] == list(range(1, 9))  # no step twice
    assert [r["step"] for r in records if r.get("split") == "valid"] == [2, 4, 6, 8]
    assert records.index(events[0]) == 6  # right after the lines of steps 1-4 (4 train, 2 valid)
    assert "max_steps: 8" in (out / "config.yaml").read_text()
    assert trained_line(result, 8).startswith("trained 4 steps (steps 5 to 8) in ")
    # resumed at its end: nothing to train, and the closing line says so
    again = train(tiny_config(tmp_path, "run", "train.max_steps=8", *every), resume=True, progress=False)
    assert again.start_step == again.state.step == 8
    assert trained_line(again, 8) == "trained 0 steps (resumed at step 8, train.max_steps is 8)"


def test_resume_with_another_architecture_names_the_keys(tmp_path):
    train(tiny_config(tmp_path, "run", "train.max_steps=2", "train.checkpoint_every=2"), progress=False)
    with pytest.raises(CheckpointError, match=r"cannot resume .*run: model.latent.size is 4 in the run, 8 now; "
                                              r"model.objective.beta is 1.0 in the run, 0.5 now\. .*train.init_from="):
        train(tiny_config(tmp_path, "run", "train.max_steps=4", "model.latent.size=8", "model.objective.beta=0.5"),
              resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"train.optimizer is \"adam\" in the run, \"sgd\" now"):
        train(tiny_config(tmp_path, "run", "train.max_steps=4", "train.optimizer=sgd"), resume=True, progress=False)
    # without the run's config.yaml the weights themselves tell: each mismatched parameter with both shapes
    (tmp_path / "run" / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match=r"latent.proj.weight: checkpoint has \(8, 16\), config builds \(16, 16\)"):
        train(tiny_config(tmp_path, "run", "train.max_steps=4", "model.latent.size=8"), resume=True, progress=False)
    assert not (tmp_path / "run" / "run.lock").exists()


# ---------------------------------------------------------------- data and intervals


def lines_corpus(folder, train_lines, valid_lines):
    folder.mkdir()
    short = ["the cat sat .", "a dog ran home .", "the man bought the book ."]
    for split, lines in (("train", train_lines), ("valid", valid_lines), ("test", short)):
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_an_empty_training_or_validation_split_is_a_data_error(tmp_path):
    long = ["a b c d e f g h i j k l m n o p"] * 20
    short = ["the cat sat .", "a dog ran home ."] * 10
    empty_train = lines_corpus(tmp_path / "d1", long, short)
    with deadline(120):
        with pytest.raises(DataError, match=r"no train example is left after length handling \(0 of 20 sentences kept; "
                                            r"20 dropped as longer than max_length=8 \(first: sentence 0\)\); raise model.max_length"):
            train(tiny_config(tmp_path, "r1", "train.max_steps=3", "data.corpus=lines", f"data.data_dir={empty_train}",
                              "model.max_length=8", "model.overlong=drop"), progress=False)
        empty_valid = lines_corpus(tmp_path / "d2", short, long)
        with pytest.raises(DataError, match=r"no valid example is left after length handling \(0 of 20 sentences"):
            train(tiny_config(tmp_path, "r2", "train.max_steps=3", "data.corpus=lines", f"data.data_dir={empty_valid}",
                              "model.max_length=8", "model.overlong=drop"), progress=False)
    assert not (tmp_path / "r1" / "run.lock").exists()


def test_default_intervals_give_about_ten_validations_and_explicit_ones_are_kept(tmp_path, capsys):
    config = tiny_config(tmp_path, "auto", "train.max_steps=20", "train.log_every=100")
    assert config.train.eval_every is None and config.train.checkpoint_every is None  # default.yaml sets neither
    train(config, progress=False)
    assert "validation every 2 steps, a checkpoint every 2 steps (train.eval_every and train.checkpoint_every: about " \
           "10 per run)" in capsys.readouterr().out
    assert [r["step"] for r in read_log(tmp_path / "auto") if r.get("split") == "valid"] == list(range(2, 21, 2))
    train(tiny_config(tmp_path, "set", "train.max_steps=20", "train.eval_every=7", "train.checkpoint_every=15"),
          progress=False)
    assert [r["step"] for r in read_log(tmp_path / "set") if r.get("split") == "valid"] == [7, 14, 20]
    assert "validation every 7 steps, a checkpoint every 15 steps\n" in capsys.readouterr().out
    assert TrainConfig(max_steps=5).eval_every is None


# ---------------------------------------------------------------- plateau decay (He et al. 2019, Li et al. 2019)

PLATEAU = ["train.lr_schedule=plateau", "train.optimizer=sgd", "train.momentum=0.9", "train.learning_rate=0.5",
           "train.plateau_patience=2", "train.plateau_factor=0.5", "train.plateau_max_decays=2",
           "train.eval_every=2", "train.keep_checkpoints=50", "train.max_steps=40"]
# validation ELBOs at steps 2, 4, 6, ...: best at 4; steps 6 and 8 worse than 4 -> decay 1 at step 8 (reload step 4,
# reference 9.6); 10 beats the reference and is a new best; 12 and 14 worse -> decay 2 at step 14 (reload step 10),
# the second of plateau_max_decays=2: the run stops at step 14
SCRIPT = [-10.0, -9.0, -9.5, -9.6, -8.5, -8.7, -8.8] + [-1.0] * 20


def scripted_validation(monkeypatch, start=0):
    """The trainer's validation, computed as usual but reporting the ELBOs of ``SCRIPT`` from index ``start`` on."""
    import textvae.training.trainer as trainer

    real, calls = trainer.isolated_evaluation, iter(range(start, len(SCRIPT)))

    def scripted(model, loader, seed):
        return {**real(model, loader, seed), "elbo": SCRIPT[next(calls)]}

    monkeypatch.setattr(trainer, "isolated_evaluation", scripted)


def weights(path):
    return load_file(str(path / "model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_plateau_decays_reloads_the_best_weights_resets_the_optimizer_and_stops(tmp_path, monkeypatch):
    scripted_validation(monkeypatch)
    result = train(tiny_config(tmp_path, "p", *PLATEAU, "train.checkpoint_every=2"), progress=False)
    out, ckpts = tmp_path / "p", tmp_path / "p" / "checkpoints"
    records = read_log(out)
    decays = [r for r in records if r.get("event") == "lr_decay"]
    assert [(r["step"], r["lr"], r["decays"], r["reloaded_step"]) for r in decays] == [(8, 0.25, 1, 4), (14, 0.125, 2, 10)]
    stops = [r for r in records if r.get("event") == "early_stop"]
    assert [r["step"] for r in stops] == [14] and "plateau_max_decays" in stops[0]["reason"]
    assert result.state.step == 14 and result.state.stop_reason and result.state.plateau_decays == 2
    assert max(r["step"] for r in records if r.get("split") == "train") == 14  # no step after the stop
    lrs = {r["step"]: r["lr"] for r in records if r.get("split") == "train"}
    assert (lrs[8], lrs[10], lrs[14]) == (0.5, 0.25, 0.25)  # the rate of the logged steps: decays come after them
    # the checkpoint of a decay step holds the best weights (those of step 4, then 10), not the trained ones
    assert_same_weights(weights(ckpts / "step_00000008"), weights(ckpts / "step_00000004" / "best"))
    assert not torch.equal(weights(ckpts / "step_00000008")["decoder.output.weight"],
                           weights(ckpts / "step_00000006")["decoder.output.weight"])
    assert_same_weights(weights(ckpts / "step_00000014"), weights(ckpts / "step_00000010" / "best"))
    assert_same_weights(weights(out / "final"), weights(out / "best"))
    # momentum buffers exist after a plain step, and are gone after a decay (as in a re-created optimizer)
    def optimizer_state(step):
        return load_state_file(ckpts / f"step_{step:08d}" / "optimizer.safetensors")["optimizer"]["state"]
    assert len(optimizer_state(6)) > 0 and len(optimizer_state(8)) == 0 and len(optimizer_state(14)) == 0
    saved = read_trainer_state(ckpts / "step_00000012")
    assert (saved["lr"], saved["plateau_bad"], saved["plateau_decays"], saved["plateau_reference"]) == (0.25, 1, 1, 8.5)
    assert saved["best_weights"] == "best" and saved["best_step"] == 10
    # a resume of the finished run trains nothing more
    again = train(tiny_config(tmp_path, "p", *PLATEAU, "train.checkpoint_every=2"), resume=True, progress=False)
    assert again.state.step == 14
    assert_same_weights(weights(out / "final"), weights(ckpts / "step_00000014"))


def test_plateau_run_killed_and_resumed_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    config = [*PLATEAU, "train.checkpoint_every=6"]
    scripted_validation(monkeypatch)
    straight = train(tiny_config(tmp_path, "a", *config), progress=False)
    assert straight.state.step == 14
    scripted_validation(monkeypatch)
    train(tiny_config(tmp_path, "b", *config), progress=False)
    # the folder of a run killed at step 11: checkpoints 6 only, while best/ already holds step 10's weights,
    # which the decay at step 8 must not reload (it reloads step 4's, kept in checkpoint 6)
    ckpts = tmp_path / "b" / "checkpoints"
    for name in ("step_00000012", "step_00000014"):
        shutil.rmtree(ckpts / name)
    shutil.rmtree(tmp_path / "b" / "final")
    assert read_trainer_state(ckpts / "step_00000006")["best_step"] == 4
    assert not torch.equal(weights(tmp_path / "b" / "best")["decoder.output.weight"],
                           weights(ckpts / "step_00000006" / "best")["decoder.output.weight"])
    scripted_validation(monkeypatch, start=3)  # validations at steps 2, 4 and 6 came before the checkpoint
    resumed = train(tiny_config(tmp_path, "b", *config), resume=True, progress=False)
    assert resumed.state.step == 14 and resumed.state.plateau_decays == 2 and resumed.state.lr == 0.125
    assert_same_weights(weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final"))
    assert_same_weights(weights(tmp_path / "a" / "best"), weights(tmp_path / "b" / "best"))


def test_plateau_resume_with_a_new_learning_rate_keeps_the_runs_decays(tmp_path, monkeypatch):
    config = [*PLATEAU, "train.checkpoint_every=2"]
    scripted_validation(monkeypatch)
    train(tiny_config(tmp_path, "p", *config), progress=False)
    ckpts = tmp_path / "p" / "checkpoints"
    assert read_trainer_state(ckpts / "step_00000012")["lr"] == 0.25  # 0.5 after one decay
    shutil.rmtree(ckpts / "step_00000014")
    shutil.rmtree(tmp_path / "p" / "final")
    scripted_validation(monkeypatch, start=6)  # resumed at step 12: the validation at 14 is the seventh
    resumed = train(tiny_config(tmp_path, "p", *config, "train.learning_rate=1.0"), resume=True, progress=False)
    lrs = {r["step"]: r["lr"] for r in read_log(tmp_path / "p") if r.get("split") == "train"}
    assert lrs[14] == 0.5  # the new starting rate 1.0 after the run's one decay, not the old 0.25
    assert resumed.state.step == 14 and resumed.state.plateau_decays == 2 and resumed.state.lr == 0.25
    # resumed once more from checkpoint 12 (as after a kill before the next checkpoint): config.yaml already says
    # 1.0, but checkpoint 12's rate is relative to 0.5, which it records
    assert read_trainer_state(ckpts / "step_00000012")["lr_base"] == 0.5
    shutil.rmtree(ckpts / "step_00000014")
    shutil.rmtree(tmp_path / "p" / "final")
    scripted_validation(monkeypatch, start=6)
    again = train(tiny_config(tmp_path, "p", *config, "train.learning_rate=1.0"), resume=True, progress=False)
    lrs = {r["step"]: r["lr"] for r in read_log(tmp_path / "p") if r.get("split") == "train"}
    assert lrs[14] == 0.5 and again.state.lr == 0.25 and again.state.lr_base == 1.0


def test_resume_refuses_changed_optimizer_settings_its_state_would_overwrite(tmp_path):
    train(tiny_config(tmp_path, "s", "train.optimizer=sgd", "train.max_steps=2", "train.checkpoint_every=2"),
          progress=False)
    for key, value, shown in (("momentum", "0.9", "0.0 in the run, 0.9 now"),
                              ("weight_decay", "0.01", "0.0 in the run, 0.01 now")):
        with pytest.raises(CheckpointError, match=rf"train\.{key} is {shown}"):
            train(tiny_config(tmp_path, "s", "train.optimizer=sgd", "train.max_steps=4", f"train.{key}={value}"),
                  resume=True, progress=False)
    # a config.yaml rewritten since (by a fresh run in the folder) cannot hide it: the checkpoint's optimizer state says
    saved = (tmp_path / "s" / "config.yaml").read_text()
    (tmp_path / "s" / "config.yaml").write_text(saved.replace("momentum: 0.0", "momentum: 0.9"))
    with pytest.raises(CheckpointError, match=r"its optimizer ran with \{'momentum': 0.0, 'nesterov': False, "
                                              r"'weight_decay': 0.0\}, this run's config asks for \{'momentum': 0.9"):
        train(tiny_config(tmp_path, "s", "train.optimizer=sgd", "train.max_steps=4", "train.momentum=0.9"),
              resume=True, progress=False)


def test_plateau_rule_counts_bad_validations_in_a_row_and_waits_for_plateau_start():
    from textvae.training.trainer import TrainerState, plateau_update

    config = TrainConfig(lr_schedule="plateau", learning_rate=1.0, plateau_patience=2, plateau_start=10,
                         plateau_max_decays=0)
    state = TrainerState()
    decisions = []
    for step, loss in [(1, 5.0), (2, 6.0), (3, 5.0), (4, 6.0), (5, 7.0), (11, 7.0), (12, 6.5), (13, 6.6), (14, 6.7)]:
        state.step = step
        decisions.append(plateau_update(state, config, loss))
    # 3: equal to the reference counts as no worse (the papers' `loss > best` test); 5: two bad in a row but before
    # plateau_start; 11: the third bad one decays; 12 beats the new reference (7.0); 13, 14 decay again
    assert decisions == [False, False, False, False, False, True, False, False, True]
    assert state.lr == 0.25 and state.plateau_decays == 2 and state.stop_reason is None
    assert learning_rate(config, 100, state.lr) == 0.25 and learning_rate(config, 100) == 1.0


def test_sgd_gets_momentum_0_unless_asked(tmp_path, monkeypatch):
    made = []
    real = torch.optim.SGD

    class SpySGD(real):
        def __init__(self, params, **kwargs):
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", SpySGD)
    train(tiny_config(tmp_path, "sgd", "train.max_steps=1", "train.optimizer=sgd"), progress=False)
    train(tiny_config(tmp_path, "nesterov", "train.max_steps=1", "train.optimizer=sgd", "train.momentum=0.9",
                      "train.nesterov=true"), progress=False)
    assert [(k["momentum"], k["nesterov"]) for k in made] == [(0.0, False), (0.9, True)]
    with pytest.raises(ConfigError, match="train.momentum .* apply to train.optimizer sgd only"):
        tiny_config(tmp_path, "adam", "train.momentum=0.9")
    with pytest.raises(ConfigError, match="train.nesterov needs train.momentum > 0"):
        tiny_config(tmp_path, "n", "train.optimizer=sgd", "train.nesterov=true")
