"""PTB table: an LSTM language model, LSTM VAEs trained with the usual remedies for posterior collapse and a
transformer VAE, all of one width (embedding 256, LSTM or transformer 256, latent 32), evaluated on the PTB test
split beside the published values.

    python scripts/benchmarks/ptb.py --data-dir ../shared/data/ptb --epochs 0.25 --iw-samples 100 \\
        --test-sentences 300 --out runs/bench_ptb/results.json          # a quick CPU comparison
    python scripts/benchmarks/ptb.py --data-dir ../shared/data/ptb --epochs 30   # the papers' budget, on a GPU

Every row trains through ``textvae.training.train`` (the trainer of ``scripts/train_text_vae.py``) from
``configs/ptb_lstm_vae*.yaml``, with its schedule (annealing warm-up, cycles, capacity ramp) scaled to the budget.
NLL is the importance-weighted estimate (K = ``--iw-samples``, 500 in the papers; exact for the language model),
PPL = exp(sum NLL / sum(words + 1)), KL the analytic mean, MI with q(z) pooled over the evaluated sentences,
AU at variance 0.01 over the whole test split.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from textvae import TextVAE
from textvae.config import load_config
from textvae.data.pipeline import prepare_data
from textvae.evaluation.latent_stats import latent_statistics, mutual_information
from textvae.evaluation.likelihood import elbo_terms, importance_weighted_nll, perplexity_from_nll, predicted_tokens
from textvae.training.trainer import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Optimus appendix, Table 8 (PTB, NLL in nats per sentence; the VAE rows' NLL is approximate there)
PUBLISHED = {
    "lstm_lm": {"ppl": 100.47, "nll": 101.04},
    "annealing": {"ppl": 101.40, "mi": 0.0, "au": 0, "kl": 0.0, "nll": 101.2},
    "cyclical": {"ppl": 108.81, "mi": 1.27, "au": 5, "kl": 1.37, "nll": 102.8},
    "aggressive (He et al.)": {"ppl": 99.83, "mi": 0.83, "au": 4, "kl": 0.93, "nll": 100.9},
    "ae_free_bits": {"ppl": 96.86, "mi": 5.31, "au": 32, "kl": 6.54, "nll": 100.2},
    # texar's transformer VAE on PTB: single-sample ELBO 101.61 nats (the NLL column holds the -ELBO bound)
    "transformer": {"ppl": 103.14, "nll": 101.61},
}


def variants(steps: int) -> dict[str, tuple[str, list[str]]]:
    """Row name -> (config file, overrides). Schedules are fractions of the budget, as in the 40k-step configs."""
    warmup = f"model.objective.kl_warmup_steps={max(1, steps // 4)}"
    return {
        "lstm_lm": ("ptb_lstm_vae.yaml", ["model.latent.type=none"]),
        "annealing": ("ptb_lstm_vae.yaml", [warmup]),
        "word_dropout": ("ptb_lstm_vae.yaml", [warmup, "model.decoder.word_dropout=0.5"]),
        "cyclical": ("ptb_lstm_vae_cyclical.yaml", [f"model.objective.kl_total_steps={steps}"]),
        "free_bits": ("ptb_lstm_vae_freebits.yaml", [warmup]),
        "capacity": ("ptb_lstm_vae.yaml", ["model.objective.kl_schedule=constant", "model.objective.capacity=15",
                                           f"model.objective.capacity_steps={max(1, steps // 2)}",
                                           "model.objective.capacity_gamma=1.0"]),
        # Li et al. 2019: an autoencoder first, then its encoder with a fresh decoder, trained with free bits
        "ae_free_bits": ("ptb_lstm_vae_freebits.yaml", [warmup, "model.objective.free_bits=0.5"]),
        # texar's transformer VAE (3 blocks, 8 heads, width 256, z as one memory slot), linear annealing
        "transformer": ("ptb_transformer_vae.yaml", [warmup]),
    }


def evaluate(model: TextVAE, test: list[str], args: argparse.Namespace) -> dict:
    """The table's columns for one model on the test sentences."""
    subset = test[: args.test_sentences] if args.test_sentences else test
    language_model = model.latent.code_size == 0
    start = time.perf_counter()
    nll = importance_weighted_nll(model, subset, num_samples=1 if language_model else args.iw_samples, seed=0,
                                  progress=args.progress)
    iw_seconds = time.perf_counter() - start
    tokens = predicted_tokens(model, subset)
    elbo = elbo_terms(model, subset, seed=0)
    row = {
        "nll": float(nll.mean()),
        "ppl": perplexity_from_nll(nll, tokens),
        "elbo_nll": float(elbo.nll_bound.mean()),
        "rec": float(elbo.rec.mean()),
        "sentences": len(subset),
        "iw_samples": 1 if language_model else args.iw_samples,
        "iw_seconds": iw_seconds,
    }
    if language_model:
        return {**row, "kl": 0.0, "mi": None, "au": None}
    stats = latent_statistics(model, test, seed=0)  # AU and KL over the whole split: one encoder pass, cheap
    mi = mutual_information(model, subset, seed=0)  # pooled over the NLL subset only: it costs O(N^2 D)
    return {**row, "kl": stats.kl, "mi": mi, "au": stats.active_units}


def run_variant(name: str, args: argparse.Namespace, steps: int, data) -> dict:
    """Train one row (two runs for AE pretraining) and return its run folders and times."""
    config_file, overrides = variants(steps)[name]
    common = [f"data.data_dir={args.data_dir}", f"train.max_steps={steps}", f"train.eval_every={steps}",
              f"train.checkpoint_every={steps}", f"seed={args.seed}"]
    start = time.perf_counter()
    if name == "ae_free_bits":
        ae = load_config(CONFIGS / config_file, [*common, *overrides, "model.objective.beta=0",
                                                 "model.objective.free_bits=0", "model.objective.kl_schedule=constant",
                                                 f"train.output_dir={Path(args.runs) / 'ae_pretrain'}"])
        pretrained = train(ae, data=data, progress=args.progress)
        overrides = [*overrides, f"train.init_from={pretrained.final_dir}", "train.init_modules=[encoder]"]
    config = load_config(CONFIGS / config_file, [*common, *overrides, f"train.output_dir={Path(args.runs) / name}"])
    result = train(config, data=data, progress=args.progress)
    return {"final_dir": str(result.final_dir), "train_seconds": time.perf_counter() - start,
            "valid": result.valid, "steps": steps}


def format_table(results: dict) -> str:
    """Our rows beside the published ones, as a Markdown table."""
    def cell(value, digits=2):
        return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    lines = ["| method | PPL | MI | AU | KL | NLL | published PPL / MI / AU / KL / NLL |", "|---|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        pub = PUBLISHED.get(name)
        pub_text = " / ".join(cell(pub.get(k)) for k in ("ppl", "mi", "au", "kl", "nll")) if pub else "–"
        lines.append(f"| {name} | {cell(row['ppl'])} | {cell(row['mi'])} | {cell(row['au'])} | {cell(row['kl'])} "
                     f"| {cell(row['nll'])} | {pub_text} |")
    for name, pub in PUBLISHED.items():
        if name not in results["rows"]:
            lines.append(f"| {name} (not run) | – | – | – | – | – | "
                         + " / ".join(cell(pub.get(k)) for k in ("ppl", "mi", "au", "kl", "nll")) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--epochs", type=float, default=1.0, help="training budget per row, in epochs of PTB train")
    parser.add_argument("--rows", nargs="+", default=list(variants(1)), choices=list(variants(1)))
    parser.add_argument("--iw-samples", type=int, default=500, help="importance samples for the NLL (papers: 500)")
    parser.add_argument("--test-sentences", type=int, default=0, help="NLL and MI on the first N test sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/bench_ptb", help="one trainer run folder per row here")
    parser.add_argument("--out", default="runs/bench_ptb/results.json")
    parser.add_argument("--progress", action="store_true", help="progress bars for training and evaluation")
    args = parser.parse_args()

    config = load_config(CONFIGS / "ptb_lstm_vae.yaml", [f"data.data_dir={args.data_dir}"])
    data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
    steps_per_epoch = math.ceil(len(data.datasets["train"]) / config.data.batch_size)
    steps = max(1, round(args.epochs * steps_per_epoch))
    test = data.sentences("test")
    print(f"PTB: {len(data.datasets['train'])} training sentences, {steps_per_epoch} steps per epoch; "
          f"{steps} steps per row; test {len(test)} sentences", flush=True)

    results: dict = {"args": vars(args), "steps": steps, "rows": {}, "runs": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.rows:
        run = run_variant(name, args, steps, data)
        model = TextVAE.from_pretrained(run["final_dir"])
        results["runs"][name] = run
        results["rows"][name] = row = evaluate(model, test, args)
        print(f"{name}: trained {run['train_seconds']:.0f}s; NLL {row['nll']:.2f} PPL {row['ppl']:.2f} "
              f"KL {row['kl']:.2f} MI {row['mi'] if row['mi'] is None else round(row['mi'], 2)} AU {row['au']} "
              f"(IW K={row['iw_samples']} on {row['sentences']} sentences: {row['iw_seconds']:.0f}s)", flush=True)
        out.write_text(json.dumps(results, indent=1))  # after every row: a long run keeps what it has
    print("\n" + format_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
