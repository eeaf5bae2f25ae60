"""``textvae train`` (and ``scripts/train_text_vae.py``, ``scripts/train_dialogue.py``, ``scripts/train_image_vae.py``):
flags, config, training,
and the closing summary (``evaluation.summary``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Optional, Sequence

from ..config import load_config
from .common import command_warnings
from ..evaluation.summary import print_dialogue_summary, print_summary

DEFAULT_CONFIG = "default.yaml"
DIALOGUE_CONFIG = "dailydialog_cvae.yaml"
NEGOTIATION_CONFIG = "dealornodeal_larl_cat.yaml"


SENTENCE_DESCRIPTION = "Train a sentence VAE. With no arguments: the embedded corpus and configs/default.yaml settings."
DIALOGUE_DESCRIPTION = ("Train a dialogue VAE. With no --config: configs/dailydialog_cvae.yaml (DailyDialog from "
                        "--data-dir or $TEXTVAE_DATA/dailydialog).")


def build_parser(prog: str = "train_text_vae.py", description: str = SENTENCE_DESCRIPTION) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Trailing key=value pairs override the config, e.g. model.latent.size=32 train.learning_rate=5e-4",
    )
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults of configs/default.yaml)")
    parser.add_argument("--data-dir", help="folder with train/valid/test files; sets data.data_dir "
                        "(and data.corpus=lines when the config uses the embedded corpus)")
    parser.add_argument("--output-dir", help="where checkpoints, logs and model folders go (train.output_dir)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-summary", action="store_true", help="skip the closing reconstructions and samples")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser


def default_config_path(name: str = DEFAULT_CONFIG) -> Optional[str]:
    """configs/<name> from a source checkout, if there is one (an installed package uses built-in defaults)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "configs", name)
    return path if os.path.isfile(path) else None


def config_from_args(args: argparse.Namespace, default_config: str = DEFAULT_CONFIG):
    overrides = list(args.overrides)
    config = load_config(args.config or default_config_path(default_config), overrides)
    extra = []
    if args.data_dir:
        extra.append(f"data.data_dir={args.data_dir}")
        if config.data.corpus == "synthetic":
            extra.append("data.corpus=lines")
    if args.output_dir:
        extra.append(f"train.output_dir={args.output_dir}")
    if args.max_steps is not None:
        extra.append(f"train.max_steps={args.max_steps}")
    if extra:
        config = load_config(args.config or default_config_path(default_config), overrides + extra)
    return config


def main(
    argv: Optional[Sequence[str]] = None,
    prog: str = "train_text_vae.py",
    summary: Callable = print_summary,
    default_config: str = DEFAULT_CONFIG,
    description: str = SENTENCE_DESCRIPTION,
) -> int:
    """Parse flags, train, print ``summary(result, data)``; ``dialogue_main`` passes the dialogue summary and config."""
    with command_warnings():
        return _train_main(argv, prog, summary, default_config, description)


def _train_main(argv, prog: str, summary: Callable, default_config: str, description: str) -> int:
    from ..errors import TextVAEError
    from ..training.trainer import train

    args = build_parser(prog, description).parse_args(argv)
    try:
        config = config_from_args(args, default_config)
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    main_process = int(os.environ.get("RANK", "0")) == 0  # accelerate's state is made inside train(), not before
    try:
        from ..data.pipeline import prepare_data

        data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
        if main_process:
            print(data.describe(), flush=True)
        result = train(config, resume=args.resume, data=data, progress=not args.no_progress)
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print("\n" + trained_line(result, config.train.max_steps)
              + f"; wall time with data and summary so far {time.perf_counter() - start:.1f} s")
        if not args.no_summary:
            summary(result, data)
    return 0


def dialogue_main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/train_dialogue.py``: ``main`` with the dialogue defaults and the dialogue summary."""
    return main(argv, prog="train_dialogue.py", summary=print_dialogue_summary, default_config=DIALOGUE_CONFIG,
                description=DIALOGUE_DESCRIPTION)


NEGOTIATION_DESCRIPTION = ("Train a Deal or No Deal agent, supervised stage. With no --config: "
                           "configs/dealornodeal_larl_cat.yaml (data from --data-dir or $TEXTVAE_DATA/dealornodeal).")


def negotiation_main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/train_negotiation.py --stage supervised``: ``main`` with the negotiation defaults and a summary
    that plays the trained agent against itself."""
    from ..evaluation.summary import print_negotiation_summary

    return main(argv, prog="train_negotiation.py", summary=print_negotiation_summary,
                default_config=NEGOTIATION_CONFIG, description=NEGOTIATION_DESCRIPTION)


IMAGE_CONFIG = "sprites_beta_vae.yaml"
IMAGE_DESCRIPTION = ("Train an image VAE (the reference baselines). With no --config: configs/sprites_beta_vae.yaml; "
                     "--data-dir is the file or folder of mnist, frey_faces and image_folder corpora.")


def image_main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/train_image_vae.py``: ``main`` with the image defaults and the image summary (IW-NLL, PNG grids)."""
    from ..evaluation.images import print_image_summary  # PIL, loaded when an image run ends

    return main(argv, prog="train_image_vae.py", summary=print_image_summary, default_config=IMAGE_CONFIG,
                description=IMAGE_DESCRIPTION)


def trained_line(result, max_steps: int) -> str:
    """What this run trained: its steps (not the resumed run's total), their time and rate, and skipped steps."""
    steps = result.state.step - result.start_step
    if steps == 0:
        if result.start_step:
            return f"trained 0 steps (resumed at step {result.start_step}, train.max_steps is {max_steps})"
        return "trained 0 steps (train.max_steps is 0)"
    span = f" (steps {result.start_step + 1} to {result.state.step})" if result.start_step else ""
    skipped = f", {result.skipped_steps} skipped as not finite" if result.skipped_steps else ""
    tokens_per_s = result.tokens / max(result.seconds, 1e-9)
    return f"trained {steps} steps{span} in {result.seconds:.1f} s ({tokens_per_s:,.0f} tokens/s{skipped})"
