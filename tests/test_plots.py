import json
import math
import re
import runpy
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from textvae.config import Config, DataConfig, save_config
from textvae.cli.evaluate import main as evaluate_main
from textvae.evaluation.plots import (
    curve_panels,
    kl_per_dim_figure,
    latent_map_figure,
    pca_2d,
    pca_basis,
    plot_kl_per_dim,
    plot_latent_map,
    plot_training_curves,
    read_log,
    training_curves_figure,
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


def test_pca_basis_projects_other_points_onto_the_same_plane():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean, components, ratio = pca_basis(x)
    points, ratio_2d = pca_2d(x)
    assert np.allclose((x.numpy() - mean) @ components.T, points) and np.allclose(ratio, ratio_2d)
    assert np.allclose(components @ components.T, np.eye(2))  # orthonormal directions
    _, one, _ = pca_basis(torch.randn(6, 1, dtype=torch.float64))  # one dimension: the second direction is zero
    assert one.shape == (2, 1) and one[1, 0] == 0 and abs(one[0, 0]) == 1


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
    assert metrics["ppl_per_token"] == pytest.approx(math.exp(metrics["nll"] * 8 / metrics["num_tokens"]))
    # a word-level model of whitespace-tokenized text: a token is a word, so the two perplexities agree
    assert metrics["num_words"] == metrics["num_tokens"]
    assert metrics["ppl_per_word"] == pytest.approx(metrics["ppl_per_token"], rel=1e-12)
    assert "ppl" not in metrics and metrics["ppl_elbo_per_word"] >= metrics["ppl_per_word"] * 0.999
    assert 0 <= metrics["active_units"] <= metrics["latent_size"] == len(metrics["kl_per_dim"]) == 4
    assert metrics["kl"] == pytest.approx(sum(metrics["kl_per_dim"]))
    for key in ("mutual_information", "reconstruction_bleu", "nll_elbo", "prior_samples", "interpolation"):
        assert key in metrics
    for name in ("training_curves", "kl_per_dim", "latent_map"):
        assert is_png(Path(metrics["figures"][name]))
    assert len((out / "reconstructions.tsv").read_text().splitlines()) == 8
    out = capsys.readouterr().out
    assert "IW-NLL (K=4)" in out and re.search(rf"PPL per word +{metrics['ppl_per_word']:.3f} ", out)
    assert ("warning: " in out) == bool(metrics["warnings"]) == (metrics["active_units"] == 0)
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


def test_activity_panel_draws_the_threshold_and_colours_the_active_units_as_active_units_counts_them():
    kl = torch.tensor([0.8, 0.0, 0.3, 0.5, 0.01])
    variances = [0.5, 0.0, 0.2, 0.009, 0.01]  # dim 3 holds KL but its mean barely moves: not active
    fig = kl_per_dim_figure(kl, variances)
    ax_var, ax_kl = fig.axes
    thresholds = [line for line in ax_var.get_lines() if list(line.get_ydata()) == [0.01, 0.01]]
    assert len(thresholds) == 1 and "threshold 0.01" in thresholds[0].get_label()
    assert ax_var.get_yscale() == "log"
    assert ax_var.get_title() == "active units: 3/5 (Var_x E_q[z_d] >= 0.01)"
    assert "E_q[z_d]" in ax_var.get_ylabel() and "KL" in ax_kl.get_ylabel() and ax_kl.get_xlabel()

    def blue_bars(ax):
        return sorted(round(p.get_x() + p.get_width() / 2) for p in ax.patches if p.get_facecolor()[:3] == (
            0.12156862745098039, 0.4666666666666667, 0.7058823529411765))

    assert blue_bars(ax_var) == blue_bars(ax_kl) == [0, 2, 4]  # >= threshold, as active_units_from_means
    heights = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax_kl.patches}
    assert heights[3] == pytest.approx(0.5) and heights[1] == 0.0  # the KL panel plots KL, not activity
    assert {t.get_text() for t in ax_var.get_legend().get_texts()} == {"active (3)", "inactive (2)", "threshold 0.01"}
    plain = kl_per_dim_figure(kl)
    assert len(plain.axes) == 1 and not plain.axes[0].get_lines()  # no activity given: no threshold drawn
    with pytest.raises(ValueError, match="3 unit variances for 5"):
        kl_per_dim_figure(kl, [1.0, 1.0, 1.0])


def test_latent_map_says_when_the_posterior_has_collapsed():
    generator = torch.Generator().manual_seed(0)
    collapsed = 0.3 + 0.001 * torch.randn(200, 6, generator=generator)  # Var ~1e-6 in every dimension
    title = latent_map_figure(collapsed).axes[0].get_title()
    assert title.startswith("posterior collapsed: 0/6 active units") and "< 0.01" in title
    used = collapsed.clone()
    used[:, 2] += torch.randn(200, generator=generator) * 0.2  # one dimension varies: Var 0.04
    title = latent_map_figure(used, labels=np.arange(200) % 3, label_name="type").axes[0].get_title()
    assert "collapsed" not in title and title == "posterior means (PCA) by type"


def test_a_curve_of_one_point_is_drawn_as_a_marker():
    records = [{"step": 10, "split": "train", "rec": 5.0, "kl": 1.0},
               {"step": 20, "split": "train", "rec": 4.0, "kl": 1.5},
               {"step": 20, "split": "valid", "elbo": -5.0, "rec": 4.2, "kl": 0.8, "active_units": 2}]
    fig = training_curves_figure(records)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    (point,) = panels["active units"].get_lines()
    assert point.get_linestyle() == "None" and point.get_marker() == "o" and list(point.get_xdata()) == [20]
    train, valid = panels["KL (nats)"].get_lines()
    assert train.get_linestyle() == "-" and len(train.get_xdata()) == 2
    assert valid.get_linestyle() == "None" and valid.get_marker() == "o"
