"""``textvae interpolate MODEL "sentence a" "sentence b"`` (and ``scripts/interpolate.py``): decode the path
between two sentences, or two prior samples, through latent space."""

from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from ..errors import CommandError
from .common import (
    CommandParser,
    add_decoding_arguments,
    add_model_arguments,
    decoding_kwargs,
    int_at_least,
    load_model,
    run_command,
)


def interpolation_parser(prog: str = "textvae interpolate") -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=prog,
        description="Decode a path through latent space between two sentences (their posterior means) or, with "
        "--prior, between two prior samples, and print it as a table.",
    )
    add_model_arguments(parser)
    parser.add_argument("a", nargs="?", help="first sentence")
    parser.add_argument("b", nargs="?", help="second sentence")
    parser.add_argument("--steps", type=int_at_least(2), default=8, help="points on the path, ends included")
    parser.add_argument("--method", choices=("linear", "spherical"), default="linear",
                        help="a straight line between the codes, or the great circle (slerp)")
    parser.add_argument("--prior", action="store_true", help="interpolate between two prior samples instead")
    parser.add_argument("--seed", type=int, default=0, help="seed for --prior and for sampled decoding")
    parser.add_argument("--grammar", choices=("auto", "synthetic", "none"), default="auto",
                        help="mark sentences the embedded corpus grammar accepts (auto: when both inputs are its)")
    parser.add_argument("--json", action="store_true", help="print the path and its measures as JSON")
    add_decoding_arguments(parser)
    return parser


def _interpolate(argv: Optional[Sequence[str]]) -> int:
    import torch

    from ..evaluation.homotopy import format_path, pick_grammar, prior_path, sentence_path

    args = interpolation_parser().parse_args(argv)
    if args.prior == bool(args.a or args.b):
        raise CommandError("give two sentences, or --prior (and no sentences)")
    if not args.prior and not (args.a and args.b):
        raise CommandError("give two sentences to interpolate between")
    kwargs = decoding_kwargs(args)
    torch.manual_seed(args.seed)
    model, _ = load_model(args.model, args.device)
    grammar = pick_grammar(args.grammar, [args.a, args.b] if not args.prior else [])
    if args.prior and args.grammar == "synthetic":
        grammar = pick_grammar("synthetic", [])
    if args.prior:
        path = prior_path(model, args.steps, args.method, seed=args.seed, grammar=grammar, **kwargs)
    else:
        path = sentence_path(model, args.a, args.b, args.steps, args.method, grammar=grammar, **kwargs)
    if args.json:
        print(json.dumps({"a": path.start, "b": path.end, "method": path.method, "t": path.t,
                          "sentences": path.sentences, "metrics": path.metrics}, indent=2))
    else:
        print(format_path(path, grammar))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae interpolate MODEL "sentence a" "sentence b" --steps 8``: print the decoded path; returns the exit
    status (2 with a one-line message on bad input)."""
    return run_command(_interpolate, argv)
