"""Greedy decoding speed: sentences per second for outputs of a fixed length, with the decoder's incremental state
(the transformer's key/value cache: one new position per token) and without it (every step reruns the decoder over
all tokens so far). <eos> is never chosen, so every sentence runs to ``--length`` tokens; weights are random, as
speed does not depend on them. Both ways must give the same tokens, and the script checks that they do.

    python scripts/benchmarks/generation.py                                    # configs/ptb_transformer_vae.yaml
    python scripts/benchmarks/generation.py --config configs/ptb_lstm_vae.yaml --json generation.json

Benchmark on a quiet machine: anything else running halves these figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import textvae
from textvae.data.tokenization import SPECIALS, WordTokenizer
from textvae.cli import run_script
from textvae.modules.decoders import RecomputingDecoder

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "ptb_transformer_vae.yaml"


class NeverEnds(nn.Module):
    """A decoder whose steps never choose <eos>, so every sentence is exactly as long as the limit."""

    def __init__(self, decoder: nn.Module, eos_id: int) -> None:
        super().__init__()
        self.inner, self.eos_id = decoder, eos_id

    def initial_state(self, z: torch.Tensor):
        return self.inner.initial_state(z)

    def step(self, tokens: torch.Tensor, z: torch.Tensor, state):
        logits, state = self.inner.step(tokens, z, state)
        return logits.index_fill(1, torch.tensor([self.eos_id], device=logits.device), -torch.inf), state

    def select_state(self, state, index: torch.Tensor):
        return self.inner.select_state(state, index)


def build_model(config, device: torch.device) -> textvae.TextVAE:
    """The config's model with random weights over a vocabulary of the config's size (no data needed)."""
    words = [f"w{i}" for i in range(config.data.tokenizer.vocab_size - len(SPECIALS))]
    torch.manual_seed(0)
    return textvae.build_model(config, WordTokenizer(list(SPECIALS) + words)).to(device).eval()


def time_greedy(model, z: torch.Tensor, batch_size: int, length: int, device: torch.device) -> tuple[float, list]:
    """Seconds to decode every latent greedily in batches, after one warm-up batch; and the decoded rows."""
    model.generate(z[:batch_size], max_length=length)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows, start = [], time.perf_counter()
    for i in range(0, z.size(0), batch_size):
        rows += model.generate(z[i : i + batch_size], max_length=length)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="model config (default: %(default)s)")
    parser.add_argument("--sentences", type=int, default=256, help="sentences decoded each way")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--length", type=int, default=32, help="tokens per sentence")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    config = textvae.load_config(args.config, [f"model.max_length={args.length}"])
    model = build_model(config, device)
    decoder = model.decoder
    z = model.latent.sample_prior(args.sentences, generator=torch.Generator().manual_seed(0)).to(device)
    results = {}
    outputs = {}
    for name, wrapped in (("cached", decoder), ("recomputed", RecomputingDecoder(decoder))):
        model.decoder = NeverEnds(wrapped, model.tokenizer.eos_id)
        seconds, outputs[name] = time_greedy(model, z, args.batch_size, args.length, device)
        results[name] = {"seconds": seconds, "sentences_per_s": args.sentences / seconds,
                         "tokens_per_s": args.sentences * args.length / seconds}
    model.decoder = decoder
    assert all(len(row) == args.length for row in outputs["cached"])
    identical = outputs["cached"] == outputs["recomputed"]
    speedup = results["recomputed"]["seconds"] / results["cached"]["seconds"]
    report = {
        "machine": {"platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "config": args.config, "decoder": config.model.decoder.type, "z_mode": config.model.decoder.z_mode,
        "vocab": model.tokenizer.vocab_size, "sentences": args.sentences, "batch_size": args.batch_size,
        "length": args.length, "results": results, "cache_speedup": speedup, "identical_outputs": identical,
    }
    print(f"{Path(args.config).name}: {config.model.decoder.type} decoder, z at {config.model.decoder.z_mode}, "
          f"vocab {model.tokenizer.vocab_size}; greedy, {args.sentences} sentences of {args.length} tokens in batches "
          f"of {args.batch_size} on {device} ({torch.get_num_threads()} threads)")
    print(f"{'decoding':>11} {'seconds':>8} {'sentences/s':>12} {'tokens/s':>10}")
    for name, r in results.items():
        print(f"{name:>11} {r['seconds']:>8.2f} {r['sentences_per_s']:>12,.1f} {r['tokens_per_s']:>10,.0f}")
    print(f"cache speed-up {speedup:.2f}x; identical outputs: {identical}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(run_script(main))
