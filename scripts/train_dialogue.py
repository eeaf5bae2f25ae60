"""Train a dialogue CVAE (cvae, kgCVAE): the `accelerate launch` target, with the flags of train_text_vae.py.

    accelerate launch scripts/train_dialogue.py --data-dir ../shared/data/dailydialog            # configs/dailydialog_cvae.yaml
    accelerate launch scripts/train_dialogue.py --config configs/dailydialog_kgcvae.yaml --data-dir ../shared/data/dailydialog
    python scripts/train_dialogue.py --data-dir my_dialogues data.corpus=dialogue_jsonl --max-steps 20
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library of this checkout, installed or not

from textvae.cli.train import dialogue_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(dialogue_main())
