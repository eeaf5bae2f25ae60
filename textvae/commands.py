"""Small model-folder commands: ``textvae sample`` and ``textvae encode``. They load a model or run folder and
decode with the same flags as ``textvae evaluate`` and ``textvae interpolate`` (``evaluation.commands`` holds
the one loader and the one set of decoding flags)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import InputError
from .evaluation.commands import (
    CommandParser,
    add_decoding_arguments,
    add_model_arguments,
    decoding_kwargs,
    int_at_least,
    load_model,
    run_command,
)


def sample_parser(prog: str = "textvae sample") -> CommandParser:
    parser = CommandParser(prog=prog, description="Decode sentences from latents drawn from the prior, one per line.")
    add_model_arguments(parser)
    parser.add_argument("-n", "--num", type=int_at_least(1), default=5, help="sentences to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws and of sampled decoding")
    add_decoding_arguments(parser)
    return parser


def _sample(argv: Optional[Sequence[str]]) -> int:
    args = sample_parser().parse_args(argv)
    kwargs = decoding_kwargs(args)
    model, _ = load_model(args.model, args.device)
    for sentence in model.sample(args.num, seed=args.seed, **kwargs):
        print(sentence)
    return 0


def sample_main(argv: Optional[Sequence[str]] = None) -> int:
    """Print sentences decoded from prior samples; the exit status (2 with one ``error:`` line on bad input)."""
    return run_command(_sample, argv)


def encode_parser(prog: str = "textvae encode") -> CommandParser:
    parser = CommandParser(prog=prog, description="Encode sentences to latent codes (posterior means by default).")
    add_model_arguments(parser)
    parser.add_argument("--input", help="text file, one sentence per line (default: standard input)")
    parser.add_argument("--output", help=".npy file for an (N, D) array (default: JSON lines on standard output)")
    parser.add_argument("--sample", action="store_true", help="one posterior sample per sentence instead of the mean")
    return parser


def _encode(argv: Optional[Sequence[str]]) -> int:
    args = encode_parser().parse_args(argv)
    if args.input and not Path(args.input).is_file():
        raise InputError(f"input file not found: {args.input}")
    model, _ = load_model(args.model, args.device)
    text = Path(args.input).read_text() if args.input else sys.stdin.read()
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    codes = model.encode(sentences, sample=args.sample).cpu().numpy()
    if args.output:
        import numpy as np

        np.save(args.output, codes)
        print(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {args.output}")
    else:
        for sentence, code in zip(sentences, codes):
            print(json.dumps({"sentence": sentence, "z": [round(float(v), 6) for v in code]}))
    return 0


def encode_main(argv: Optional[Sequence[str]] = None) -> int:
    """Encode sentences (one per line, from a file or standard input) to posterior means, as JSON lines or .npy;
    the exit status (2 with one ``error:`` line on bad input)."""
    return run_command(_encode, argv)
