"""Train a dialogue CVAE (cvae, kgCVAE): the `accelerate launch` target, with the flags of train_text_vae.py.

    accelerate launch scripts/train_dialogue.py --data-dir ../shared/data/dailydialog            # configs/dailydialog_cvae.yaml
    accelerate launch scripts/train_dialogue.py --config configs/dailydialog_kgcvae.yaml --data-dir ../shared/data/dailydialog
    python scripts/train_dialogue.py --data-dir my_dialogues data.corpus=dialogue_jsonl --max-steps 20
"""

import sys

from textvae.training.run import main, print_dialogue_summary

DESCRIPTION = ("Train a dialogue VAE. With no --config: configs/dailydialog_cvae.yaml (DailyDialog from --data-dir "
               "or $TEXTVAE_DATA/dailydialog).")

if __name__ == "__main__":
    sys.exit(main(prog="train_dialogue.py", summary=print_dialogue_summary, default_config="dailydialog_cvae.yaml",
                  description=DESCRIPTION))
