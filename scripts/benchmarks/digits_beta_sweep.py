"""The seed experiment on digits (issue 17): beta swept from 1e-6 to 1e3 in x10 steps at latent sizes 2, 3 and 5,
each a short run of configs/digits_vae.yaml through the library trainer; one figure with, per beta, reconstructions
and loss curves, the aggregate posterior q(z) (one posterior sample per training image) drawn against the prior
N(0, I), and, per beta and latent size, the mean Frobenius distance between each image's posterior covariance
diag(sigma_i^2) and the empirical covariance of the posterior means. JSON out.

    OMP_NUM_THREADS=1 python scripts/benchmarks/digits_beta_sweep.py --json runs/digits_beta_sweep/results.json
    python scripts/benchmarks/digits_beta_sweep.py --smoke --json /tmp/sweep.json --figure /tmp/sweep.png  # seconds

The statistics use the 1,439 training images: the aggregate posterior is the mixture of their posteriors. By the law
of total covariance its covariance is E[diag(sigma_i^2)] + Cov(mu): where the two terms are close in Frobenius norm,
neither the spread of the means nor the width of each posterior makes the aggregate posterior's shape alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the library of this checkout, installed or not

from textvae import load_pretrained  # noqa: E402
from textvae.cli import run_script  # noqa: E402
from textvae.config import load_config  # noqa: E402
from textvae.data.pipeline import prepare_data  # noqa: E402
from textvae.training.trainer import train  # noqa: E402

BETAS = [10.0 ** e for e in range(-6, 4)]
SIZES = [2, 3, 5]


def run_config(size: int, beta: float, args):
    """configs/digits_vae.yaml with this latent size and beta, the sweep's budget and one validation at the end."""
    return load_config(ROOT / "configs" / "digits_vae.yaml", [
        f"model.latent.size={size}", f"model.objective.beta={beta!r}", f"train.max_steps={args.steps}",
        f"train.output_dir={Path(args.runs) / f'z{size}_beta{beta:g}'}", f"train.cpu_threads={args.threads}",
        f"train.log_every={args.log_every}", f"train.eval_every={args.steps}", f"train.checkpoint_every={args.steps}",
        f"seed={args.seed}"])


@torch.no_grad()
def posterior_statistics(model, images: torch.Tensor, seed: int) -> dict:
    """Posterior means mu (N, D), standard deviations sigma (N, D), one sample each, and the mean over images of
    ||diag(sigma_i^2) - Cov(mu)||_F with Cov(mu) the empirical (N - 1) covariance of the means."""
    q = model.posterior(model.as_images(images))
    mu, sigma = q.loc.double(), q.scale.double()
    cov_mu = torch.atleast_2d(torch.cov(mu.T))
    distance = torch.linalg.matrix_norm(torch.diag_embed(sigma**2) - cov_mu, ord="fro")
    generator = torch.Generator().manual_seed(seed)
    sample = mu + sigma * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    return {"frobenius": float(distance.mean()), "frobenius_std": float(distance.std()),
            "cov_mu_trace": float(cov_mu.trace()), "mean_sigma2_trace": float((sigma**2).sum(-1).mean()),
            "mu": mu.numpy(), "sample": sample.numpy()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", type=float, nargs="+", default=BETAS)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps per run (batch 64: 36 epochs at 800)")
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="train.cpu_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/digits_beta_sweep")
    parser.add_argument("--json", default="runs/digits_beta_sweep/results.json")
    parser.add_argument("--figure", default="docs/digits_beta_sweep.png")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure from an earlier run's JSON and its .npz (posterior samples, reconstructions)")
    parser.add_argument("--smoke", action="store_true", help="tests: 3 steps, beta 10, latent size 2")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.log_every, args.betas, args.sizes = 3, 1, [10.0], [2]
    out = Path(args.json)
    if args.plot_only:
        results = json.loads(out.read_text())
        with np.load(out.with_suffix(".npz")) as saved:
            arrays = {key: {name: saved[f"{key}/{name}"] for name in ("sample", "reconstructions")}
                      for key in results["runs"]}
            originals = saved["originals"]
        args.betas, args.sizes = results["args"]["betas"], results["args"]["sizes"]
        figure(results, arrays, originals, args)
        return results
    data = prepare_data(run_config(args.sizes[0], args.betas[0], args).data)
    train_images = data.datasets["train"].images()
    shown = data.datasets["test"].images(np.arange(8))
    results: dict = {"args": vars(args), "train_images": len(train_images), "runs": {}}
    arrays: dict = {}
    start = time.perf_counter()
    for size in args.sizes:
        for beta in args.betas:
            run = train(run_config(size, beta, args), data=data, progress=False)
            model = load_pretrained(run.final_dir)
            stats = posterior_statistics(model, train_images, args.seed)
            log = [json.loads(line) for line in (run.output_dir / "log.jsonl").read_text().splitlines()]
            curve = [(line["step"], line["loss"], line["rec"], line["kl"]) for line in log if line.get("split") == "train"]
            key = f"z{size}_beta{beta:g}"
            arrays[key] = {"sample": stats.pop("sample"), "mu": stats.pop("mu"),
                           "reconstructions": model.reconstruct(shown).cpu().numpy()}
            results["runs"][key] = {"size": size, "beta": beta, "steps": run.state.step, "train_seconds": run.seconds,
                                    "valid_rec": run.valid["rec"], "valid_kl": run.valid["kl"],
                                    "active_units": run.valid["active_units"], **stats, "curve": curve}
            print(f"z {size} beta {beta:g}: rec {run.valid['rec']:.2f} KL {run.valid['kl']:.2f} "
                  f"AU {run.valid['active_units']}/{size} Frobenius {stats['frobenius']:.3f} ({run.seconds:.1f} s)",
                  flush=True)
    results["seconds"] = time.perf_counter() - start
    originals = model.as_images(shown).cpu().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    np.savez_compressed(out.with_suffix(".npz"), originals=originals,
                        **{f"{key}/{name}": value for key, entry in arrays.items() for name, value in entry.items()})
    figure(results, arrays, originals, args)
    return results


def figure(results: dict, arrays: dict, originals: np.ndarray, args) -> Path:
    """One PNG: a row per beta (reconstructions for each latent size, rec and KL curves, q(z) against N(0, I) for
    the smallest and largest size's first two dimensions), the Frobenius distance against beta below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from textvae.evaluation.images import image_grid

    betas, sizes = args.betas, args.sizes
    scatter_sizes = sorted({sizes[0], sizes[-1]})
    columns = len(sizes) + 1 + len(scatter_sizes)
    fig = plt.figure(figsize=(2.1 * columns, 1.55 * (len(betas) + 1) + 2.2))
    grid = fig.add_gridspec(len(betas) + 2, columns, height_ratios=[0.5] + [1] * len(betas) + [2.2])
    colours = dict(zip(sizes, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    for c, size in enumerate(sizes):
        ax = fig.add_subplot(grid[0, c])
        ax.imshow(image_grid(originals, len(originals)), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"test images / z size {size}", fontsize=8)
        ax.axis("off")
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((500, 2))
    for r, beta in enumerate(betas, start=1):
        for c, size in enumerate(sizes):
            ax = fig.add_subplot(grid[r, c])
            recon = arrays[f"z{size}_beta{beta:g}"]["reconstructions"]
            ax.imshow(image_grid(recon, len(recon)), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"β = {beta:g}", fontsize=9)
        ax = fig.add_subplot(grid[r, len(sizes)])
        for size in sizes:
            curve = np.array(results["runs"][f"z{size}_beta{beta:g}"]["curve"])
            if len(curve):
                ax.plot(curve[:, 0], curve[:, 2], color=colours[size], lw=1)
                ax.plot(curve[:, 0], np.maximum(curve[:, 3], 1e-3), color=colours[size], lw=1, ls="--")
        ax.set_yscale("log")
        ax.tick_params(labelsize=6)
        if r == 1:
            ax.set_title("train rec (—), KL (--); colours: size", fontsize=7)
        for c, size in enumerate(scatter_sizes, start=len(sizes) + 1):
            ax = fig.add_subplot(grid[r, c])
            sample = arrays[f"z{size}_beta{beta:g}"]["sample"]
            ax.scatter(prior[:, 0], prior[:, 1], s=1, color="0.75", lw=0)
            ax.scatter(sample[:, 0], sample[:, 1 if size > 1 else 0], s=1, color=colours[size], lw=0)
            for radius in (1, 2, 3):
                ax.add_patch(plt.Circle((0, 0), radius, fill=False, lw=0.5, color="0.4"))
            lim = max(4.0, float(np.percentile(np.abs(sample[:, :2]), 99)) * 1.1)
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            if r == 1:
                ax.set_title(f"q(z) z{size} dims 1-2 vs N(0, I)", fontsize=8)
    ax = fig.add_subplot(grid[-1, :])
    for size in sizes:
        values = [results["runs"][f"z{size}_beta{beta:g}"]["frobenius"] for beta in betas]
        ax.plot(betas, values, "o-", color=colours[size], label=f"z size {size}")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel("mean ||diag(σᵢ²) − Cov(μ)||_F")
    ax.set_title(f"digits, {results['runs'][next(iter(results['runs']))]['steps']} steps per run, "
                 f"{results['train_images']} training images", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(args.figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(run_script(main))
