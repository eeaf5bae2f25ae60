"""`textvae train | evaluate | interpolate | sample | encode | demo`: one module per subcommand, each with ``main(argv)``;
``common`` holds the one way to load a model or run folder and the decoding flags they share."""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Optional, Sequence

from ..errors import TextVAEError

COMMANDS = {
    "train": "train a VAE (same flags as scripts/train_text_vae.py)",
    "evaluate": "IW-NLL, PPL per word and per token, KL, MI, AU, BLEU and figures on a split",
    "interpolate": "decode the path between two sentences through latent space",
    "sample": "decode sentences from prior samples",
    "encode": "encode sentences (a file or standard input) to latent codes",
    "demo": "serve a local page: interpolate, map, sample, respond, traverse",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: textvae COMMAND [args]\n\ncommands:")
        for name, help_text in COMMANDS.items():
            print(f"  {name:12s} {help_text}")
        print("\nevaluate, interpolate, sample, encode and demo take a model folder or a run folder (its best/, final/ "
              "or last/);\n`textvae COMMAND --help` lists a command's flags and their defaults.")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        return _dispatch(command, rest)
    except TextVAEError as exc:  # whatever a subcommand did not catch itself: one line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(command: str, rest: list[str]) -> int:
    """Run subcommand ``command`` (its module ``textvae.cli.<command>``) with its arguments; its exit status."""
    if command not in COMMANDS:
        from ..registry import unknown_name_message

        print(f"error: {unknown_name_message('command', command, COMMANDS)}", file=sys.stderr)
        return 2
    # imported on use: `textvae --help` and a mistyped command answer without loading torch
    module = importlib.import_module(f".{command}", __name__)
    if command == "train":
        return module.main(rest, prog="textvae train")
    return module.main(rest)


def run_script(main_function: Callable[[], "int | None"]) -> int:
    """Run a script's ``main()`` as the ``textvae`` command runs a subcommand: the library's own errors (a missing
    folder, a bad file, a bad setting) print as one ``error:`` line with exit status 2, never a traceback."""
    try:
        return main_function() or 0
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
