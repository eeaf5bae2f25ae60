"""Several responses to one context, each from its own z drawn from a trained CVAE's prior network.

    python examples/diverse_responses.py runs/dailydialog_kgcvae/best "Hi , how are you ?" "Fine . And you ?"

Arguments: a model folder, then the context's turns, oldest first (the response answers the last one).
"""

import argparse
import sys

import torch

from textvae import load_pretrained
from textvae.cli import run_script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a model folder written by save_pretrained (e.g. runs/dailydialog_cvae/best)")
    parser.add_argument("turns", nargs="+", help="the context's turns, oldest first")
    parser.add_argument("--samples", type=int, default=8, help="responses to draw (one z each)")
    parser.add_argument("--strategy", default="greedy", choices=["greedy", "sample", "beam"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained(args.model)
    responses = model.respond([args.turns], num_samples=args.samples, strategy=args.strategy, seed=args.seed)[0]
    for turn in args.turns:
        print(f"  {turn}")
    for i, response in enumerate(responses):
        print(f"z{i}: {response}")


if __name__ == "__main__":
    sys.exit(run_script(main))
