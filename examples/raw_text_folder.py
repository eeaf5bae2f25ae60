"""Write a folder of raw text, one utterance per line, from DailyDialog: the kind of text users bring (capitals,
punctuation attached to words, contractions, typos such as "right.But"), for the README's "Your own text" tour.

    python examples/raw_text_folder.py --data-dir ../shared/data/dailydialog --out my_text

DailyDialog puts spaces around punctuation ("Say , Jim , how about ... ?"); NLTK's Treebank detokenizer takes them
out again ("Say, Jim, how about ...?"). The official splits become train.txt, valid.txt and test.txt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nltk.tokenize.treebank import TreebankWordDetokenizer

SPLITS = {"train": "train", "valid": "validation", "test": "test"}


def raw_utterances(path: Path, limit: int = 0) -> list[str]:
    """Detokenized utterances of a ``dialogues_*.txt`` file, in order, at most ``limit`` (0: all)."""
    detokenize = TreebankWordDetokenizer().detokenize
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for turn in line.split("__eou__"):
            if turn.strip():
                out.append(detokenize(turn.split()))
                if limit and len(out) >= limit:
                    return out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the DailyDialog folder (train/, validation/, test/)")
    parser.add_argument("--out", default="my_text", help="folder to write train.txt, valid.txt and test.txt into")
    parser.add_argument("--limit", type=int, default=0, help="at most this many utterances per split (0: all)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        lines = raw_utterances(Path(args.data_dir) / name / f"dialogues_{name}.txt", args.limit)
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{split}: {len(lines):,} utterances -> {out / f'{split}.txt'}")


if __name__ == "__main__":
    main()
