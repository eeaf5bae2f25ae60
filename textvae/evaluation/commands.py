"""Command-line entry points for evaluation: ``interpolate_main(argv)`` and ``evaluate_main(argv)``, which
``textvae interpolate`` / ``textvae evaluate`` and ``scripts/interpolate.py`` / ``scripts/evaluate.py`` call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

MODEL_SUBFOLDERS = ("best", "final", "last")


class CommandError(Exception):
    """A problem with the command's inputs; printed without a traceback."""


def resolve_model_folder(path: str) -> Path:
    """A model folder (with ``config.json``), or a run folder holding one as ``best``/``final``/``last``."""
    folder = Path(path)
    if (folder / "config.json").is_file():
        return folder
    for name in MODEL_SUBFOLDERS:
        if (folder / name / "config.json").is_file():
            print(f"using the model in {folder / name}", file=sys.stderr)
            return folder / name
    if not folder.exists():
        raise CommandError(f"model folder {folder} does not exist")
    raise CommandError(
        f"{folder} is not a model folder: no config.json in it nor in a {'/'.join(MODEL_SUBFOLDERS)} subfolder"
    )


def load_model(path: str, device: Optional[str]):
    from ..models.base import load_pretrained

    return load_pretrained(resolve_model_folder(path), device=device)


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="greedy")
    group.add_argument("--beam-size", type=int, default=4)
    group.add_argument("--length-penalty", type=float, default=1.0)
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--top-k", type=int, default=0)
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--max-length", type=int, default=None)


def decoding_kwargs(args: argparse.Namespace) -> dict:
    kwargs = {"strategy": args.strategy, "max_length": args.max_length}
    if args.strategy == "beam":
        kwargs.update(beam_size=args.beam_size, length_penalty=args.length_penalty)
    if args.strategy == "sample":
        kwargs.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    return kwargs


def pick_grammar(choice: str, sentences: Sequence[str]):
    """``synthetic``: the embedded corpus grammar; ``auto``: the same when every given sentence is one it
    generates (the model was then most likely trained on that corpus); ``none``: no grammar column."""
    from ..data.synthetic import GRAMMAR

    if choice == "synthetic" or (choice == "auto" and sentences and all(GRAMMAR.accepts(s) for s in sentences)):
        return GRAMMAR.accepts
    return None


def _run(main, argv) -> int:
    from ..config import ConfigError
    from ..data.corpora import DataError
    from ..models.base import InputError
    from ..training.checkpoint import CheckpointError

    try:
        return main(argv)
    except (CommandError, CheckpointError, InputError, DataError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------- interpolate


def interpolation_parser(prog: str = "textvae interpolate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Decode a path through latent space between two sentences (their posterior means) or, with "
        "--prior, between two prior samples, and print it as a table.",
    )
    parser.add_argument("model", help="model folder written by save_pretrained (or a run folder with best/)")
    parser.add_argument("a", nargs="?", help="first sentence")
    parser.add_argument("b", nargs="?", help="second sentence")
    parser.add_argument("--steps", type=int, default=8, help="points on the path, ends included (default 8)")
    parser.add_argument("--method", choices=("linear", "spherical"), default="linear")
    parser.add_argument("--prior", action="store_true", help="interpolate between two prior samples instead")
    parser.add_argument("--seed", type=int, default=0, help="seed for --prior and for sampled decoding")
    parser.add_argument("--grammar", choices=("auto", "synthetic", "none"), default="auto",
                        help="mark sentences the embedded corpus grammar accepts (auto: when both inputs are its)")
    parser.add_argument("--json", action="store_true", help="print the path and its measures as JSON")
    parser.add_argument("--device", default=None)
    add_decoding_arguments(parser)
    return parser


def _interpolate(argv: Optional[Sequence[str]]) -> int:
    import torch

    from .homotopy import format_path, prior_path, sentence_path

    args = interpolation_parser().parse_args(argv)
    if args.prior == bool(args.a or args.b):
        raise CommandError("give two sentences, or --prior (and no sentences)")
    if not args.prior and not (args.a and args.b):
        raise CommandError("give two sentences to interpolate between")
    torch.manual_seed(args.seed)
    model = load_model(args.model, args.device)
    grammar = pick_grammar(args.grammar, [args.a, args.b] if not args.prior else [])
    if args.prior and args.grammar == "synthetic":
        grammar = pick_grammar("synthetic", [])
    kwargs = decoding_kwargs(args)
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


def interpolate_main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae interpolate MODEL "sentence a" "sentence b" --steps 8``: print the decoded path; returns the exit
    status (2 with a one-line message on bad input)."""
    return _run(_interpolate, argv)
