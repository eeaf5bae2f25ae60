"""``textvae sample MODEL -n 5``: sentences decoded from prior draws, with the decoding flags every command
shares (``cli.common``)."""

from __future__ import annotations

from typing import Optional, Sequence

from .common import (
    CommandParser,
    add_decoding_arguments,
    add_model_arguments,
    decoding_kwargs,
    int_at_least,
    load_model,
    run_command,
)


def sample_parser(prog: str = "textvae sample") -> CommandParser:
    parser = CommandParser(prog=prog, description="Decode sentences from latents drawn from the prior, one per line.")
    add_model_arguments(parser)
    parser.add_argument("-n", "--num", type=int_at_least(1), default=5, help="sentences to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws and of sampled decoding")
    add_decoding_arguments(parser)
    return parser


def _sample(argv: Optional[Sequence[str]]) -> int:
    args = sample_parser().parse_args(argv)
    kwargs = decoding_kwargs(args)
    model, _ = load_model(args.model, args.device)
    for sentence in model.sample(args.num, seed=args.seed, **kwargs):
        print(sentence)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print sentences decoded from prior samples; the exit status (2 with one ``error:`` line on bad input)."""
    return run_command(_sample, argv)
