"""Small model-folder commands: ``textvae sample`` and ``textvae encode``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .models.base import InputError, load_pretrained
from .training.checkpoint import CheckpointError


def sample_main(argv: Optional[Sequence[str]] = None) -> int:
    """Print sentences decoded from prior samples."""
    parser = argparse.ArgumentParser(prog="textvae sample", description="Decode sentences from prior samples.")
    parser.add_argument("model", help="model folder (config.json, model.safetensors, tokenizer)")
    parser.add_argument("-n", "--num", type=int, default=5)
    parser.add_argument("--strategy", default="greedy", help="greedy or sample")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model = load_pretrained(args.model)
        kwargs = {"temperature": args.temperature} if args.strategy != "greedy" else {}
        for sentence in model.sample(args.num, strategy=args.strategy, seed=args.seed, **kwargs):
            print(sentence)
    except (CheckpointError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def encode_main(argv: Optional[Sequence[str]] = None) -> int:
    """Encode sentences (one per line, from a file or standard input) to posterior means, as JSON lines or .npy."""
    parser = argparse.ArgumentParser(prog="textvae encode", description="Encode sentences to latent codes.")
    parser.add_argument("model", help="model folder")
    parser.add_argument("--input", help="text file, one sentence per line (default: standard input)")
    parser.add_argument("--output", help=".npy file for an (N, D) array (default: JSON lines on standard output)")
    parser.add_argument("--sample", action="store_true", help="one posterior sample per sentence instead of the mean")
    args = parser.parse_args(argv)
    try:
        model = load_pretrained(args.model)
        if args.input and not Path(args.input).is_file():
            raise InputError(f"input file not found: {args.input}")
        text = Path(args.input).read_text() if args.input else sys.stdin.read()
        sentences = [line.strip() for line in text.splitlines() if line.strip()]
        codes = model.encode(sentences, sample=args.sample).cpu().numpy()
    except (CheckpointError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        import numpy as np

        np.save(args.output, codes)
        print(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {args.output}")
    else:
        for sentence, code in zip(sentences, codes):
            print(json.dumps({"sentence": sentence, "z": [round(float(v), 6) for v in code]}))
    return 0
