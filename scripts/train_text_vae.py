"""Train a sentence VAE: the `accelerate launch` target.

    accelerate launch scripts/train_text_vae.py                                  # embedded corpus, defaults
    accelerate launch scripts/train_text_vae.py --config configs/ptb_lstm_vae.yaml --data-dir ../shared/data/ptb
    torchrun --nproc_per_node 2 scripts/train_text_vae.py --max-steps 20          # two CPU processes
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
