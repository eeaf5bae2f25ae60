"""Deal or No Deal with trained agents: print self-play games verbatim (goals, dialogue, selections, outcome), or
play against a model yourself.

    python examples/negotiate.py runs/dealornodeal_word/best --goals ../shared/data/dealornodeal/selfplay_eval.txt
    python examples/negotiate.py runs/rl_larl_cat/model --partner runs/dealornodeal_word/best --games 5 \\
        --goals ../shared/data/dealornodeal/selfplay_eval.txt
    python examples/negotiate.py runs/dealornodeal_word/best --human

Self-play: the first model (A) holds each goal pair's first goal, ``--partner`` (B; default the same model) the
second. ``--human``: you play B against the model, typing one utterance a turn (``<selection>`` ends the talk),
then your selection as three counts (books hats balls) or ``no deal``; without ``--goals`` the goals are drawn at
random (values summing to 10, as in the data).
"""

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

import torch  # noqa: E402

from textvae import load_pretrained  # noqa: E402
from textvae.cli import run_script  # noqa: E402
from textvae.models import NegotiationAgent  # noqa: E402
from textvae.tasks.negotiation import ITEM_NAMES, SELECTION, Goal, play, read_goal_pairs, summarize  # noqa: E402


def random_pair(rng: random.Random) -> tuple[Goal, Goal]:
    """Counts 1-4 per item, 5-7 items in all (as the data's), and two private value vectors that each sum to 10."""
    while True:
        counts = tuple(rng.randint(1, 4) for _ in ITEM_NAMES)
        if 5 <= sum(counts) <= 7:
            break

    def values() -> tuple[int, ...]:
        while True:
            v = tuple(rng.randint(0, 10) for _ in ITEM_NAMES)
            if sum(c * x for c, x in zip(counts, v)) == 10:
                return v

    return Goal(counts, values()), Goal(counts, values())


class Human:
    """A player at the terminal: reads utterances and a selection from ``stream``."""

    def __init__(self, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stdin

    def ask(self, prompt: str) -> str:
        print(prompt, end="", flush=True)
        line = self.stream.readline()
        if not line:
            raise SystemExit("\n(input ended)")
        return line.strip()

    def respond(self, games, goals, histories):
        history = histories[0]
        if history and not history[-1][0]:
            print(f"model: {history[-1][1]}")
        return [self.ask("you: ") or SELECTION]

    def select(self, games, goals, histories):
        history, counts = histories[0], goals[0].counts
        if history and not history[-1][0]:
            print(f"model: {history[-1][1]}")
        while True:
            text = self.ask(f"your selection ({' '.join(n + 's' for n in ITEM_NAMES)}, of {' '.join(map(str, counts))}; "
                            "or 'no deal'): ")
            if text.lower() in ("no deal", "none", ""):
                return [None]
            try:
                items = tuple(int(x) for x in text.split())
            except ValueError:
                continue
            if len(items) == len(counts) and all(0 <= i <= c for i, c in zip(items, counts)):
                return [items]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder of agent A (negotiation_word or larl)")
    parser.add_argument("--partner", help="model folder of agent B in self-play (default: the same model)")
    parser.add_argument("--goals", help="goal pairs, two lines per game (selfplay_eval.txt); default: random goals")
    parser.add_argument("--games", type=int, default=5, help="self-play games to print (default 5)")
    parser.add_argument("--human", action="store_true", help="play against the model yourself (stdin)")
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.5,
                        help="the models' sampling temperature (default 0.5, Lewis et al.'s self-play)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = load_pretrained(args.model)
    count = 1 if args.human else args.games
    pairs = read_goal_pairs(args.goals)[:count] if args.goals else [random_pair(rng) for _ in range(count)]
    agent = NegotiationAgent(model, temperature=args.temperature, seed=args.seed)
    if args.human:
        goal = pairs[0][1]
        print("your goal: " + ", ".join(f"{c} {n}{'s' if c != 1 else ''} worth {v}"
                                        for c, n, v in zip(goal.counts, ITEM_NAMES, goal.values)))
        print(f"type one utterance a turn; '{SELECTION}' (or an empty line) ends the talk")
        result = play([agent, Human()], pairs, max_turns=args.max_turns, batch_size=1, seed=args.seed)[0]
        print("\n" + result.transcript(names=("model", "you")))
        return 0
    partner = NegotiationAgent(load_pretrained(args.partner) if args.partner else model, temperature=args.temperature,
                               seed=args.seed + 1)
    results = play([agent, partner], pairs, max_turns=args.max_turns, seed=args.seed)
    for n, result in enumerate(results, start=1):
        print(f"=== game {n}\n{result.transcript()}\n")
    s = summarize(results)
    print(f"{len(results)} games: A {s['reward']:.2f} vs B {s['partner_reward']:.2f} points, agreement "
          f"{s['agreement']:.0f}%, Pareto-optimal {s['pareto']:.0f}%, {s['turns']:.1f} turns per game")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))  # a missing model folder, a bad goal file, a temperature of 0: one line, no trace
