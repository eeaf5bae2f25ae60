"""Train an image VAE (the reference baselines): the `accelerate launch` target, with the flags of train_text_vae.py.

    accelerate launch scripts/train_image_vae.py --config configs/sprites_beta_vae.yaml      # the default config
    python scripts/train_image_vae.py --config configs/digits_vae.yaml --max-steps 2000
    python scripts/train_image_vae.py --config configs/digits_vae.yaml --data-dir ~/mnist data.corpus=mnist \
        model.image.height=null model.image.width=null   # key=value overrides last; the shape from the data
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.train import image_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(image_main())
