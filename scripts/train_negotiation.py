"""Train a Deal or No Deal agent (negotiation_word, larl). ``--stage supervised`` (the default) imitates the
human dialogues with the library's trainer (exact resume with --resume; the other flags are train_text_vae.py's):

    python scripts/train_negotiation.py --stage supervised --data-dir ../shared/data/dealornodeal       # larl, gumbel
    python scripts/train_negotiation.py --config configs/dealornodeal_word.yaml --data-dir ../shared/data/dealornodeal
    python scripts/train_negotiation.py --config configs/dealornodeal_larl_gauss.yaml --max-steps 20 --no-progress

``--stage rl`` then fine-tunes a supervised model folder by self-play against a frozen supervised word agent
(latent RL for larl, word RL with interleaved supervised updates for negotiation_word; exact resume with --resume;
``--stage rl --help`` lists the flags):

    python scripts/train_negotiation.py --stage rl --model runs/dealornodeal_larl_cat/best \
        --partner runs/dealornodeal_word/best --data-dir ../shared/data/dealornodeal --output-dir runs/rl_larl_cat
    python scripts/train_negotiation.py --stage rl --model runs/dealornodeal_word/best \
        --data-dir ../shared/data/dealornodeal --output-dir runs/rl_word --episodes 2000

The data's training split is derived (data.txt minus val/test; train.txt is missing): see textvae.data.dealornodeal.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.rl import rl_main  # noqa: E402
from textvae.cli.train import negotiation_main  # noqa: E402


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--stage", choices=["supervised", "rl"], default="supervised",
                        help="supervised: imitate the human dialogues; rl: self-play from a supervised model folder")
    args, rest = parser.parse_known_args(argv)
    return rl_main(rest) if args.stage == "rl" else negotiation_main(rest)


if __name__ == "__main__":
    sys.exit(run())
