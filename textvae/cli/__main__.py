"""``python -m textvae.cli COMMAND ...``, the same as the ``textvae`` console script."""

import sys

from . import main

sys.exit(main())
