"""What every subcommand that loads a model shares (``textvae evaluate | interpolate | sample | encode``): the one
way to load a model or run folder (``load_model``), the shared decoding flags (``add_decoding_arguments``,
``decoding_kwargs``), an argument parser that fails with one ``error:`` line, and ``run_command``."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from pathlib import Path
from typing import Iterator, Optional

from ..errors import CommandError, LengthWarning, TextVAEError

MODEL_SUBFOLDERS = ("best", "final", "last")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in ``--help``, except where the help text already says it (defaults of None)
    or the option is an on/off flag."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose defaults show in ``--help`` and whose errors (a bad or missing value) raise
    ``CommandError``, so the command prints one ``error:`` line and exits with status 2, never a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise CommandError(f"{message} (see {self.prog} --help)")


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = False):
    """An argparse type: a float in [low, high] ((low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > low if low_open else value >= low) or not value <= high or math.isinf(value):
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high < math.inf else (
                f"{'above' if low_open else 'at least'} {low:g}")
            raise argparse.ArgumentTypeError(f"must be {'in ' if high < math.inf else ''}{bounds}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def resolve_model_folder(path: str) -> Path:
    """A model folder (with ``config.json``), or a run folder holding one as ``best``/``final``/``last``."""
    folder = Path(path)
    if (folder / "config.json").is_file():
        return folder
    for name in MODEL_SUBFOLDERS:
        if (folder / name / "config.json").is_file():
            print(f"using the model in {folder / name}", file=sys.stderr)
            return folder / name
    if not folder.exists():
        raise CommandError(f"model folder not found: {folder} does not exist")
    raise CommandError(
        f"{folder} is not a model folder: no config.json in it nor in a {'/'.join(MODEL_SUBFOLDERS)} subfolder"
    )


def load_model(path: "str | Path", device: Optional[str] = None):
    """The model of a model folder or run folder (``resolve_model_folder``) and that folder. On a CPU the
    command's process also keeps freed memory for reuse, as training does (importance-weighted NLL over PTB's test
    split: 94.6 -> 77.5 s per 100 sentences at K = 500)."""
    from ..models.base import load_pretrained
    from ..training.host_memory import keep_freed_host_memory

    folder = resolve_model_folder(str(path))
    model = load_pretrained(folder, device=device)
    if model.device.type == "cpu":
        keep_freed_host_memory()
    return model, folder


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional MODEL (a model or run folder) and ``--device``."""
    parser.add_argument("model", help="model folder written by save_pretrained (config.json, model.safetensors, "
                        "tokenizer), or a run folder holding one as best/, final/ or last/")
    parser.add_argument("--device", default=None, help="torch device to run on, e.g. cuda (default: the CPU)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--corpus`` and ``--config``: which corpus goes with the model (``data_config`` reads them)."""
    parser.add_argument("--data-dir", default=None,
                        help="corpus folder (train/valid/test files); default: the run's config.yaml, else the "
                        "embedded synthetic corpus")
    parser.add_argument("--corpus", default=None, help="corpus loader: lines (default with --data-dir), hf, synthetic")
    parser.add_argument("--config", default=None,
                        help="a run's config.yaml whose data section names the corpus (default: the one beside "
                        "the model folder, when there is one)")


def data_config(args: argparse.Namespace, model_folder: Path) -> tuple:
    """The DataConfig to read (``add_data_arguments``'s flags) and where it came from: --data-dir/--corpus, else
    the run's config.yaml, else the embedded corpus."""
    from ..config import DataConfig, load_config

    config_path = Path(args.config) if args.config else model_folder.parent / "config.yaml"
    if args.config and not config_path.is_file():
        raise CommandError(f"config file {config_path} not found")
    if args.data_dir or args.corpus:
        base = load_config(config_path).data if args.config else DataConfig()
        corpus = args.corpus or ("lines" if args.data_dir else base.corpus)
        return DataConfig(**{**base.__dict__, "corpus": corpus, "data_dir": args.data_dir or base.data_dir}), "arguments"
    if config_path.is_file():
        return load_config(config_path).data, str(config_path)
    return DataConfig(), "the embedded synthetic corpus (defaults)"


SAMPLE_ONLY = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
BEAM_ONLY = {"beam_size": 4, "length_penalty": 1.0}


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags every command that generates text takes (``decoding_kwargs`` reads them back)."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="greedy",
                       help="greedy: the most likely token each step; sample: draw from the softmax; beam: beam search")
    group.add_argument("--temperature", type=float_in(0.0, low_open=True), default=SAMPLE_ONLY["temperature"],
                       help="sample: divide the logits by this (below 1: safer, above 1: more varied)")
    group.add_argument("--top-k", type=int_at_least(0), default=SAMPLE_ONLY["top_k"],
                       help="sample: only from the k most likely tokens (0: all)")
    group.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=SAMPLE_ONLY["top_p"],
                       help="sample: only from the smallest set of tokens whose probability reaches p (1: all)")
    group.add_argument("--beam-size", type=int_at_least(1), default=BEAM_ONLY["beam_size"],
                       help="beam: hypotheses kept per sentence")
    group.add_argument("--length-penalty", type=float_in(0.0), default=BEAM_ONLY["length_penalty"],
                       help="beam: rank finished hypotheses by log p / length**this (0: raw log p, favours short)")
    group.add_argument("--repetition-penalty", type=float_in(1.0), default=1.0,
                       help="any strategy: divide positive and multiply negative logits of tokens already in the "
                       "sentence by this (CTRL; 1: off, 1.2-1.5 usual)")
    group.add_argument("--no-repeat-ngram-size", type=int_at_least(0), default=0,
                       help="any strategy: never repeat an n-gram of this many tokens within a sentence (0: off)")
    group.add_argument("--max-length", type=int_at_least(1), default=None,
                       help="most tokens per sentence (default: the model's max_length)")


def decoding_kwargs(args: argparse.Namespace) -> dict:
    """The ``generate`` keyword arguments of the decoding flags; a flag of another strategy is an error."""
    kwargs = {"strategy": args.strategy, "max_length": args.max_length,
              "repetition_penalty": args.repetition_penalty, "no_repeat_ngram_size": args.no_repeat_ngram_size}
    for strategy, flags in (("sample", SAMPLE_ONLY), ("beam", BEAM_ONLY)):
        if args.strategy == strategy:
            kwargs.update({name: getattr(args, name) for name in flags})
        else:
            changed = [name for name, default in flags.items() if getattr(args, name) != default]
            if changed:
                names = ", ".join("--" + name.replace("_", "-") for name in changed)
                raise CommandError(f"{names} apply to --strategy {strategy}, not {args.strategy}")
    return kwargs


@contextlib.contextmanager
def command_warnings() -> Iterator[None]:
    """While a command runs, a length warning reads as one ``warning: ...`` line and each message shows once,
    though every stage of ``textvae evaluate`` tokenizes the same sentences again."""
    show, shown = warnings.showwarning, set()

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, LengthWarning):
            show(message, category, filename, lineno, file, line)
        elif str(message) not in shown:
            shown.add(str(message))
            print(f"warning: {message}", file=sys.stderr if file is None else file)

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.simplefilter("always", LengthWarning)  # every one reaches one_line, which keeps the first
        warnings.showwarning = one_line
        yield


def run_command(main, argv) -> int:
    """``main(argv)``'s exit status; any deliberate error (``TextVAEError``; ``ValueError`` from a library
    function's argument check) becomes one ``error:`` line on standard error and status 2."""
    try:
        with command_warnings():
            return main(argv)
    except (TextVAEError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
