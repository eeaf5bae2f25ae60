"""`textvae train | evaluate | interpolate | sample | encode`."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .errors import TextVAEError

COMMANDS = {
    "train": "train a VAE (same flags as scripts/train_text_vae.py)",
    "evaluate": "IW-NLL, PPL per word and per token, KL, MI, AU, BLEU and figures on a split",
    "interpolate": "decode the path between two sentences through latent space",
    "sample": "decode sentences from prior samples",
    "encode": "encode sentences (a file or standard input) to latent codes",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: textvae COMMAND [args]\n\ncommands:")
        for name, help_text in COMMANDS.items():
            print(f"  {name:12s} {help_text}")
        print("\nevaluate, interpolate, sample and encode take a model folder or a run folder (its best/, final/ "
              "or last/);\n`textvae COMMAND --help` lists a command's flags and their defaults.")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        return _dispatch(command, rest)
    except TextVAEError as exc:  # whatever a subcommand did not catch itself: one line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(command: str, rest: list[str]) -> int:
    """Run subcommand ``command`` with its arguments; its exit status."""
    if command == "train":
        from .training.run import main as train_main

        return train_main(rest, prog="textvae train")
    if command in ("evaluate", "interpolate"):
        from .evaluation import commands

        return getattr(commands, f"{command}_main")(rest)
    if command == "sample":
        from .commands import sample_main

        return sample_main(rest)
    if command == "encode":
        from .commands import encode_main

        return encode_main(rest)
    from .registry import unknown_name_message

    print(f"error: {unknown_name_message('command', command, COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
