import json
import math
import runpy
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from textvae.config import Config, DataConfig, save_config
from textvae.evaluation.commands import evaluate_main
from textvae.evaluation.plots import (
    curve_panels,
    pca_2d,
    plot_kl_per_dim,
    plot_latent_map,
    plot_training_curves,
    read_log,
)

from .conftest import SENTENCES

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"



def training_log(path: Path) -> Path:
    lines = []
    for step in range(50, 1001, 50):
        kl = 20 * math.exp(-step / 200) + 2
        lines.append({"step": step, "split": "train", "loss": 30 - step / 100, "rec": 25 - step / 100, "kl": kl,
                      "kl_weight": min(1.0, step / 500), "lr": 0.001})
        if step % 250 == 0:
            lines.append({"step": step, "split": "valid", "elbo": -(24 - step / 100 + kl), "rec": 24 - step / 100,
                          "kl": kl, "active_units": 4 + step // 250})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    return path


def is_png(path: Path, min_size=(200, 200)) -> bool:
    image = matplotlib.image.imread(path)
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] >= min_size[1] and image.shape[1] >= min_size[0]


def test_training_curves_read_the_jsonl_log(tmp_path):
    log = training_log(tmp_path / "log.jsonl")
    records = read_log(log)
    assert len(records) == 24
    panels = {name: (train, valid) for name, train, valid in curve_panels(records)}
    assert list(panels) == ["ELBO (nats per sentence)", "reconstruction (nats)", "KL (nats)", "KL weight",
                            "active units"]
    train_elbo = panels["ELBO (nats per sentence)"][0]
    assert train_elbo[0][0] == 50 and train_elbo[1][0] == pytest.approx(-(records[0]["rec"] + records[0]["kl"]))
    assert panels["active units"][1] == ([250, 500, 750, 1000], [5, 6, 7, 8])
    assert panels["KL weight"][1] == ([], [])
    out = plot_training_curves(log, tmp_path / "figs" / "curves.png", title="run")
    assert is_png(out, (900, 500))
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        read_log(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="no train or valid records"):
        plot_training_curves([{"step": 1, "split": "test", "x": 1}], tmp_path / "none.png")


def test_kl_bars_and_latent_maps(tmp_path):
    kl = torch.tensor([0.8, 0.0, 0.3, 0.01])
    assert is_png(plot_kl_per_dim(kl, tmp_path / "kl.png", unit_variances=[0.5, 0.0, 0.2, 0.001]))
    assert is_png(plot_kl_per_dim(kl.tolist(), tmp_path / "kl_plain.png"))
    means = torch.randn(300, 5)
    categories = np.array(["question", "statement"])[np.arange(300) % 2]
    assert is_png(plot_latent_map(means, tmp_path / "map.png", labels=categories, label_name="type"))
    assert is_png(plot_latent_map(means, tmp_path / "map_len.png", labels=np.arange(300) % 37, label_name="length"))
    assert is_png(plot_latent_map(means, tmp_path / "map_sub.png", max_points=50))
    with pytest.raises(ValueError, match="labels for"):
        plot_latent_map(means, tmp_path / "x.png", labels=[1, 2])


def test_pca_finds_the_direction_of_largest_variance():
    generator = torch.Generator().manual_seed(0)
    t = torch.randn(500, 1, generator=generator, dtype=torch.float64)
    direction = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64) / 3
    x = t * 5 * direction + 0.1 * torch.randn(500, 3, generator=generator, dtype=torch.float64) + 7
    points, ratio = pca_2d(x)
    assert points.shape == (500, 2) and ratio[0] > 0.99 and ratio[0] + ratio[1] <= 1 + 1e-12
    assert abs(np.corrcoef(points[:, 0], t[:, 0].numpy())[0, 1]) > 0.999
    assert np.allclose(points.mean(0), 0, atol=1e-9)


def test_evaluate_writes_metrics_and_figures(tiny_model, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    folder = tiny_model.save_pretrained(run / "best")
    training_log(run / "log.jsonl")
    data = tmp_path / "corpus"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "eval"
    argv = [str(run), "--data-dir", str(data), "--split", "test", "--num-samples", "4", "--prior-samples", "6",
            "--interpolation-pairs", "2", "--output-dir", str(out), "--no-progress"]
    assert evaluate_main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_sentences"] == 8 and metrics["num_tokens"] == sum(len(s.split()) + 1 for s in SENTENCES)
    assert metrics["ppl"] == pytest.approx(math.exp(metrics["nll"] * 8 / metrics["num_tokens"]))
    assert 0 <= metrics["active_units"] <= metrics["latent_size"] == len(metrics["kl_per_dim"]) == 4
    assert metrics["kl"] == pytest.approx(sum(metrics["kl_per_dim"]))
    for key in ("mutual_information", "reconstruction_bleu", "nll_elbo", "prior_samples", "interpolation"):
        assert key in metrics
    for name in ("training_curves", "kl_per_dim", "latent_map"):
        assert is_png(Path(metrics["figures"][name]))
    assert len((out / "reconstructions.tsv").read_text().splitlines()) == 8
    assert "IW-NLL (K=4)" in capsys.readouterr().out
    # the embedded corpus by default (from the run's config.yaml when there is one), via the script
    save_config(Config(data=DataConfig(synthetic_size=100)), run / "config.yaml")
    monkeypatch.setattr(sys, "argv", ["evaluate.py", str(folder), "--num-samples", "0", "--max-sentences", "12",
                                      "--prior-samples", "4", "--interpolation-pairs", "0", "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPTS / "evaluate.py"), run_name="__main__")
    assert exit_info.value.code == 0
    metrics = json.loads((run / "eval-best-test" / "metrics.json").read_text())
    assert metrics["corpus"] == "synthetic" and metrics["num_sentences"] == 10 and "nll" not in metrics
    assert "grammatical_fraction" in metrics["prior_samples"]
    assert evaluate_main([str(folder), "--color-by", "colour", "--num-samples", "0", "--no-progress"]) == 2
    assert "not a factor" in capsys.readouterr().err
