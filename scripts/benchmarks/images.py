"""Image VAE benchmark (the reference baselines): train VAEs with different bottlenecks and objectives on the sprites
grid through the library trainer, then one table of reconstruction, KL and every disentanglement metric beside the
oracle ceiling (``metric_ceilings``) and the published dSprites values; on digits, the IW-NLL of each model. JSON out.

    python scripts/benchmarks/images.py --steps 300000 --json runs/bench_images/results.json   # Locatello et al.'s budget
    python scripts/benchmarks/images.py --smoke --models vae beta_vae_4 --json /tmp/smoke.json  # seconds: the test's run
    python scripts/benchmarks/images.py --steps 3000 --models vae beta_vae_4 --metrics mig sap factor_vae  # no DCI

Published values: the best result each method's paper reported on dSprites, as compiled in the InfoGAN-CR paper
(Lin et al. 2020, Table 1). Locatello et al. train 300,000 steps of batch 64; state the budget a run used (``steps``
in the JSON) beside its figures, which are not converged below that. FactorVAE (a discriminator on permuted codes
with its own optimizer) is not built: the trainer steps one optimizer on one loss.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the library of this checkout, installed or not

from textvae import load_pretrained  # noqa: E402
from textvae.cli import run_script  # noqa: E402
from textvae.config import Config, DataConfig, ModelConfig, from_dict  # noqa: E402
from textvae.data.pipeline import prepare_data  # noqa: E402
from textvae.data.sprites import FACTORS_NUM_VALUES  # noqa: E402
from textvae.evaluation.disentanglement import evaluate_disentanglement, metric_ceilings, model_encode_fn  # noqa: E402
from textvae.evaluation.likelihood import image_iw_nll  # noqa: E402
from textvae.training.trainer import train  # noqa: E402

GAUSSIAN = {"type": "gaussian", "size": 10}
CATEGORICAL = {"temperature": 1.0, "temperature_min": 0.5, "temperature_anneal_rate": 1e-4}
MODELS = {
    "vae": {"latent": GAUSSIAN, "objective": {"beta": 1.0}},
    **{f"beta_vae_{b}": {"latent": GAUSSIAN, "objective": {"beta": float(b)}} for b in (2, 4, 6, 8, 16)},
    "annealed_vae": {"latent": GAUSSIAN, "objective": {"capacity": 25.0, "capacity_gamma": 1000.0,
                                                        "capacity_steps": 100000}},
    "beta_tcvae": {"latent": GAUSSIAN, "objective": {"tcvae": True, "beta": 6.0}},
    "discrete": {"latent": {"type": "gumbel", "category_sizes": FACTORS_NUM_VALUES, **CATEGORICAL},
                 "objective": {"discrete_capacity": 10.0, "discrete_capacity_steps": 100000, "capacity_gamma": 30.0}},
    "joint": {"latent": {"type": "joint", "size": 6, "category_sizes": [3], **CATEGORICAL},
              "objective": {"capacity": 25.0, "discrete_capacity": 1.1, "capacity_steps": 100000,
                            "capacity_gamma": 30.0}},
}
# InfoGAN-CR (Lin et al. 2020) Table 1, dSprites: the best each method's paper reported (None: not reported there)
PUBLISHED = {
    "vae": {"factor_vae": 0.63, "dci": 0.30, "mig": 0.10},
    "beta_vae": {"factor_vae": 0.63, "dci": 0.41, "mig": 0.21, "sap": 0.55},
    "beta_tcvae": {"factor_vae": 0.62, "dci": 0.29, "mig": 0.45},
    "factor_vae": {"factor_vae": 0.82, "dci": 0.74, "mig": 0.43, "sap": 0.56, "beta_vae": 0.84},
}
METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap")


def model_config(name: str, image: dict, dataset_size: int) -> ModelConfig:
    spec = json.loads(json.dumps(MODELS[name]))
    if spec["objective"].get("tcvae"):
        spec["objective"]["tc_dataset_size"] = dataset_size
    return from_dict(ModelConfig, {"model_type": "image_vae", "image": image, **spec}, prefix="model.")


def run_config(name: str, corpus: str, args, dataset_size: int, image: dict) -> Config:
    config = Config()
    config.model = model_config(name, image, dataset_size)
    config.data = DataConfig(corpus=corpus, batch_size=args.batch_size, eval_batch_size=256)
    if corpus == "sprites":  # digits (1,797 images) keep their default 10% splits: 5,000 would leave nothing
        config.data.images.valid_size = config.data.images.test_size = args.held_out
    tc = config.train
    tc.output_dir = str(Path(args.runs) / corpus / name)
    tc.max_steps, tc.learning_rate, tc.grad_clip = args.steps, args.lr, 0.0
    tc.eval_every = tc.checkpoint_every = max(1, args.steps)
    tc.log_every, tc.cpu_threads = max(1, min(100, args.steps)), args.threads
    config.seed = args.seed
    return config


def published_row(name: str) -> dict:
    return PUBLISHED.get("beta_vae" if name.startswith("beta_vae_") else name, {})


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS),
                        help="rows to train (none: the oracle ceiling alone)")
    parser.add_argument("--steps", type=int, default=300000, help="optimizer steps per model (Locatello et al.: 300k)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--held-out", type=int, default=5000,
                        help="sprites validation and test images each (digits: 179 each)")
    parser.add_argument("--eval-points", type=int, nargs=2, default=[10000, 5000], help="MIG/DCI/SAP train, test")
    parser.add_argument("--score-points", type=int, nargs=2, default=[10000, 5000], help="beta-VAE/FactorVAE points")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS),
                        help="disentanglement metrics to run (DCI's gradient-boosted trees are the slow one)")
    parser.add_argument("--dci-estimator", choices=["gbt", "logistic"], default="gbt",
                        help="DCI's importances: the library's gradient-boosted trees, or the fast logistic ones")
    parser.add_argument("--iw-samples", type=int, default=500, help="K of the digits IW-NLL")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits IW-NLL rows")
    parser.add_argument("--no-sprites", action="store_true", help="skip the sprites ceiling and rows (digits alone)")
    parser.add_argument("--threads", type=int, default=0, help="train.cpu_threads (0: the machine's cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/bench_images")
    parser.add_argument("--json", default="runs/bench_images/results.json")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny budget for tests: 2 steps, 32 held-out images, 150 points for MIG and SAP only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.held_out, args.iw_samples = 2, 32, 5
        args.eval_points, args.score_points, args.metrics = [100, 50], [40, 20], ["mig", "sap"]
    torch.manual_seed(args.seed)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args), "published": PUBLISHED, "published_source":
                     "InfoGAN-CR (Lin et al. 2020) Table 1: best reported per method, dSprites", "sprites": {}, "digits": {}}

    def write() -> None:
        out.write_text(json.dumps(results, indent=1, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))

    metric_args = dict(num_train=args.eval_points[0], num_eval=args.eval_points[1],
                       score_points=tuple(args.score_points), seed=args.seed, batch_size=64 if not args.smoke else 8,
                       metrics=tuple(args.metrics), dci_estimator=args.dci_estimator)
    sprites = None if args.no_sprites else prepare_data(run_config("vae", "sprites", args, 0, {}).data)
    if sprites is not None:
        results["sprites"]["ceiling"] = metric_ceilings(sprites.corpus.ground_truth, **metric_args)
        write()
    for name in args.models if sprites is not None else []:
        config = run_config(name, "sprites", args, len(sprites.datasets["train"]), {})
        run = train(config, data=sprites, progress=False)
        model = load_pretrained(run.final_dir)
        encode_fn, categorical = model_encode_fn(model)
        metrics = evaluate_disentanglement(encode_fn, sprites.corpus.ground_truth, categorical=categorical, **metric_args)
        results["sprites"][name] = {"steps": run.state.step, "train_seconds": run.seconds, "valid": run.valid,
                                    "published": published_row(name), **metrics}
        write()
    if not args.no_digits:
        digits = prepare_data(run_config("vae", "digits", args, 0, {}).data)
        test = digits.datasets["test"].images()
        for name in args.models:
            if name == "discrete" or name == "joint":  # the sprites factors' category sizes mean nothing on digits
                continue
            run = train(run_config(name, "digits", args, len(digits.datasets["train"]), {}), data=digits, progress=False)
            model = load_pretrained(run.final_dir)
            nll = image_iw_nll(model, test, num_samples=args.iw_samples, seed=args.seed)
            results["digits"][name] = {"steps": run.state.step, "iw_nll": float(nll.mean()), "iw_samples": args.iw_samples,
                                       "test_images": len(test),
                                       "valid": run.valid}
            write()
    print_table(results)
    write()
    return results


def print_table(results: dict) -> None:
    rows = [("sprites", "steps", "rec", "KL", *METRICS, "published FactorVAE/DCI/MIG/SAP")]

    def score(r, metric):
        value = r[metric]["disentanglement"] if metric == "dci" and metric in r else r.get(metric, {}).get("score", math.nan)
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    for name, r in results["sprites"].items():
        valid = r.get("valid", {})
        published = r.get("published", {})
        pub = "/".join(f"{published[m]:.2f}" if m in published else "-" for m in ("factor_vae", "dci", "mig", "sap"))
        rows.append((name, str(r.get("steps", "-")), f"{valid.get('rec', math.nan):.1f}", f"{valid.get('kl', math.nan):.2f}",
                     *[score(r, m) for m in METRICS], pub if published else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows))
    for name, r in results["digits"].items():
        print(f"digits {name}: IW-NLL (K={r['iw_samples']}) {r['iw_nll']:.3f} nats/image after {r['steps']} steps")


if __name__ == "__main__":
    sys.exit(run_script(main))
