"""``textvae demo MODEL [--port 8000] [--host 127.0.0.1]``: serve the interpolation demo page over a model or run
folder (``textvae.demo``); the map's sentences are the validation split of the run's corpus."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Optional, Sequence

from ..errors import CommandError
from .common import (
    CommandParser,
    add_data_arguments,
    add_decoding_arguments,
    add_model_arguments,
    data_config,
    decoding_kwargs,
    int_at_least,
    load_model,
    run_command,
)


def demo_parser(prog: str = "textvae demo") -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=prog,
        description="Serve a local page over a model: interpolate between two sentences, see the path on a map of "
        "validation sentences, sample and reconstruct, respond (dialogue models), traverse (discrete latents). "
        "The decoding flags set the page's defaults.",
    )
    add_model_arguments(parser)
    parser.add_argument("--port", type=int_at_least(0), default=8000, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--map-sentences", type=int_at_least(0), default=1000,
                        help="validation sentences drawn on the map (the first N of the split; 0: no map)")
    add_data_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    add_decoding_arguments(parser)
    return parser


def _map(args: argparse.Namespace, model, folder):
    """The latent map of the corpus's validation sentences, from its cache when one fits."""
    from ..data.corpora import load_corpus
    from ..demo import cached_latent_map

    config, source = data_config(args, folder)
    # the cache fits when the weights, the data settings and the count are the ones it was built for
    key = json.loads(json.dumps({"data": dataclasses.asdict(config), "count": args.map_sentences}, default=str))

    def sentences() -> list[str]:
        print(f"encoding up to {args.map_sentences} validation sentences for the map ({source})", file=sys.stderr)
        found = load_corpus(config).split("valid")[: args.map_sentences]
        if len(found) < 2:
            raise CommandError(f"the map needs at least two validation sentences; {source} has {len(found)}")
        return found

    latent_map = cached_latent_map(model, folder, sentences, f"{config.corpus} validation split", key)
    print(f"map: {len(latent_map.sentences)} sentences, cached in {latent_map.cache}", file=sys.stderr)
    return latent_map


def _demo(argv: Optional[Sequence[str]]) -> int:
    from ..demo import Decoding, DemoApp, DemoServer

    args = demo_parser().parse_args(argv)
    if args.port > 65535:
        raise CommandError(f"--port must be at most 65535, got {args.port}")
    decoding_kwargs(args)  # a flag of another strategy is an error here too
    model, folder = load_model(args.model, args.device)
    decoding = Decoding(**{name: getattr(args, name) for name in Decoding.__dataclass_fields__})
    app = DemoApp(model, folder=str(folder), decoding=decoding)
    if hasattr(model, "respond"):
        app.map_note = "a dialogue model has no sentence map"
    elif args.map_sentences:
        app.latent_map = _map(args, model, folder)
    else:
        app.map_note = "no map: the demo was started with --map-sentences 0"
    try:
        server = DemoServer(app, args.host, args.port, quiet=args.quiet)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"serving {folder} on {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae demo MODEL``: serve the demo page until interrupted; the exit status (2 with one ``error:`` line on
    bad input)."""
    return run_command(_demo, argv)
