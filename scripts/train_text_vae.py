"""Train a sentence VAE: the `accelerate launch` target.

    accelerate launch scripts/train_text_vae.py                                  # embedded corpus, defaults
    accelerate launch scripts/train_text_vae.py --config configs/ptb_lstm_vae.yaml --data-dir ../shared/data/ptb
    torchrun --nproc_per_node 2 scripts/train_text_vae.py --max-steps 20          # two CPU processes
"""

import sys

from textvae.training.run import main

if __name__ == "__main__":
    sys.exit(main())
