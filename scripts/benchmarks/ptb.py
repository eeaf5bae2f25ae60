"""PTB table: an LSTM language model, LSTM VAEs trained with the usual remedies for posterior collapse and a
transformer VAE, all of one width (embedding 256, LSTM or transformer 256, latent 32), evaluated on the PTB test
split beside the published values.

    python scripts/benchmarks/ptb.py --data-dir ../shared/data/ptb --epochs 0.25 --iw-samples 100 \\
        --test-sentences 300 --out runs/bench_ptb/results.json          # a quick CPU comparison
    python scripts/benchmarks/ptb.py --data-dir ../shared/data/ptb --epochs 30   # the papers' budget, on a GPU
    python scripts/benchmarks/ptb.py --data-dir ../shared/data/ptb --recipe both --epochs 1   # Adam vs the papers' SGD

Every row trains through ``textvae.training.train`` (the trainer of ``scripts/train_text_vae.py``). ``--recipe adam``
(the default): from ``configs/ptb_lstm_vae*.yaml``, Adam at 1e-3, with its schedule (annealing warm-up, cycles,
capacity ramp) scaled to the budget; the model of the last step is evaluated. ``--recipe paper``: the same rows (but
the transformer's) on ``configs/ptb_lstm_{lm,vae}_paper.yaml``, the way He et al. 2019 and Li et al. 2019 train them
(plain SGD, uniform initialisation, plateau decay with best-weight reloads), with the row's objective and decoder
settings; the papers' epoch-based settings are capped to fit short budgets (KL warm-up at most a quarter of the
budget, as the adam rows; no decay before half of it; at least 10 validations), and the best validation model is
evaluated, as the papers do. ``ae_free_bits`` is Li et al.'s pipeline in both: an autoencoder (beta 0) first, then
its encoder and posterior layer beside a fresh decoder, trained with free bits (paper: the autoencoder's best model
by validation reconstruction); its two stages share the row's budget (``--ae-share``, 3/8 to the autoencoder by default, Li et
al.'s 3 + 5 epochs at 8). ``--recipe both`` runs each row with each recipe at the same budget.

NLL is the importance-weighted estimate (K = ``--iw-samples``, 500 in the papers; exact for the language model),
PPL = exp(sum NLL / sum(words + 1)), KL the analytic mean, MI with q(z) pooled over the evaluated sentences,
AU at variance 0.01 over the whole test split. ``lm_nll`` / ``lm_gap``: the language model's NLL (same recipe) and
the row's NLL minus it; ``elbo_gap``: -ELBO minus the IW NLL, how much the bound loses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from textvae import TextVAE
from textvae.cli import run_script
from textvae.config import load_config
from textvae.data.batching import BucketBatchSampler
from textvae.data.pipeline import prepare_data
from textvae.evaluation.latent_stats import latent_statistics, mutual_information
from textvae.evaluation.likelihood import elbo_terms, importance_weighted_nll, perplexity_from_nll, predicted_tokens
from textvae.training.trainer import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PAPER_LM, PAPER_VAE = "ptb_lstm_lm_paper.yaml", "ptb_lstm_vae_paper.yaml"
RECIPES = ("adam", "paper")
# what ae_free_bits keeps of its autoencoder: the whole encoder, its mu/logvar layer (the latent module) too, as
# Li et al. do (they reload the autoencoder and reset only the decoder)
PRETRAINED_MODULES = ("encoder", "latent")
# ae_free_bits' free-bits target in nats per latent dimension (16 nats over 32 dimensions)
AE_FREE_BITS = 0.5

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


def variants(steps: int, ae_free_bits: float = AE_FREE_BITS) -> dict[str, tuple[str, list[str]]]:
    """Row name -> (config file, overrides). Schedules are fractions of the budget, as in the 40k-step configs;
    ``ae_free_bits`` is that row's free-bits target per dimension."""
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
        "ae_free_bits": ("ptb_lstm_vae_freebits.yaml", [warmup, f"model.objective.free_bits={ae_free_bits}"]),
        # texar's transformer VAE (3 blocks, 8 heads, width 256, z as one memory slot), linear annealing
        "transformer": ("ptb_transformer_vae.yaml", [warmup]),
    }


def paper_variants(steps: int, ae_free_bits: float = AE_FREE_BITS) -> dict[str, tuple[str, list[str]]]:
    """The adam rows (not the transformer's) on the paper configs: each row's objective (what differs from the
    paper config's) and decoder overrides, the paper config's optimisation, its epoch-based settings capped to fit
    ``steps`` (``paper_budget``)."""
    rows = {}
    for name, (config_file, overrides) in variants(steps, ae_free_bits).items():
        if name == "transformer":  # uniform initialisation and these SGD settings are the LSTM models' recipe
            continue
        base = PAPER_LM if name == "lstm_lm" else PAPER_VAE
        paper = load_config(CONFIGS / base)
        extra = [o for o in overrides if o.startswith("model.decoder.")]
        if name != "lstm_lm":
            row = dataclasses.asdict(load_config(CONFIGS / config_file, overrides).model.objective)
            ours = dataclasses.asdict(paper.model.objective)
            extra += [f"model.objective.{key}={value if isinstance(value, str) else json.dumps(value)}"
                      for key, value in row.items()
                      if value != ours[key] and key != "kl_warmup_steps"]
        rows[name] = (base, [*paper_budget(paper, steps), *extra])
    return rows


def paper_budget(paper, steps: int) -> list[str]:
    """A paper config's epoch-based settings for a budget of ``steps``: as they are where they fit; otherwise KL
    warm-up at most a quarter of the budget (as the adam rows), the first decay at most half way, and at least 10
    validations (and checkpoints)."""
    every = min(paper.train.eval_every, max(1, steps // 10))
    out = [f"train.eval_every={every}", f"train.checkpoint_every={every}",
           f"train.plateau_start={min(paper.train.plateau_start, steps // 2)}"]
    if paper.model.objective.kl_schedule == "linear" and paper.model.latent.type != "none":
        out.append(f"model.objective.kl_warmup_steps={min(paper.model.objective.kl_warmup_steps, max(1, steps // 4))}")
    return out


def steps_per_epoch(data, recipe: str) -> int:
    """Batches in one epoch of PTB train under ``recipe``'s config (its batch size and batching)."""
    config = load_config(CONFIGS / (PAPER_LM if recipe == "paper" else "ptb_lstm_vae.yaml"))
    sampler = BucketBatchSampler(data.datasets["train"].lengths(), config.data.batch_size,
                                 same_length=config.data.same_length_batches)
    return len(sampler)


def recipe_variants(steps: int, recipe: str, ae_free_bits: float = AE_FREE_BITS) -> dict[str, tuple[str, list[str]]]:
    return variants(steps, ae_free_bits) if recipe == "adam" else paper_variants(steps, ae_free_bits)


def row_key(name: str, recipe: str) -> str:
    """The row's name in the table and the JSON: the adam rows keep their names."""
    return name if recipe == "adam" else f"{name} (paper)"


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


def run_variant(name: str, args: argparse.Namespace, steps: int, data, recipe: str = "adam") -> dict:
    """Train one row (two runs for AE pretraining) and return its run folders and times; ``evaluated_dir`` is the
    model the table scores (adam: the last step's; paper: the best validation model). ``ae_free_bits`` spends the
    row's budget on both stages: ``args.ae_share`` of the steps on the autoencoder, the rest on the free-bits VAE
    (3/8: Li et al.'s 3 + 5 epochs at 8), each stage's schedule scaled to its own steps."""
    def common(stage_steps: int) -> list[str]:
        # a checkpoint at least every 1,000 steps, so that --resume loses little of a stopped row
        return [f"data.data_dir={args.data_dir}", f"train.max_steps={stage_steps}", f"train.eval_every={stage_steps}",
                f"train.checkpoint_every={min(stage_steps, 1000)}", f"seed={args.seed}",
                f"train.cpu_threads={args.cpu_threads}"]

    suffix = "" if recipe == "adam" else f"_{recipe}"
    start = time.perf_counter()
    stage_steps, pretrain_steps = steps, 0
    extra: list[str] = []
    pretrained = None
    if name == "ae_free_bits":
        pretrain_steps = ae_stage_steps(steps, args.ae_share)
        stage_steps = max(1, steps - pretrain_steps)
        config_file, overrides = recipe_variants(pretrain_steps, recipe, args.ae_free_bits)[name]
        ae = load_config(CONFIGS / config_file, [*common(pretrain_steps), *overrides, "model.objective.beta=0",
                                                 "model.objective.free_bits=0", "model.objective.kl_schedule=constant",
                                                 "train.select_on=rec",
                                                 f"train.output_dir={Path(args.runs) / ('ae_pretrain' + suffix)}"])
        pretrained = train(ae, data=data, progress=args.progress, resume=args.resume)
        pretrain_steps = pretrained.state.step
        extra = [f"train.init_from={chosen_model(pretrained, recipe)}",
                 f"train.init_modules=[{','.join(PRETRAINED_MODULES)}]"]
    config_file, overrides = recipe_variants(stage_steps, recipe, args.ae_free_bits)[name]
    config = load_config(CONFIGS / config_file, [*common(stage_steps), *overrides, *extra,
                                                 f"train.output_dir={Path(args.runs) / (name + suffix)}"])
    result = train(config, data=data, progress=args.progress, resume=args.resume)
    return {"final_dir": str(result.final_dir), "evaluated_dir": str(chosen_model(result, recipe)),
            "train_seconds": summed_train_seconds(pretrained and pretrained.state, result.state),
            "process_seconds": time.perf_counter() - start, "valid": result.valid, "steps": steps,
            "steps_trained": pretrain_steps + result.state.step, "pretrain_steps": pretrain_steps,
            **({"free_bits": args.ae_free_bits} if name == "ae_free_bits" else {}),
            "stop_reason": result.state.stop_reason}


def ae_stage_steps(steps: int, share: float) -> int:
    """The autoencoder stage's steps of an ``ae_free_bits`` row of ``steps``: ``share`` of them, at least one, and
    at least one left for the free-bits stage when there are two."""
    return max(1, min(steps - 1, round(steps * share)))


def summed_train_seconds(*states) -> Optional[float]:
    """A row's training time over its stages (``None`` entries skipped), each summed over its resumes by the
    trainer; ``None`` when a stage was resumed from a checkpoint that did not record its time."""
    seconds = [state.train_seconds for state in states if state is not None]
    return None if None in seconds else sum(seconds)


def kept_target_matches(row: dict, run: dict, target: float) -> bool:
    """Whether a finished row may be kept under ``--ae-free-bits target``: rows other than ``ae_free_bits`` do not
    depend on it, and an ``ae_free_bits`` run that recorded no target was trained with the default."""
    return row.get("row") != "ae_free_bits" or run.get("free_bits", AE_FREE_BITS) == target


def chosen_model(result, recipe: str) -> Path:
    """The model folder a recipe goes on with: the last step's (adam), the best validation one (paper)."""
    return result.best_dir if recipe == "paper" and result.best_dir is not None else result.final_dir


def add_gaps(rows: dict) -> None:
    """Each row's ``lm_nll`` (the NLL of its recipe's language model row, when that was run), ``lm_gap`` (row NLL
    minus it) and ``elbo_gap`` (-ELBO minus the IW NLL)."""
    lm = {row.get("recipe", "adam"): row["nll"] for row in rows.values() if row.get("row") == "lstm_lm"}
    for row in rows.values():
        lm_nll: Optional[float] = lm.get(row.get("recipe", "adam"))
        row["lm_nll"] = lm_nll
        row["lm_gap"] = None if lm_nll is None else row["nll"] - lm_nll
        row["elbo_gap"] = row["elbo_nll"] - row["nll"] if "elbo_nll" in row else None


def format_table(results: dict) -> str:
    """Our rows beside the published ones, as a Markdown table."""
    def cell(value, digits=2):
        return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    lines = ["| method | PPL | MI | AU | KL | NLL | LM NLL | NLL − LM | −ELBO − NLL | published PPL / MI / AU / KL / NLL |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        pub = PUBLISHED.get(row.get("row", name))
        pub_text = " / ".join(cell(pub.get(k)) for k in ("ppl", "mi", "au", "kl", "nll")) if pub else "–"
        lines.append(f"| {name} | {cell(row['ppl'])} | {cell(row['mi'])} | {cell(row['au'])} | {cell(row['kl'])} "
                     f"| {cell(row['nll'])} | {cell(row.get('lm_nll'))} | {cell(row.get('lm_gap'))} "
                     f"| {cell(row.get('elbo_gap'))} | {pub_text} |")
    run = {row.get("row", name) for name, row in results["rows"].items()}
    for name, pub in PUBLISHED.items():
        if name not in run:
            lines.append(f"| {name} (not run) | – | – | – | – | – | – | – | – | "
                         + " / ".join(cell(pub.get(k)) for k in ("ppl", "mi", "au", "kl", "nll")) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--epochs", type=float, default=1.0, help="training budget per row, in epochs of PTB train")
    parser.add_argument("--rows", nargs="+", default=list(variants(1)), choices=list(variants(1)))
    parser.add_argument("--recipe", choices=[*RECIPES, "both"], default="adam",
                        help="adam: Adam at 1e-3 (configs/ptb_lstm_vae*.yaml); paper: He et al.'s and Li et al.'s SGD "
                             "recipe (configs/ptb_lstm_{lm,vae}_paper.yaml); both: each row with each, same budget")
    parser.add_argument("--iw-samples", type=int, default=500, help="importance samples for the NLL (papers: 500)")
    parser.add_argument("--test-sentences", type=int, default=0, help="NLL and MI on the first N test sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="threads per training process on a CPU (train.cpu_threads; 0: the machine's cores)")
    parser.add_argument("--runs", default="runs/bench_ptb", help="one trainer run folder per row here")
    parser.add_argument("--out", default="runs/bench_ptb/results.json")
    parser.add_argument("--ae-share", type=float, default=0.375,
                        help="ae_free_bits: the share of the row's steps spent on the autoencoder, the rest on the "
                             "free-bits VAE (0.375: Li et al.'s 3 + 5 epochs at 8; every row gets the same budget)")
    parser.add_argument("--ae-free-bits", type=float, default=AE_FREE_BITS,
                        help="ae_free_bits: the free-bits target of its VAE stage, in nats per latent dimension "
                             f"(default {AE_FREE_BITS}); the autoencoder stage does not depend on it")
    parser.add_argument("--progress", action="store_true", help="progress bars for training and evaluation")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --out (same budget) and continue each row's run from its newest "
                             "checkpoint: a table too long for one sitting goes on where it stopped")
    parser.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                        help="with --resume: also keep the rows (same budget) of these result files, e.g. of a table "
                             "run as several processes with their own --out; the table then shows them together")
    args = parser.parse_args(argv)
    if args.merge and not args.resume:
        parser.error("--merge keeps finished rows, as --resume does: add --resume")
    if not 0 < args.ae_share < 1:
        parser.error(f"--ae-share must lie strictly between 0 and 1, got {args.ae_share}")
    if not args.ae_free_bits > 0:  # also refuses NaN
        parser.error(f"--ae-free-bits must be a positive number of nats per dimension, got {args.ae_free_bits}")
    for missing in [m for m in args.merge if not Path(m).is_file()]:
        parser.error(f"--merge: no result file {missing}")

    config = load_config(CONFIGS / "ptb_lstm_vae.yaml", [f"data.data_dir={args.data_dir}"])
    data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
    recipes = RECIPES if args.recipe == "both" else (args.recipe,)
    # the same epochs for every row: the paper configs batch as the reference code does (one length per batch), which
    # gives more batches per epoch than the adam configs' length buckets
    per_epoch = {recipe: steps_per_epoch(data, recipe) for recipe in recipes}
    steps = {recipe: max(1, round(args.epochs * per_epoch[recipe])) for recipe in recipes}
    test = data.sentences("test")
    print(f"PTB: {len(data.datasets['train'])} training sentences; "
          + "; ".join(f"{recipe}: {per_epoch[recipe]} steps per epoch, {steps[recipe]} per row"
                      for recipe in recipes) + f"; test {len(test)} sentences", flush=True)

    results: dict = {"args": vars(args), "steps": steps, "rows": {}, "runs": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = ([out] if args.resume and out.exists() else []) + [Path(m) for m in args.merge]
    for source in sources:
        kept = json.loads(source.read_text())
        names = []
        for key, run in kept.get("runs", {}).items():
            # rows of another budget, or of another --ae-free-bits, are trained again
            if run.get("steps") == steps.get(run.get("recipe")) and kept_target_matches(kept["rows"][key], run,
                                                                                         args.ae_free_bits):
                results["runs"][key], results["rows"][key] = run, kept["rows"][key]
                names.append(key)
        print(f"--resume: {len(names)} rows kept from {source}: {', '.join(names) or 'none'}", flush=True)
    add_gaps(results["rows"])  # rows kept from several files: each beside its recipe's language model
    for name in args.rows:
        for recipe in recipes:
            if name not in recipe_variants(1, recipe):
                print(f"{name}: no {recipe} recipe (the paper recipe is for the LSTM models); skipped", flush=True)
                continue
            key = row_key(name, recipe)
            if key in results["rows"]:
                continue
            run = run_variant(name, args, steps[recipe], data, recipe)
            model = TextVAE.from_pretrained(run["evaluated_dir"])
            results["runs"][key] = {"recipe": recipe, **run}
            results["rows"][key] = row = {"row": name, "recipe": recipe, **evaluate(model, test, args)}
            add_gaps(results["rows"])
            seconds = run["train_seconds"]
            trained = "trained " + ("for an unknown time" if seconds is None else f"{seconds:.0f}s")
            print(f"{key}: {trained} ({run['steps_trained']} steps"
                  + (f", stopped: {run['stop_reason']}" if run["stop_reason"] else "") + f"); NLL {row['nll']:.2f} "
                  f"PPL {row['ppl']:.2f} KL {row['kl']:.2f} MI {row['mi'] if row['mi'] is None else round(row['mi'], 2)} "
                  f"AU {row['au']} -ELBO-NLL {row['elbo_gap']:.2f} (IW K={row['iw_samples']} on {row['sentences']} "
                  f"sentences: {row['iw_seconds']:.0f}s)", flush=True)
            out.write_text(json.dumps(results, indent=1))  # after every row: a long run keeps what it has
    out.write_text(json.dumps(results, indent=1))  # also when every row was kept (--resume, --merge)
    print("\n" + format_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(run_script(main))
