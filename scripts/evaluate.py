"""Evaluate a model folder: ``python scripts/evaluate.py MODEL --data-dir DIR --split test [--num-samples 500]``.

The same as ``textvae evaluate``; see ``textvae.cli.evaluate`` for the options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
