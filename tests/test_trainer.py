import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textvae import load_config, load_pretrained
from textvae.config import TrainConfig
from textvae.training.checkpoint import latest_checkpoint, list_checkpoints
from textvae.training.trainer import TrainingError, learning_rate, train

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


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    every = ["train.eval_every=4", "train.checkpoint_every=4", "train.keep_checkpoints=5"]
    # 25 training sentences per epoch at batch 16 -> the run crosses an epoch boundary and resumes mid-epoch
    straight = train(tiny_config(tmp_path, "a", "train.max_steps=10", *every), progress=False)
    first = train(tiny_config(tmp_path, "b", "train.max_steps=5", *every), progress=False)
    assert first.state.step == 5
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_00000004", "step_00000005"]
    resumed = train(tiny_config(tmp_path, "b", "train.max_steps=10", *every), resume=True, progress=False)
    assert resumed.state.step == straight.state.step == 10
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
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
    config = tiny_config(tmp_path, "nan", "train.max_steps=3", "train.learning_rate=1e30", "train.grad_clip=0", "train.optimizer=sgd")
    with pytest.raises(TrainingError, match="loss is not finite at step"):
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


def run_script(args, tmp_path, launcher=None, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
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
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}  # both processes saved
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "valid"] == [3, 6]  # written once, not once per process
    assert load_pretrained(out / "best").sample(2, seed=0)


def test_two_processes_see_different_shards_and_average_gradients(tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29532"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
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
