"""``textvae encode MODEL``: sentences (a file or standard input) to latent codes, as JSON lines or a .npy array."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from .common import CommandParser, add_model_arguments, load_model, run_command


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Encode sentences (one per line, from a file or standard input) to posterior means, as JSON lines or .npy;
    the exit status (2 with one ``error:`` line on bad input)."""
    return run_command(_encode, argv)
