"""Print a sentence homotopy: ``python scripts/interpolate.py MODEL "sentence a" "sentence b" --steps 8``.

The same as ``textvae interpolate``; see ``textvae.evaluation.commands.interpolate_main`` for the options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.evaluation.commands import interpolate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(interpolate_main(sys.argv[1:]))
