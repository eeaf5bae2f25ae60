"""Deal or No Deal table: supervised agents (word-level, LaRL categorical, LaRL Gaussian), the same after
reinforcement learning (word RL, latent RL), each played against the frozen supervised word agent of its seed, beside
Lewis et al.'s (2017) published row for their supervised agent against itself.

    python scripts/benchmarks/dealornodeal.py --data-dir ../shared/data/dealornodeal --json dnd.json
    python scripts/benchmarks/dealornodeal.py --data-dir ../shared/data/dealornodeal --steps 2000 --rl-episodes 2048 \\
        --seeds 0 1 --test-games 200 --json dnd_small.json --output-dir runs/bench_dnd_small

Per seed: train the three supervised agents (``configs/dealornodeal_{word,larl_cat,larl_gauss}.yaml`` with
``--steps`` steps), fine-tune each by self-play against the frozen supervised word agent (``--rl-episodes``
episodes on selfplay.txt; LaRL's settings), then play every agent against that partner on selfplay_eval.txt's goals
and on the test dialogues' goals, and score (``evaluation.negotiation``): reward over all and agreed games for both
sides, agreement and Pareto-optimal %, turns, diversity, the perplexity of the agent's utterances under the
supervised word model, and the model's test-set perplexity (exact for word models, the ELBO's bound for LaRL).
Rows hold the mean over seeds and, with several seeds, the standard deviation (``*_std``).

Caveat, printed with the table: the training split is data.txt minus the val/test dialogues (the official
train.txt is missing), so the supervised agents are not trained on exactly Lewis et al.'s data. The full budget
(20,000 supervised steps at batch 16, 4 passes = 16,344 RL episodes) takes hours per seed on a CPU; state the
budget with any figure. ``--resume`` keeps finished models, RL runs and evaluations in ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the library of this checkout, installed or not

import torch  # noqa: E402

from textvae.cli import run_script  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SUPERVISED = {"word": "dealornodeal_word.yaml", "latent_cat": "dealornodeal_larl_cat.yaml",
              "latent_gauss": "dealornodeal_larl_gauss.yaml"}
ROWS = [f"{stage}_{kind}" for stage in ("supervised", "rl") for kind in SUPERVISED]
# Lewis et al. 2017 as issue #16 quotes it: their supervised (likelihood) agent against itself, over all games
PUBLISHED = {"lewis2017_supervised_selfplay": {"reward": 5.4, "partner_reward": 5.5, "agreement": 87.9,
                                               "pareto": 49.6}}
DATA_NOTE = ("train = data.txt minus the val/test dialogues (the official train.txt is missing); the published row "
             "is Lewis et al.'s supervised agent against itself on their own split")
PER_MODEL = ("test_ppl", "test_selection_accuracy")  # figures of the model itself, not of its games
METRICS = ("reward", "partner_reward", "agreed_reward", "agreed_partner_reward", "agreement", "pareto", "turns",
           "utterances", "unique_utterances", "unique_words", "language_ppl")


def supervised_config(kind: str, args, seed: int, out: Path):
    from textvae.config import load_config

    steps = args.steps
    overrides = [f"data.data_dir={args.data_dir}", f"train.output_dir={out}", f"train.max_steps={steps}",
                 f"train.eval_every={steps}", f"train.checkpoint_every={max(1, min(steps, 1000))}",
                 "train.cpu_threads=1", f"seed={seed}", *args.set]
    return load_config(CONFIGS / SUPERVISED[kind], overrides)


def train_supervised(kind: str, args, seed: int, root: Path, data) -> Path:
    """The supervised model folder of ``kind`` (trained now, or kept from an earlier run with --resume)."""
    from textvae.training.trainer import train

    out = root / f"seed{seed}" / f"supervised_{kind}"
    if args.resume and (out / "final" / "config.json").is_file():
        return out / "best" if (out / "best" / "config.json").is_file() else out / "final"
    result = train(supervised_config(kind, args, seed, out), resume=args.resume, data=data, progress=args.progress)
    return result.best_dir or result.final_dir


def train_rl_row(kind: str, args, seed: int, root: Path, folder: Path, partner_folder: Path, pairs, data) -> Path:
    """The RL stage from the supervised ``folder`` against the frozen word agent; returns the RL model folder."""
    from textvae.models import NegotiationAgent, load_pretrained
    from textvae.training.rl import STATE_FILE, RLConfig, train_rl

    out = root / f"seed{seed}" / f"rl_{kind}"
    out.mkdir(parents=True, exist_ok=True)
    model = load_pretrained(folder)
    partner = NegotiationAgent(load_pretrained(partner_folder), temperature=args.temperature, seed=seed + 2)
    config = RLConfig(seed=seed, episodes_per_update=args.episodes_per_update, temperature=args.temperature)
    train_rl(model, partner, pairs, config, state_path=out / STATE_FILE, resume=args.resume,
             save_every=50, supervised_data=data.datasets["train"], max_episodes=args.rl_episodes,
             progress=args.progress)
    model.save_pretrained(out / "model")
    return out / "model"


def evaluate_row(folder: Path, partner_folder: Path, goal_sets: dict, seed: int, test_dataset,
                 temperature: float = 0.5) -> dict:
    from textvae.evaluation.negotiation import evaluate_against, split_elbo
    from textvae.models import NegotiationAgent, load_pretrained

    model, lm = load_pretrained(folder), load_pretrained(partner_folder)
    terms = split_elbo(model, test_dataset)  # perplexity and selection accuracy from one pass over the test split
    row = {"test_ppl": terms.perplexity_bound(),
           "test_selection_accuracy": terms.extras.get("selection_accuracy", float("nan"))}
    for name, pairs in goal_sets.items():
        torch.manual_seed(seed)
        metrics, results = evaluate_against(NegotiationAgent(model, temperature=temperature, seed=seed),
                                            NegotiationAgent(lm, temperature=temperature, seed=seed + 1),
                                            pairs, language_model=lm, seed=seed)
        row[name] = metrics.as_dict()
        row[name]["example"] = results[0].transcript() if results else ""
    return row


def aggregate(per_seed: list[dict]) -> dict:
    """Mean over seeds of every figure (and its standard deviation with two seeds or more)."""
    out = {"seeds": len(per_seed)}
    for key in PER_MODEL:
        out[key] = statistics.fmean(r[key] for r in per_seed)
        if len(per_seed) > 1:
            out[f"{key}_std"] = statistics.stdev(r[key] for r in per_seed)
    for goals in per_seed[0]:
        if goals in PER_MODEL:
            continue
        part = {}
        for m in METRICS:
            values = [r[goals][m] for r in per_seed if r[goals][m] is not None]
            part[m] = statistics.fmean(values) if values else None
            if len(values) > 1:
                part[f"{m}_std"] = statistics.stdev(values)
        part["games"] = per_seed[0][goals]["games"]
        part["example_seed0"] = per_seed[0][goals]["example"]
        out[goals] = part
    return out


def table(report: dict, goals: str) -> str:
    head = ("| row | reward | partner | agreed reward | agreed partner | agree % | Pareto % | turns | unique utt. "
            "| unique words | lang. PPL | test PPL | test select acc. |")
    lines = [f"{goals} ({report['budget']})", head, "|" + "---|" * 13]
    for name, row in report["rows"].items():
        r = row[goals]
        lines.append(f"| {name} | {r['reward']:.2f} | {r['partner_reward']:.2f} | {r['agreed_reward']:.2f} | "
                     f"{r['agreed_partner_reward']:.2f} | {r['agreement']:.1f} | {r['pareto']:.1f} | {r['turns']:.1f} | "
                     f"{r['unique_utterances']:.0f} | {r['unique_words']:.0f} | {r['language_ppl']:.2f} | "
                     f"{row['test_ppl']:.2f} | {row['test_selection_accuracy']:.3f} |")
    for name, r in PUBLISHED.items():
        lines.append(f"| {name} (published) | {r['reward']:.1f} | {r['partner_reward']:.1f} | | | {r['agreement']:.1f} | "
                     f"{r['pareto']:.1f} | | | | | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the Deal or No Deal folder (../shared/data/dealornodeal)")
    parser.add_argument("--output-dir", default="runs/bench_dealornodeal", help="models, RL states, per-seed results")
    parser.add_argument("--json", help="write the table here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=20000, help="supervised steps per agent (the configs': 20,000)")
    parser.add_argument("--rl-episodes", type=int, default=16344, help="RL episodes (4 passes: 16,344)")
    parser.add_argument("--episodes-per-update", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.5,
                        help="sampling temperature of every agent, in RL and evaluation (Lewis et al.'s scripts: 0.5)")
    parser.add_argument("--eval-games", type=int, default=100, help="selfplay_eval.txt goal pairs (it has 100)")
    parser.add_argument("--test-games", type=int, default=0, help="test-dialogue goal pairs (0: all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every agent")
    parser.add_argument("--resume", action="store_true", help="keep what --output-dir already holds")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from textvae.data.dealornodeal import dialogue_goal_pairs, read_dialogues, read_goal_pairs
    from textvae.data.pipeline import prepare_data

    root, data_dir = Path(args.output_dir), Path(args.data_dir)
    selfplay = read_goal_pairs(data_dir / "selfplay.txt")
    test_pairs = dialogue_goal_pairs(read_dialogues(data_dir / "test.txt"))
    goal_sets = {"selfplay_eval": read_goal_pairs(data_dir / "selfplay_eval.txt")[: args.eval_games],
                 "test_goals": test_pairs[: args.test_games] if args.test_games else test_pairs}
    start = time.perf_counter()
    per_row: dict[str, list[dict]] = {name: [] for name in ROWS}
    for seed in args.seeds:
        config = supervised_config("word", args, seed, root)
        data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
        folders = {f"supervised_{k}": train_supervised(k, args, seed, root, data) for k in SUPERVISED}
        partner = folders["supervised_word"]
        for kind in SUPERVISED:
            folders[f"rl_{kind}"] = train_rl_row(kind, args, seed, root, folders[f"supervised_{kind}"], partner,
                                                 selfplay, data)
        for name in ROWS:
            cache = root / f"seed{seed}" / f"{name}_eval.json"
            if args.resume and cache.is_file():
                row = json.loads(cache.read_text())
            else:
                row = evaluate_row(folders[name], partner, goal_sets, seed, data.datasets["test"], args.temperature)
                cache.write_text(json.dumps(row))
            per_row[name].append(row)
    budget = (f"{args.steps} supervised steps, {args.rl_episodes} RL episodes ({args.episodes_per_update} per update), "
              f"seeds {args.seeds}, {len(goal_sets['selfplay_eval'])} selfplay_eval and "
              f"{len(goal_sets['test_goals'])} test goal pairs, sampling temperature {args.temperature}")
    report = {"budget": budget, "data_note": DATA_NOTE, "partner": "the frozen supervised word agent of each seed",
              "rows": {name: aggregate(rows) for name, rows in per_row.items()}, "published": PUBLISHED,
              "seconds": time.perf_counter() - start}
    for goals in goal_sets:
        print(table(report, goals) + "\n")
    print(DATA_NOTE)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
