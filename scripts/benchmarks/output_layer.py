"""Forward + backward of a text VAE's output layer: ``textvae.modules.fused.linear_cross_entropy`` against
``nn.Linear`` + ``F.cross_entropy`` on the same random hidden states, in the same run, timed alternately (fastest of ``--repeats`` each).

    python scripts/benchmarks/output_layer.py --tokens 704 617 2816 --json output_layer.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from textvae.modules.fused import linear_cross_entropy
from textvae.cli import run_script
from textvae.training.host_memory import keep_freed_host_memory


def fastest_of_both(first, second, repeats: int) -> tuple[float, float]:
    """Fastest times of two steps timed alternately, so that whatever else the machine does falls on both alike."""
    for _ in range(3):
        first()
        second()
    times = ([], [])
    for _ in range(repeats):
        for step, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            step()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[704, 617, 2816],
                        help="predicted tokens per step (PTB batches of 32: about 700; of 128: about 2,800)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=10002)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    keep_freed_host_memory()  # as the trainer does, for both
    torch.manual_seed(0)
    layer = torch.nn.Linear(args.hidden, args.vocab)
    rows = []
    print(f"{'tokens':>7} {'plain ms':>9} {'fused ms':>9} {'ratio':>6}")
    for tokens in args.tokens:
        hidden = torch.randn(tokens, args.hidden, requires_grad=True)
        targets = torch.randint(0, args.vocab, (tokens,))
        upstream = torch.rand(tokens)
        plain, fused = fastest_of_both(
            lambda: F.cross_entropy(layer(hidden), targets, reduction="none").backward(upstream),
            lambda: linear_cross_entropy(hidden, layer.weight, layer.bias, targets).backward(upstream),
            args.repeats,
        )
        rows.append({"tokens": tokens, "plain_s": plain, "fused_s": fused, "ratio": fused / plain})
        print(f"{tokens:>7} {plain * 1e3:>9.1f} {fused * 1e3:>9.1f} {fused / plain:>6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"hidden": args.hidden, "vocab": args.vocab, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
