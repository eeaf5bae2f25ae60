"""Speed of the importance-weighted NLL (K samples of z per sentence) as model FLOP utilisation: forward FLOPs of
the encoder once per sentence and of the decoder once per sample (6.25 MFLOP per token and sample for the PTB
config: vocabulary 10,002, embedding 256, LSTM 256, latent 32) over the fp32 matrix-multiply rate measured in the
same run, so the figure survives a host whose speed drifts: each run is timed in slices (whole evaluation batches of
16 sentences, at least 32,768 decoder tokens), a 0.4-second sustained matmul probe between slices, and scored against the rate of the probes around each
slice (``timed``, ``SustainedRate``). The older, harsher figure is kept beside it (``util@peak``): the whole run
against the best burst of the matmul rate just before or after it (``RateTracker``). With ``--repeats R`` every
implementation runs R times, the implementations taking turns; each one's best run counts.
Beside the library, in the same run:

- ``previous``: the library's evaluation path before these changes, kept here as the before figure: ``nn.LSTM`` over
  every sample's copy of the sentence (the embeddings' input projection recomputed per sample), the output layer's
  full-vocabulary logits with the bias added in a separate pass, shifted by the column maximum, ``exp`` and summed,
  decoder calls of 8,192 tokens;
- ``li_et_al``: the evaluation loop of He et al. 2019 and Li et al. 2019 (``calc_iwnll``/``nll_iw``), one sentence
  at a time, the encoder rerun for every chunk of 100 samples, full logits and ``F.cross_entropy``: a bare floor.

Every implementation scores the same sentences with the same weights; the report gives each one's mean NLL minus the
library's on the sentences both scored (the previous path draws the same samples; li_et_al its own).

    python scripts/benchmarks/iw_speed.py --data-dir ../shared/data/ptb --samples 1 10 100 500 --sentences 300 --repeats 3
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

from throughput import (  # noqa: E402
    PTB_CONFIG, decoder_flops, encoder_flops, find_ptb, latent_code_size, load_ptb_like, matmul_rate, repeated_timings,
    sync,
)

from textvae import TextVAE, load_pretrained  # noqa: E402
from textvae.cli import run_script  # noqa: E402
from textvae.evaluation.likelihood import importance_weighted_nll  # noqa: E402
from textvae.models import sentence_vae  # noqa: E402
from textvae.modules import fused  # noqa: E402
from textvae.modules.decoders import expanded_samples_nll  # noqa: E402
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
    current = fused._evaluation_nll, sentence_vae.samples_nll
    fused._evaluation_nll, sentence_vae.samples_nll = previous_evaluation_nll, expanded_samples_nll
    try:
        return importance_weighted_nll(model, sentences, num_samples=num_samples, seed=0, progress=False,
                                       max_tokens=PREVIOUS_MAX_TOKENS)
    finally:
        fused._evaluation_nll, sentence_vae.samples_nll = current


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


class RateTracker:
    """The fp32 matrix-multiply rate, measured again after every timed run: each run is scored against the larger
    of the rates measured just before and just after it, so a host whose speed drifts during the benchmark (by up to
    30% within minutes on the shared 2-core host here) scores each run against the speed it had at the time."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rates = [matmul_rate(device)]

    def after_run(self) -> float:
        """Measure the rate now; return the larger of it and the one before the run."""
        self.rates.append(matmul_rate(self.device, repeats=5))
        return max(self.rates[-2:])


SLICE_TOKENS = 32_768  # at least this many decoder tokens (words + 1, times K) per timed slice: about 2 s here
EVAL_BATCH = 16  # importance_weighted_nll's sentences per batch


class SustainedRate:
    """The fp32 rate of back-to-back 2,048-square products kept up for ``seconds`` (their mean, not the best
    burst): the probe taken between the slices of an interleaved timing (``timed``)."""

    def __init__(self, device: torch.device, seconds: float = 0.4, size: int = 2048) -> None:
        self.device, self.seconds, self.size = device, seconds, size
        self.a = torch.randn(size, size, device=device)
        self.b = torch.randn(size, size, device=device)
        self.a @ self.b

    def __call__(self) -> float:
        sync(self.device)
        count, start = 0, time.perf_counter()
        while True:
            self.a @ self.b
            count += 1
            sync(self.device)
            elapsed = time.perf_counter() - start
            if elapsed >= self.seconds:
                return 2 * self.size**3 * count / elapsed


def rate_trace(seconds: float, device: torch.device, size: int = 2048) -> list[float]:
    """The sustained fp32 matmul rate (``SustainedRate``), one mean per second for ``seconds`` seconds: how much the
    host's speed moves from second to second (why ``timed`` probes between slices)."""
    probe = SustainedRate(device, seconds=1.0, size=size)
    return [probe() for _ in range(int(seconds))]


def slices(model, sentences: list[str], num_samples: int, tokens: int = SLICE_TOKENS,
           batch_size: int = EVAL_BATCH) -> list[list[int]]:
    """The sentences in the library's evaluation order (by length, ``evaluation.batches.eval_batches``), cut into
    runs of whole batches of ``batch_size`` holding at least ``tokens`` decoder tokens at ``num_samples`` samples
    (the last run may hold fewer): each run, evaluated alone, makes the same batches and decoder calls as it does
    inside one call over all the sentences. Returns each run's sentence indices."""
    ids = model.token_ids(sentences)
    order = sorted(range(len(sentences)), key=lambda i: len(ids[i]))
    out, current, count = [], [], 0
    for start in range(0, len(order), batch_size):
        batch = order[start: start + batch_size]
        current += batch
        count += sum(len(ids[i]) + 1 for i in batch) * num_samples
        if count >= tokens:
            out.append(current)
            current, count = [], 0
    return out + [current] if current else out


def timed(fn, model, sentences, num_samples: int, flops: float, rates: RateTracker, sustained: SustainedRate,
          slice_tokens: int = SLICE_TOKENS, batch_size: int = EVAL_BATCH) -> dict:
    """Time ``fn`` over ``sentences`` one slice (``slices``) at a time, with a sustained matmul probe before the
    first slice and after each one. ``utilisation`` is the FLOPs over the sum of each slice's time times the mean
    of the probes around it: the work and the reference rate measured over the same seconds, so the host's
    second-to-second drift (``--rate-trace`` shows it) largely cancels. ``utilisation_peak`` is the older, harsher
    figure: the whole time against the best burst of ``matmul_rate`` (``RateTracker``) just before or after the
    run."""
    pieces = slices(model, sentences, num_samples, slice_tokens, batch_size)
    before, seconds, rate_seconds, nll = sustained(), 0.0, 0.0, []
    for piece in pieces:
        start = time.perf_counter()
        nll.append(fn(model, [sentences[i] for i in piece], num_samples))
        elapsed = time.perf_counter() - start
        after = sustained()
        seconds += elapsed
        rate_seconds += elapsed * (before + after) / 2
        before = after
    nll = torch.cat(nll)[torch.argsort(torch.tensor([i for piece in pieces for i in piece]))]  # sentence order
    peak = rates.after_run()
    return {"seconds": seconds, "flops": flops, "flops_per_s": flops / seconds, "matmul_flops": rate_seconds / seconds,
            "utilisation": flops / rate_seconds, "matmul_flops_peak": peak, "utilisation_peak": flops / seconds / peak,
            "slices": len(pieces), "nll": float(nll.mean()), "sentences": len(sentences), "per_sentence": nll}


def breakdown(model, sentences, num_samples: int, rate: float) -> dict:
    """Where the library's time goes at ``num_samples``, from torch.profiler's per-operator CPU times: the output
    layer's product (the matrix products of its shifted weight's chunks, ``fused._shifting_weight``), its exp and
    the sums and logs after it, the decoder's recurrence, and everything else; with the FLOP share and achieved rate of the product and the LSTM."""
    from torch.profiler import ProfilerActivity, profile

    vocab = model.tokenizer.vocab_size
    shifted_width = fused._round_up(model.config.decoder.hidden_size + 2)  # the output layer's (V, H') chunks
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        library(model, sentences, num_samples)
        wall = time.perf_counter() - start
    seconds = {"output_product": 0.0, "exp": 0.0, "sum_log": 0.0, "lstm": 0.0}
    for event in prof.key_averages(group_by_input_shape=True):
        name, self_s = event.key, event.self_cpu_time_total / 1e6
        if name == "aten::mm" and event.input_shapes and event.input_shapes[0][-1:] == [shifted_width]:
            seconds["output_product"] += self_s
        elif name in ("aten::exp_", "aten::exp2_"):  # the evaluation path uses exp2
            seconds["exp"] += self_s
        elif name in ("aten::sum", "aten::log_"):
            seconds["sum_log"] += self_s
        elif name in ("aten::lstm", "rnn_over_samples"):
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
    """The output layer on one CPU evaluation block, best of ``reps``: its product alone (every vocabulary chunk by
    the block's hidden states) as a fraction of the matrix-multiply rate, and the whole gradient-free output layer
    (``fused._evaluation_nll``: product, exp2 and sums) as a fraction of the rate and as a multiple of the product's
    time; and the time of ``exp2`` on a chunk's logits over that of ``exp``."""
    tokens, rows = fused._evaluation_block(vocab, torch.device("cpu"))
    weight = torch.randn(vocab, hidden) * 0.05
    bias = torch.randn(vocab) * 0.1
    states = torch.randn(tokens, hidden)
    targets = torch.randint(0, vocab, (tokens,))
    chunks = fused._shifting_weight(weight, bias).split(rows)
    right_t = torch.randn(tokens, chunks[0].size(1)).t()
    logits = torch.empty(chunks[0].size(0), tokens)

    def best(fn) -> float:
        return min(repeated_timings(fn, reps, torch.device("cpu")))

    def products() -> None:
        for chunk in chunks:
            torch.mm(chunk, right_t, out=logits[: chunk.size(0)])

    product = best(products)
    layer = best(lambda: fused._evaluation_nll(states, weight, bias, targets))
    values = torch.randn_like(logits)
    copy = best(lambda: logits.copy_(values))
    exp = best(lambda: logits.copy_(values).exp_()) - copy
    exp2 = best(lambda: logits.copy_(values).exp2_()) - copy
    flops = 2 * vocab * hidden * tokens  # the model's FLOPs (not the shift columns' or padding's)
    return {"tokens": tokens, "vocab_rows_per_product": rows, "hidden_padded": chunks[0].size(1),
            "product_utilisation": flops / product / rate, "output_layer_utilisation": flops / layer / rate,
            "output_layer_over_product": layer / product, "exp2_over_exp": exp2 / exp}


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
        rows = [row for row in report["curve"] if name in row]
        if rows:
            k = [row["num_samples"] for row in rows]
            line, = ax.plot(k, [row[name]["utilisation"] for row in rows], marker="o", label=name)
            ax.plot(k, [row[name]["utilisation_peak"] for row in rows], marker=".", linestyle="--", alpha=0.6,
                    color=line.get_color(), label=f"{name}, against the peak rate")
    ax.set_xscale("log")
    ax.set_xlabel("importance samples K")
    ax.set_ylabel("model FLOP utilisation (best run)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("IW-NLL on PTB test: solid, against the sustained matmul rate measured\nbetween slices of each run; "
                 "dashed, against the best burst before or after it", fontsize=9)
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
                        help="tokens per decoder call for textvae (default: the library's, 32,768 on a CPU)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="K",
                        help="also profile the library at this K: time shares of the output product, exp, LSTM")
    parser.add_argument("--block-probe", action="store_true",
                        help="also time the output layer's product, exp and sums on one evaluation block")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of textvae and previous per K, taking turns; the best utilisation counts "
                        "(li_et_al: one)")
    parser.add_argument("--rate-trace", type=float, default=0, metavar="SECONDS",
                        help="first, the matmul rate once per second for this long (how much the host drifts)")
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
    if args.rate_trace:
        trace = rate_trace(args.rate_trace, torch.device("cpu"))
        print(f"matmul rate, one mean per second for {len(trace)} s: {min(trace) / 1e9:.1f} to {max(trace) / 1e9:.1f} "
              f"GFLOP/s (mean {sum(trace) / len(trace) / 1e9:.1f}): " + " ".join(f"{r / 1e9:.0f}" for r in trace))
    tracker = RateTracker(torch.device("cpu"))
    sustained = SustainedRate(torch.device("cpu"))
    rates = tracker.rates
    report = {"machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                          "rate_trace_per_second": trace if args.rate_trace else None},
              "data": source, "model": args.model or "ptb_lstm_vae.yaml, initialised", "curve": []}
    print(f"{source}; fp32 matmul {rates[0] / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads")
    print(f"{'K':>5} {'impl':>9} {'sentences':>9} {'slices':>6} {'seconds':>8} {'GFLOP/s':>8} {'matmul':>7} {'util':>6} "
          f"{'peak':>6} {'util@peak':>9} {'NLL':>9}")

    def show(k: int, name: str, m: dict) -> None:
        print(f"{k:>5} {name:>9} {m['sentences']:>9} {m['slices']:>6} {m['seconds']:>8.1f} {m['flops_per_s'] / 1e9:>8.1f} "
              f"{m['matmul_flops'] / 1e9:>7.1f} {m['utilisation']:>6.3f} {m['matmul_flops_peak'] / 1e9:>6.1f} "
              f"{m['utilisation_peak']:>9.3f} {m['nll']:>9.3f}", flush=True)

    curve_sentences = test[: args.sentences] if args.sentences else test
    floor_sentences = test[: args.floor_sentences]
    for k in args.samples:
        row = {"num_samples": k}
        for repeat in range(max(1, args.repeats)):
            for name, fn in IMPLEMENTATIONS.items():
                subset = floor_sentences if name == "li_et_al" else curve_sentences
                if not subset or (repeat and name == "li_et_al"):
                    continue
                run = timed(fn, model, subset, k, forward_flops(model, subset, k), tracker, sustained)
                show(k, name, run)
                each = row[name]["utilisation_each"] if name in row else []
                if name not in row or run["utilisation"] > row[name]["utilisation"]:
                    row[name] = run
                row[name]["utilisation_each"] = each + [run["utilisation"]]
        agreement(row)
        report["curve"].append(row)
    if args.whole_split:
        k, flops = args.whole_split, forward_flops(model, test, args.whole_split)
        report["whole_split"] = {"num_samples": k}
        for name in ("previous", "textvae"):
            report["whole_split"][name] = timed(IMPLEMENTATIONS[name], model, test, k, flops, tracker, sustained)
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
    report["machine"]["matmul_flops_measured"] = rates  # at the start, after every timed run, at the end
    print(f"matmul rate measured {len(rates)} times: {min(rates) / 1e9:.1f} to {max(rates) / 1e9:.1f} GFLOP/s (each "
          "run against the larger of the rates just before and after it; the probe and breakdown against the largest)")
    for row in report["curve"]:
        parts = [f"{name} {row[name]['utilisation']:.3f} (at peak {row[name]['utilisation_peak']:.3f})"
                 for name in IMPLEMENTATIONS if name in row]
        print(f"K={row['num_samples']}: " + ", ".join(parts))
    if "block_probe" in report:
        probe = report["block_probe"]
        for key in ("product_utilisation", "output_layer_utilisation"):
            probe[key] *= rates[0] / max(rates)  # against the larger rate, as everything else
        print(f"one block ({probe['tokens']} tokens, {probe['vocab_rows_per_product']} vocabulary rows a product): "
              f"the product alone at {probe['product_utilisation']:.3f} of the matmul rate, the whole output layer "
              f"at {probe['output_layer_utilisation']:.3f} ({probe['output_layer_over_product']:.2f}x the product's "
              f"time); exp2 takes {probe['exp2_over_exp']:.2f} of exp's time")
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
    sys.exit(run_script(main))
