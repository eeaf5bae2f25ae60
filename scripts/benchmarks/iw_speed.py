"""Speed of the importance-weighted NLL (K samples of z per sentence) as model FLOP utilisation: forward FLOPs of
the encoder once per sentence and of the decoder once per sample (6.25 MFLOP per token and sample for the PTB
config: vocabulary 10,002, embedding 256, LSTM 256, latent 32) over the fp32 matrix-multiply rate measured in the
same run, so the figure survives a host whose speed drifts. Beside the library, in the same run:

- ``previous``: the library's evaluation path before the current one (output layer shifted by the column maximum
  with the bias added in a separate pass, decoder calls of 8,192 tokens), kept here as the before figure;
- ``li_et_al``: the evaluation loop of He et al. 2019 and Li et al. 2019 (``calc_iwnll``/``nll_iw``), one sentence
  at a time, the encoder rerun for every chunk of 100 samples, full logits and ``F.cross_entropy``: a bare floor.

Every implementation scores the same sentences with the same weights; the report gives each one's mean NLL minus the
library's on the sentences both scored (the previous path draws the same samples; li_et_al its own).

    python scripts/benchmarks/iw_speed.py --data-dir ../shared/data/ptb --samples 1 10 100 500 --sentences 300
    python scripts/benchmarks/iw_speed.py --whole-split 100 --samples --floor-sentences 0   # the test split, K = 100

Benchmark on a quiet machine; the utilisation curve over K goes to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the library of this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import PTB_CONFIG, decoder_flops, encoder_flops, find_ptb, latent_code_size, load_ptb_like, matmul_rate  # noqa: E402

from textvae import TextVAE, load_pretrained  # noqa: E402
from textvae.evaluation.likelihood import importance_weighted_nll  # noqa: E402
from textvae.modules import fused  # noqa: E402
from textvae.training.host_memory import keep_freed_host_memory  # noqa: E402

PREVIOUS_MAX_TOKENS = 8192


def forward_flops(model, sentences: list[str], num_samples: int) -> float:
    """Encoder FLOPs once per sentence plus decoder FLOPs once per sample (as a plain forward pass counts them)."""
    config = model.config
    words = np.array([len(ids) for ids in model.token_ids(sentences)], dtype=np.float64)
    z = latent_code_size(config.latent)
    vocab = model.tokenizer.vocab_size
    return float(np.sum(encoder_flops(words, config.encoder, z))
                 + num_samples * np.sum(decoder_flops(words, config.decoder, z, vocab)))


def previous_evaluation_nll(hidden, weight, bias, targets):
    """The output layer's gradient-free path before this benchmark's change: per block, the logits with the bias
    added, shifted by their column maximum, exponentiated and summed (``fused`` keeps the pieces for training)."""
    return torch.cat([
        fused._nll_and_exp_(fused._logits_t(block, weight, bias)[:, : block.size(0)], block_targets)[0]
        for block, block_targets in zip(hidden.split(fused.EVAL_BLOCK_TOKENS), targets.split(fused.EVAL_BLOCK_TOKENS))
    ])


MAX_TOKENS = None  # the library's default unless --max-tokens


def library(model, sentences, num_samples: int) -> torch.Tensor:
    return importance_weighted_nll(model, sentences, num_samples=num_samples, seed=0, progress=False,
                                   max_tokens=MAX_TOKENS)


def previous(model, sentences, num_samples: int) -> torch.Tensor:
    current = fused._evaluation_nll
    fused._evaluation_nll = previous_evaluation_nll
    try:
        return importance_weighted_nll(model, sentences, num_samples=num_samples, seed=0, progress=False,
                                       max_tokens=PREVIOUS_MAX_TOKENS)
    finally:
        fused._evaluation_nll = current


@torch.no_grad()
def li_et_al(model, sentences, num_samples: int, chunk: int = 100) -> torch.Tensor:
    """He et al.'s ``nll_iw`` over a batch of one sentence: for each chunk of ``chunk`` samples, encode, sample z,
    decode all samples with full (samples, T, V) logits and ``F.cross_entropy``; logsumexp over every sample."""
    decoder, latent = model.decoder, model.latent
    out = []
    for ids in model.token_ids(sentences):
        x = torch.tensor([[model.tokenizer.bos_id, *ids, model.tokenizer.eos_id]])
        lengths = torch.tensor([x.size(1)])
        log_w = []
        for start in range(0, num_samples, chunk):
            ns = min(chunk, num_samples - start)
            q = model.posterior(x, lengths)  # the reference reruns the encoder for every chunk
            z = latent.rsample(q, num_samples=ns)[:, 0]  # (ns, D)
            inputs, targets = x[:, :-1].expand(ns, -1), x[:, 1:].expand(ns, -1)
            embedded = torch.cat([decoder.embedding(inputs), z.unsqueeze(1).expand(-1, inputs.size(1), -1)], -1)
            c0 = decoder.z_to_state(z).unsqueeze(0)
            hidden, _ = decoder.rnn(embedded, (torch.tanh(c0), c0))
            logits = decoder.output(hidden)  # (ns, T, V)
            rec = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
            log_w.append(-rec.view(ns, -1).sum(1) + latent.log_p(z.unsqueeze(1))[:, 0] - latent.log_q(q, z.unsqueeze(1))[:, 0])
        out.append(-(torch.logsumexp(torch.cat(log_w).double(), 0) - math.log(num_samples)))
    return torch.stack(out)


IMPLEMENTATIONS = {"textvae": library, "previous": previous, "li_et_al": li_et_al}


def timed(fn, model, sentences, num_samples: int, flops: float, rate: float) -> dict:
    start = time.perf_counter()
    nll = fn(model, sentences, num_samples)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "flops": flops, "flops_per_s": flops / seconds, "utilisation": flops / seconds / rate,
            "nll": float(nll.mean()), "sentences": len(sentences), "per_sentence": nll}


def breakdown(model, sentences, num_samples: int, rate: float) -> dict:
    """Where the library's time goes at ``num_samples``, from torch.profiler's per-operator CPU times: the output
    layer's product (the matrix products with the vocabulary as one side), its exp and the sums and logs after it,
    the decoder's LSTM, and everything else; with the FLOP share and achieved rate of the product and the LSTM."""
    from torch.profiler import ProfilerActivity, profile

    vocab = model.tokenizer.vocab_size
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        library(model, sentences, num_samples)
        wall = time.perf_counter() - start
    seconds = {"output_product": 0.0, "exp": 0.0, "sum_log": 0.0, "lstm": 0.0}
    for event in prof.key_averages(group_by_input_shape=True):
        name, self_s = event.key, event.self_cpu_time_total / 1e6
        if name in ("aten::mm", "aten::addmm") and any(vocab in shape for shape in event.input_shapes if shape):
            seconds["output_product"] += self_s
        elif name == "aten::exp_":
            seconds["exp"] += self_s
        elif name in ("aten::sum", "aten::log_"):
            seconds["sum_log"] += self_s
        elif name == "aten::lstm":
            seconds["lstm"] += event.cpu_time_total / 1e6  # inclusive: its own products and gates
    seconds["other"] = wall - sum(seconds.values())
    config = model.config
    words = np.array([len(ids) for ids in model.token_ids(sentences)], dtype=np.float64)
    tokens = float(np.sum(words + 1)) * num_samples
    product_flops = tokens * 2 * config.decoder.hidden_size * vocab
    total_flops = forward_flops(model, sentences, num_samples)
    z = latent_code_size(config.latent)
    lstm_flops = float(np.sum(decoder_flops(words, config.decoder, z, vocab))) * num_samples - product_flops
    report = {"num_samples": num_samples, "sentences": len(sentences), "wall_seconds": wall,
              "utilisation": total_flops / wall / rate,
              "share_of_time": {k: v / wall for k, v in seconds.items()},
              "share_of_flops": {"output_product": product_flops / total_flops, "lstm": lstm_flops / total_flops},
              "output_product_utilisation": product_flops / seconds["output_product"] / rate,
              "lstm_utilisation": lstm_flops / seconds["lstm"] / rate if seconds["lstm"] else None}
    # the best the evaluation could reach if everything but the product took no time, at the product's own rate
    report["ceiling_product_only"] = report["output_product_utilisation"] / report["share_of_flops"]["output_product"]
    return report


def block_probe(vocab: int, hidden: int, rate: float, reps: int = 9) -> dict:
    """The output layer's pieces on one CPU evaluation block, best of ``reps``: the product (vocab x hidden') by
    (hidden' x tokens) as a fraction of the matrix-multiply rate, and the in-place exp and the column sums after it
    as fractions of the product's time."""
    tokens = fused._evaluation_block(vocab, torch.device("cpu"))
    weight = torch.randn(vocab, fused._round_up(hidden + 2)) * 0.05
    right = torch.randn(tokens, weight.size(1))

    def best(fn) -> float:
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    logits = weight @ right.t()
    scratch = logits.clone()
    product = best(lambda: weight @ right.t())
    copy = best(lambda: scratch.copy_(logits))
    exp = best(lambda: scratch.copy_(logits).exp_()) - copy
    sums = best(lambda: scratch.sum(0))
    flops = 2 * vocab * weight.size(1) * tokens
    return {"tokens": tokens, "hidden_padded": weight.size(1), "product_utilisation": flops / product / rate,
            "exp_over_product": exp / product, "sum_over_product": sums / product}


def agreement(row: dict) -> None:
    """Each implementation's mean NLL minus the library's on the sentences both scored (the per-sentence values
    are dropped from the row, for the JSON): the previous path draws the same samples, li_et_al its own."""
    ours = row["textvae"].pop("per_sentence")
    for name in IMPLEMENTATIONS:
        if name != "textvae" and name in row:
            theirs = row[name].pop("per_sentence")
            row[name]["nll_minus_textvae"] = float((theirs - ours[: theirs.numel()]).mean())
            print(f"      {name} NLL - textvae NLL on the same {theirs.numel()} sentences: "
                  f"{row[name]['nll_minus_textvae']:+.4f}")


def plot(report: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name in IMPLEMENTATIONS:
        points = [(row["num_samples"], row[name]["utilisation"]) for row in report["curve"] if name in row]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("importance samples K")
    ax.set_ylabel("model FLOP utilisation")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"IW-NLL on PTB test (matmul {report['machine']['matmul_flops'] / 1e9:.0f} GFLOP/s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="PTB folder (default: $TEXTVAE_DATA/ptb or ../shared/data/ptb)")
    parser.add_argument("--model", help="a trained model folder (default: the PTB config, freshly initialised: "
                        "the FLOPs and the speed do not depend on the weights)")
    parser.add_argument("--samples", type=int, nargs="*", default=[1, 10, 100, 500], help="K values of the curve")
    parser.add_argument("--sentences", type=int, default=300, help="first N test sentences for the curve")
    parser.add_argument("--floor-sentences", type=int, default=100,
                        help="first N test sentences for li_et_al (one sentence a call is slow; 0: skip it)")
    parser.add_argument("--whole-split", type=int, default=0, metavar="K",
                        help="also time textvae and previous on the whole test split at this K")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="tokens per decoder call for textvae (default: the library's, 8,192 on a CPU)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="K",
                        help="also profile the library at this K: time shares of the output product, exp, LSTM")
    parser.add_argument("--block-probe", action="store_true",
                        help="also time the output layer's product, exp and sums on one evaluation block")
    parser.add_argument("--json", default="runs/iw_speed.json")
    parser.add_argument("--plot", default="runs/iw_speed.png")
    args = parser.parse_args(argv)
    global MAX_TOKENS
    MAX_TOKENS = args.max_tokens
    keep_freed_host_memory()
    torch.manual_seed(0)
    data, config, source = load_ptb_like(find_ptb(args.data_dir), PTB_CONFIG)
    model = (load_pretrained(args.model) if args.model else TextVAE(config.model, data.tokenizer)).eval()
    test = data.sentences("test")
    rates = [matmul_rate(torch.device("cpu"))]
    report = {"machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
              "data": source, "model": args.model or "ptb_lstm_vae.yaml, initialised", "curve": []}
    print(f"{source}; fp32 matmul {rates[0] / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads")
    print(f"{'K':>5} {'impl':>9} {'sentences':>9} {'seconds':>8} {'GFLOP/s':>8} {'util':>6} {'NLL':>9}")

    def show(k: int, name: str, m: dict) -> None:
        print(f"{k:>5} {name:>9} {m['sentences']:>9} {m['seconds']:>8.1f} {m['flops_per_s'] / 1e9:>8.1f} "
              f"{m['utilisation']:>6.3f} {m['nll']:>9.3f}", flush=True)

    curve_sentences = test[: args.sentences] if args.sentences else test
    floor_sentences = test[: args.floor_sentences]
    for k in args.samples:
        row = {"num_samples": k}
        for name, fn in IMPLEMENTATIONS.items():
            subset = floor_sentences if name == "li_et_al" else curve_sentences
            if not subset:
                continue
            row[name] = timed(fn, model, subset, k, forward_flops(model, subset, k), rates[0])
            show(k, name, row[name])
        agreement(row)
        report["curve"].append(row)
    if args.whole_split:
        k, flops = args.whole_split, forward_flops(model, test, args.whole_split)
        report["whole_split"] = {"num_samples": k}
        for name in ("previous", "textvae"):
            report["whole_split"][name] = timed(IMPLEMENTATIONS[name], model, test, k, flops, rates[0])
            show(k, name, report["whole_split"][name])
        agreement(report["whole_split"])
        whole = report["whole_split"]
        whole["speedup"] = whole["previous"]["seconds"] / whole["textvae"]["seconds"]
        print(f"whole test split, K={k}: {whole['previous']['seconds']:.0f} s -> {whole['textvae']['seconds']:.0f} s "
              f"({whole['speedup']:.2f}x)")
    if args.breakdown:
        report["breakdown"] = breakdown(model, curve_sentences, args.breakdown, rates[0])
    if args.block_probe:
        report["block_probe"] = block_probe(model.tokenizer.vocab_size, config.model.decoder.hidden_size, rates[0])
    rates.append(matmul_rate(torch.device("cpu")))
    report["machine"]["matmul_flops"] = max(rates)
    report["machine"]["matmul_flops_start_end"] = rates
    for rows in report["curve"] + ([report["whole_split"]] if "whole_split" in report else []):
        for name in IMPLEMENTATIONS:
            if name in rows:  # utilisation against the best rate seen, start or end
                rows[name]["utilisation"] = rows[name]["flops_per_s"] / max(rates)
    print(f"matmul rate at start and end: {rates[0] / 1e9:.1f}, {rates[1] / 1e9:.1f} GFLOP/s "
          "(utilisation reported against the larger)")
    for row in report["curve"]:
        parts = [f"{name} {row[name]['utilisation']:.3f}" for name in IMPLEMENTATIONS if name in row]
        print(f"K={row['num_samples']}: " + ", ".join(parts))
    if "block_probe" in report:
        probe = report["block_probe"]
        probe["product_utilisation"] *= rates[0] / max(rates)  # against the larger rate, as everything else
        print(f"one block ({config.model.decoder.hidden_size} x {probe['tokens']} tokens): the product at "
              f"{probe['product_utilisation']:.3f} of the matmul rate; exp {probe['exp_over_product']:.2f} and sums "
              f"{probe['sum_over_product']:.2f} of its time")
    if "breakdown" in report:
        b = report["breakdown"]
        for key in ("utilisation", "output_product_utilisation", "lstm_utilisation", "ceiling_product_only"):
            if b[key] is not None:
                b[key] *= rates[0] / max(rates)
        print(f"breakdown at K={b['num_samples']} ({b['sentences']} sentences, {b['wall_seconds']:.1f} s under the "
              f"profiler, utilisation {b['utilisation']:.3f}): time " + ", ".join(
                  f"{k} {v:.1%}" for k, v in b["share_of_time"].items())
              + f"; the output product is {b['share_of_flops']['output_product']:.1%} of the FLOPs and runs at "
              f"{b['output_product_utilisation']:.3f} of the matmul rate, the LSTM at "
              f"{b['lstm_utilisation'] or 0:.3f}; with nothing but the product the evaluation would reach "
              f"{b['ceiling_product_only']:.3f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if report["curve"]:
        plot(report, Path(args.plot))
        print(f"wrote {args.json} and {args.plot}")
    else:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
