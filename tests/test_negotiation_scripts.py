"""The negotiation example and benchmarks run end to end with tiny models and a tiny data folder:
examples/negotiate.py (self-play printed, and a person's game read from stdin), scripts/benchmarks/selfplay_speed.py
and scripts/benchmarks/dealornodeal.py at a tiny budget."""

import io
import json
import math

import torch

from tests.test_benchmarks import ROOT, load_script
from tests.test_dealornodeal import write_folder
from tests.test_latent_action import CONFIGS, data  # noqa: F401  (the tiny data fixture)
from textvae.models import build_model


def load_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("negotiate_example", ROOT / "examples" / "negotiate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_folders(data, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    build_model(CONFIGS["word"](), data.tokenizer).save_pretrained(tmp_path / "word")
    build_model(CONFIGS["larl_cat"](), data.tokenizer).save_pretrained(tmp_path / "larl")
    folder = write_folder(tmp_path / "dnd")
    (folder / "selfplay_eval.txt").write_text((folder / "selfplay.txt").read_text())
    return tmp_path / "word", tmp_path / "larl", folder


def test_negotiate_example_prints_games_and_plays_a_person(data, tmp_path, capsys, monkeypatch):  # noqa: F811
    word, larl, folder = tiny_folders(data, tmp_path)
    example = load_example()
    assert example.main([str(larl), "--partner", str(word), "--games", "2", "--max-turns", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== game") == 2 and out.count("A goal:") == 2 and "selects:" in out and "2 games: A" in out
    assert example.main([str(word), "--goals", str(folder / "selfplay_eval.txt"), "--games", "1"]) == 0
    assert "A goal: 1 book worth 0, 4 hats worth 2, 1 ball worth 2" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("i want the hats\n<selection>\n9 9 9\n0 1 0\n"))
    assert example.main([str(word), "--human", "--max-turns", "4"]) == 0
    out = capsys.readouterr().out
    assert "your goal:" in out and "you: i want the hats" in out and "you selects: 0 book, 1 hat, 0 ball" in out
    pair = example.random_pair(__import__("random").Random(1))
    assert all(sum(c * v for c, v in zip(g.counts, g.values)) == 10 for g in pair)


def test_selfplay_speed_times_batched_single_and_rl(data, tmp_path, monkeypatch):  # noqa: F811
    from textvae.training import rl

    steps = []
    real_step = rl.SupervisedUpdates.step
    monkeypatch.setattr(rl.SupervisedUpdates, "step", lambda self: steps.append(1) or real_step(self))
    word, larl, folder = tiny_folders(data, tmp_path)
    speed = load_script("selfplay_speed")
    out = tmp_path / "speed.json"
    assert speed.main(["--model", str(larl), "--partner", str(word), "--goals", str(folder / "selfplay.txt"),
                       "--games", "2", "--single-games", "1", "--rl-episodes", "2", "--episodes-per-update", "2",
                       "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["batched_episodes_per_s"] > 0 and row["single_episodes_per_s"] > 0 and row["rl_episodes"] == 2
    assert row["rl_minutes_for_16344_episodes"] == 16344 / row["rl_episodes_per_s"] / 60
    assert row["rl_supervised_every"] == 0 and row["threads"] == 1 and not steps
    # word RL with its supervised updates (read from --data-dir), on two threads
    assert speed.main(["--model", str(word), "--goals", str(folder / "selfplay.txt"), "--games", "2",
                       "--single-games", "1", "--rl-episodes", "4", "--episodes-per-update", "4", "--threads", "2",
                       "--data-dir", str(folder), "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["rl_supervised_every"] == 4 and row["rl_episodes"] == 4 and row["threads"] == 2
    assert len(steps) == 1  # one supervised update per 4 games


def test_dealornodeal_benchmark_at_a_tiny_budget(data, tmp_path):  # noqa: F811
    _, _, folder = tiny_folders(data, tmp_path)
    bench = load_script("dealornodeal")
    out = tmp_path / "dnd.json"
    tiny = ["model.encoder.embedding_size=4", "model.encoder.hidden_size=4", "model.decoder.embedding_size=4",
            "model.decoder.hidden_size=8", "model.dialogue.context_hidden_size=8", "model.latent.size=4"]
    args = ["--data-dir", str(folder), "--output-dir", str(tmp_path / "run"), "--steps", "1", "--rl-episodes", "2",
            "--episodes-per-update", "2", "--eval-games", "1", "--test-games", "1", "--json", str(out), "--set", *tiny]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    assert list(report["rows"]) == bench.ROWS and set(report["published"]) == {"lewis2017_supervised_selfplay"}
    row = report["rows"]["rl_latent_gauss"]
    assert row["seeds"] == 1 and row["test_ppl"] > 1 and row["selfplay_eval"]["games"] == 1
    assert math.isnan(row["test_selection_accuracy"])  # the tiny test split has no agreed split
    assert {"reward", "agreement", "pareto", "turns", "unique_words", "language_ppl"} <= set(row["test_goals"])
    assert "data.txt minus" in report["data_note"]
    assert bench.main(args + ["--resume"]) == 0  # everything kept: the same table
    assert json.loads(out.read_text())["rows"] == report["rows"]


def test_negotiate_example_names_bad_input_without_a_traceback(data, tmp_path):  # noqa: F811
    import subprocess
    import sys

    word, _, _ = tiny_folders(data, tmp_path)
    for args, message in [([str(tmp_path / "missing")], "model folder not found"),
                          ([str(word), "--temperature", "0"], "temperature must be positive")]:
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "negotiate.py"), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: ") and message in done.stderr
