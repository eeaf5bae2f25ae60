"""Print a sentence homotopy: ``python scripts/interpolate.py MODEL "sentence a" "sentence b" --steps 8``.

The same as ``textvae interpolate``; see ``textvae.cli.interpolate`` for the options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.interpolate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
