"""Self-play speed of Deal or No Deal agents: episodes per second with games played in batches (every agent answers
all its games of a turn in one call) against one game at a time, in the same run, on the same goals; with
``--rl-episodes N``, also the reinforcement-learning stage's episodes per second (``training.rl.train_rl`` with
``--model`` learning against ``--partner``, ``--episodes-per-update`` games per update; word RL with its
supervised update every 4 games when ``--data-dir`` names the Deal or No Deal folder, without them otherwise) and
the minutes 4 passes over selfplay.txt (16,344 episodes) take at that rate. ``--threads`` sets torch's threads (1).

    python scripts/benchmarks/selfplay_speed.py --model runs/dealornodeal_word/best --goals ../shared/data/dealornodeal/selfplay.txt
    python scripts/benchmarks/selfplay_speed.py --model A --partner B --games 256 --batch-size 128 --json speed.json
    python scripts/benchmarks/selfplay_speed.py --model runs/dealornodeal_larl_cat/best --partner runs/dealornodeal_word/best \
        --goals ../shared/data/dealornodeal/selfplay.txt --rl-episodes 256

Benchmark on a quiet machine: anything else running lowers both figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the library of this checkout, installed or not

import torch  # noqa: E402

from textvae.models import NegotiationAgent, load_pretrained  # noqa: E402
from textvae.cli import run_script  # noqa: E402
from textvae.tasks.negotiation import play, read_goal_pairs, summarize  # noqa: E402
from textvae.training.rl import RLConfig, train_rl  # noqa: E402

EPISODES_4_PASSES = 16344  # 4 passes over selfplay.txt's 4,086 goal pairs


def measure(agents, pairs, batch_size: int, seed: int) -> tuple[float, dict]:
    start = time.perf_counter()
    results = play(agents, pairs, batch_size=batch_size, seed=seed)
    seconds = time.perf_counter() - start
    return len(pairs) / seconds, summarize(results)


def measure_rl(model, partner, pairs, episodes: int, per_update: int, supervised_data=None,
               temperature: float = 0.5) -> dict:
    """Episodes per second of ``episodes`` RL episodes (on a copy of ``model``): word RL makes its supervised updates
    on ``supervised_data`` (a negotiation training set) as ``train_rl`` does, or none when it is None."""
    import torch._dynamo  # noqa: F401  (the optimizer's one-time import, a fixed cost outside the rate)

    learner = copy.deepcopy(model)
    config = RLConfig(episodes_per_update=per_update, temperature=temperature,
                      **({} if supervised_data is not None else {"supervised_every": 0}))
    start = time.perf_counter()
    state = train_rl(learner, NegotiationAgent(partner, temperature=temperature, seed=2), pairs, config,
                     max_episodes=episodes,
                     supervised_data=supervised_data)
    rate = state.episode / (time.perf_counter() - start)
    return {"rl_episodes": state.episode, "rl_episodes_per_update": per_update, "rl_episodes_per_s": rate,
            "rl_supervised_every": config.supervised_every if supervised_data is not None else 0,
            "rl_minutes_for_16344_episodes": EPISODES_4_PASSES / rate / 60}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder of the first agent")
    parser.add_argument("--partner", help="model folder of the second agent (default: the same model)")
    parser.add_argument("--goals", required=True, help="goal pairs, two lines per game (selfplay.txt)")
    parser.add_argument("--games", type=int, default=128, help="games per mode")
    parser.add_argument("--single-games", type=int, default=32, help="games played one at a time")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rl-episodes", type=int, default=0, help="RL episodes to time (0: no RL timing)")
    parser.add_argument("--episodes-per-update", type=int, default=16, help="RL games per update (default 16)")
    parser.add_argument("--data-dir", help="Deal or No Deal folder: word RL then makes its supervised updates")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--temperature", type=float, default=0.5, help="the agents' sampling temperature (default 0.5)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_pretrained(args.model)
    partner = load_pretrained(args.partner) if args.partner else model
    pairs = read_goal_pairs(args.goals)
    agents = [NegotiationAgent(model, temperature=args.temperature, seed=0),
              NegotiationAgent(partner, temperature=args.temperature, seed=1)]
    batched, stats = measure(agents, pairs[: args.games], args.batch_size, 0)
    single, _ = measure(agents, pairs[: args.single_games], 1, 0)
    row = {"batched_episodes_per_s": batched, "single_episodes_per_s": single, "speedup": batched / single,
           "games_batched": args.games, "games_single": args.single_games, "batch_size": args.batch_size,
           "threads": args.threads, "turns_per_game": stats["turns"],
           "minutes_for_16344_episodes_batched": EPISODES_4_PASSES / batched / 60}
    if args.rl_episodes:
        supervised = None
        if args.data_dir:  # the training dialogues, read as `textvae rl` reads them
            from textvae.config import DataConfig, DialogueDataConfig
            from textvae.data.dealornodeal import prepare_negotiation_data

            data_config = DataConfig(corpus="dealornodeal", data_dir=args.data_dir,
                                     dialogue=DialogueDataConfig(max_turns=20))
            supervised = prepare_negotiation_data(data_config, model.config.max_length,
                                                  tokenizer=model.tokenizer).datasets["train"]
        row.update(measure_rl(model, partner, pairs, args.rl_episodes, args.episodes_per_update, supervised,
                              args.temperature))
    print(json.dumps(row, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
