"""dSentences benchmark: train text VAEs with different bottlenecks and objectives through the library trainer, then
print one table of reconstruction, KL and every disentanglement metric (mean and per factor), beside the ceiling a
perfect text encoder reaches; write everything as JSON.

    python scripts/benchmarks/dsentences.py --steps 3000 --out runs/bench_dsentences/results.json

``--dci-max-values 3`` computes DCI over the eight factors with at most three values (disentanglement_lib's DCI of
those factor columns); its gradient-boosted trees take about 1.5 hours per model on the 1,100-valued verb_obj_tuple.

Models: an autoencoder (beta = 0), a VAE, a free-bits VAE, beta-VAE, capacity-controlled VAE, beta-TCVAE (Gaussian
latents), the discrete VAE with one categorical variable per factor (category sizes = the factors' numbers of
values, as ``configs/dsentences_discrete.yaml``), and a joint VAE (Gaussian dimensions + categorical variables for the
small factors). Every model shares the encoder/decoder sizes and word dropout; each trains with
``textvae.training.train`` (the trainer of ``scripts/train_text_vae.py``), its run folder under ``--runs``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from textvae import TextVAE
from textvae.cli import run_script
from textvae.config import Config, ModelConfig, from_dict
from textvae.data.batching import SentenceDataset
from textvae.data.dsentences import FACTORS_NUM_VALUES, DSentences
from textvae.data.pipeline import PreparedData, prepare_data
from textvae.evaluation.disentanglement import evaluate_disentanglement, format_scores, metric_ceilings, model_encode_fn
from textvae.training.trainer import train

GAUSSIAN = {"type": "gaussian", "size": 10}
CATEGORICAL = {"temperature": 1.0, "temperature_min": 0.5, "temperature_anneal_rate": 5e-4}
MODELS = {
    "ae": {"latent": GAUSSIAN, "objective": {"beta": 0.0}},
    "vae": {"latent": GAUSSIAN, "objective": {"beta": 1.0, "kl_schedule": "linear", "kl_warmup_steps": 1000}},
    "free_bits": {"latent": GAUSSIAN, "objective": {"beta": 1.0, "free_bits": 1.0}},
    "beta_vae": {"latent": GAUSSIAN, "objective": {"beta": 4.0, "kl_schedule": "linear", "kl_warmup_steps": 1000}},
    "capacity": {"latent": GAUSSIAN, "objective": {"capacity": 15.0, "capacity_steps": 1500, "capacity_gamma": 10.0}},
    "tcvae": {"latent": GAUSSIAN, "objective": {"tcvae": True, "beta": 6.0, "tc_estimator": "mss",
                                                "kl_schedule": "linear", "kl_warmup_steps": 1000}},
    "discrete": {"latent": {"type": "gumbel", "category_sizes": FACTORS_NUM_VALUES, **CATEGORICAL},
                 "objective": {"discrete_capacity": 10.0, "discrete_capacity_steps": 1500, "capacity_gamma": 10.0}},
    "joint": {"latent": {"type": "joint", "size": 4, "category_sizes": FACTORS_NUM_VALUES[1:], **CATEGORICAL},
              "objective": {"capacity": 8.0, "discrete_capacity": 5.0, "capacity_steps": 1500, "capacity_gamma": 10.0}},
}


def model_config(name: str, hidden: int, dataset_size: int, word_dropout: float = 0.0) -> ModelConfig:
    """The benchmark's model ``name``: a small LSTM encoder/decoder around the bottleneck and objective above."""
    spec = json.loads(json.dumps(MODELS[name]))
    if spec["objective"].get("tcvae"):
        spec["objective"]["tc_dataset_size"] = dataset_size
    return from_dict(ModelConfig, {
        "encoder": {"type": "lstm", "embedding_size": 64, "hidden_size": hidden},
        "decoder": {"type": "lstm", "embedding_size": 64, "hidden_size": hidden, "z_mode": "init+concat",
                    "word_dropout": word_dropout},
        "max_length": 12,
        **spec,
    }, prefix="model.")


def run_config(name: str, args: argparse.Namespace, dataset_size: int) -> Config:
    """One benchmark run as a trainer config."""
    config = Config()
    config.model = model_config(name, args.hidden, dataset_size, args.word_dropout)
    config.data.corpus, config.data.data_dir, config.data.batch_size = "dsentences", args.data_dir, args.batch_size
    tc = config.train
    tc.output_dir = str(Path(args.runs) / name)
    tc.max_steps, tc.learning_rate = args.steps, args.lr
    tc.eval_every = tc.checkpoint_every = args.steps
    tc.log_every = 100
    tc.cpu_threads = args.cpu_threads
    config.seed = args.seed
    return config


def dci_factor_indices(max_values: int | None) -> list[int]:
    """The factors DCI is computed over: those with at most ``max_values`` values (every factor when None)."""
    chosen = [k for k, n in enumerate(FACTORS_NUM_VALUES) if max_values is None or n <= max_values]
    if not chosen:
        raise SystemExit(f"--dci-max-values {max_values} leaves no factor (the smallest has {min(FACTORS_NUM_VALUES)} values)")
    return chosen


def with_small_valid(data: PreparedData, size: int) -> PreparedData:
    """The same data with the first ``size`` valid sentences only: validation during training stays cheap."""
    datasets = dict(data.datasets, valid=SentenceDataset(data.datasets["valid"].token_ids[:size]))
    return dataclasses.replace(data, datasets=datasets)


@torch.no_grad()
def reconstruction_and_kl(model: TextVAE, sentences: list[str], batch_size: int = 256) -> dict:
    """Exact-match and token accuracy of greedy reconstructions from posterior modes; mean KL (nats)."""
    model.eval()
    recon = model.reconstruct(sentences)
    exact = float(np.mean([a == b for a, b in zip(recon, sentences)]))
    tokens = [np.mean([x == y for x, y in zip(a.split(), b.split())]) if len(a.split()) == len(b.split()) else 0.0
              for a, b in zip(recon, sentences)]
    kls = []
    for start in range(0, len(sentences), batch_size):
        ids, lengths = model.tokenize(sentences[start : start + batch_size])
        kls.append(model.latent.kl_per_dim(model.posterior(ids, lengths)).sum(-1))
    return {"exact_match": exact, "token_accuracy": float(np.mean(tokens)), "kl": float(torch.cat(kls).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--word-dropout", type=float, default=0.3, help="decoder word dropout, every model")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--valid-sentences", type=int, default=5000, help="validation during training")
    parser.add_argument("--eval-points", type=int, nargs=2, default=[10000, 5000], help="MIG/DCI/SAP train, test")
    parser.add_argument("--score-points", type=int, nargs=2, default=[10000, 5000],
                        help="beta-VAE/FactorVAE train, eval points (disentanglement_lib: 10000, 5000)")
    parser.add_argument("--dci-estimator", default="gbt", choices=["gbt", "logistic"],
                        help="gbt: disentanglement_lib's gradient-boosted trees (hours on dSentences' 1,100-valued "
                             "factor at 10,000 points); logistic: a linear importance, minutes (not comparable)")
    parser.add_argument("--dci-max-values", type=int, default=None,
                        help="compute DCI over the factors with at most this many values only (3: all but the "
                             "1,100-valued verb_obj_tuple, whose trees take ~1.5 h per model), as disentanglement_lib's "
                             "DCI on data with just those factors; the other metrics keep every factor")
    parser.add_argument("--recon-sentences", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/bench_dsentences", help="one trainer run folder per model here")
    parser.add_argument("--out", default="runs/bench_dsentences/results.json")
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="torch threads (0: the machine's cores); 1 when other jobs share the CPU")
    parser.add_argument("--progress", action="store_true", help="the trainer's progress bar")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)  # the metrics' encoding too, not only the trainer's steps
    data = DSentences(args.data_dir)
    args.data_dir = str(data.folder)
    prepared = prepare_data(run_config("ae", args, 0).data, 12)
    train_data = with_small_valid(prepared, args.valid_sentences)
    test_sentences = prepared.sentences("test")[: args.recon_sentences]
    dci_factors = dci_factor_indices(args.dci_max_values)
    metric_args = dict(num_train=args.eval_points[0], num_eval=args.eval_points[1], score_points=tuple(args.score_points),
                       seed=args.seed, dci_estimator=args.dci_estimator, dci_factors=dci_factors)
    dci_names = [data.factor_names[k] for k in dci_factors]
    print(f"DCI over {len(dci_names)} of {data.num_factors} factors: {', '.join(dci_names)}", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after every model, so a long run's finished rows survive an interruption
        out.write_text(json.dumps(results, indent=1, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))

    results: dict = {"args": vars(args), "dci_factors": dci_names}
    start = time.perf_counter()
    results["ceiling"] = metric_ceilings(data, **metric_args)
    print("ceiling (oracle text encoder)\n" + format_scores(results["ceiling"]), flush=True)
    write()
    for name in args.models:
        config = run_config(name, args, len(prepared.datasets["train"]))
        run = train(config, data=train_data, progress=args.progress)
        model = TextVAE.from_pretrained(run.final_dir)
        train_s = run.seconds
        summary = reconstruction_and_kl(model, test_sentences)
        encode_fn, categorical = model_encode_fn(model)
        metric_start = time.perf_counter()
        metrics = evaluate_disentanglement(encode_fn, data, categorical=categorical, **metric_args)
        metric_s = time.perf_counter() - metric_start
        results[name] = {"train_seconds": train_s, "metric_seconds": metric_s, "valid": run.valid, **summary, **metrics}
        print(f"\n{name}: valid ELBO {run.valid['elbo']:.2f}, exact match {summary['exact_match']:.3f}, "
              f"token acc {summary['token_accuracy']:.3f}, KL {summary['kl']:.2f}, trained {train_s:.0f}s, "
              f"metrics {metric_s:.0f}s\n"
              + format_scores(metrics), flush=True)
        write()
    results["seconds"] = time.perf_counter() - start

    rows = [("model", "exact", "tok_acc", "KL", "betaVAE", "FactorVAE", "MIG", "DCI-D", "DCI-C", "DCI-I", "SAP")]
    for name in ["ceiling", *args.models]:
        r = results[name]
        cells = [r.get("exact_match", math.nan), r.get("token_accuracy", math.nan), r.get("kl", math.nan),
                 r["beta_vae"]["score"], r["factor_vae"]["score"], r["mig"]["score"], r["dci"]["disentanglement"],
                 r["dci"]["completeness"], r["dci"]["informativeness"], r["sap"]["score"]]
        rows.append((name, *[f"{c:.3f}" for c in cells]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n" + "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows))
    print(f"DCI over: {', '.join(dci_names)}")
    write()
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(run_script(main))
