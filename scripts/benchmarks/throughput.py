"""Training throughput of the PTB LSTM VAE: tokens/s, model FLOP utilisation against this machine's measured fp32
matrix-multiply rate, and peak memory; beside it, in the same run, a bare PyTorch LSTM VAE step on fixed-length
random batches (the floor a library should not fall below).

    python scripts/benchmarks/throughput.py --data-dir ../shared/data/ptb --json throughput.json
    python scripts/benchmarks/throughput.py --epoch          # also one full PTB epoch through the trainer

Benchmark on a quiet machine: anything else running halves these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import textvae
from textvae.data.pipeline import make_loader, prepare_data
from textvae.training.trainer import build_optimizer

ROOT = Path(__file__).resolve().parents[2]
PTB_CONFIG = ROOT / "configs" / "ptb_lstm_vae.yaml"


def find_ptb(data_dir: str | None) -> Path | None:
    candidates = [data_dir] if data_dir else []
    if os.environ.get("TEXTVAE_DATA"):
        candidates.append(os.path.join(os.environ["TEXTVAE_DATA"], "ptb"))
    candidates.append(str(ROOT.parent / "shared" / "data" / "ptb"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "ptb.train.txt").is_file():
            return Path(candidate)
    return None


def matmul_rate(device: torch.device, size: int = 2048, repeats: int = 20) -> float:
    """Best observed fp32 FLOP/s of a square matrix product on ``device``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = 0.0
    for _ in range(3):
        for _ in range(2):
            a @ b
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_sentence(lengths: np.ndarray, config, vocab: int) -> float:
    """Analytic training FLOPs (forward + backward = 3x forward matrix work) for sentences of ``lengths`` words:
    the encoder reads n + 2 tokens (<bos> .. <eos>), the decoder predicts n + 1 (words and <eos>)."""
    e, d = config.encoder, config.decoder
    z = config.latent.size
    enc_in = e.embedding_size
    enc = 2 * 4 * e.hidden_size * (enc_in + e.hidden_size) * (2 if e.bidirectional else 1)
    dec_in = d.embedding_size + (z if "concat" in d.z_mode else 0)
    dec = 2 * 4 * d.hidden_size * (dec_in + d.hidden_size) + 2 * d.hidden_size * vocab
    per_sentence = 2 * (e.hidden_size * (2 if e.bidirectional else 1)) * 2 * z  # posterior projection
    per_sentence += 2 * z * 4 * d.hidden_size * d.num_layers if "init" in d.z_mode else 0
    return float(3 * np.sum((lengths + 2) * enc + (lengths + 1) * dec + per_sentence))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_textvae(data, config, batch_size: int, steps: int, warmup: int, device: torch.device) -> dict:
    """Steps of the library's own training step (loader, forward, backward, clipping, Adam) on PTB batches."""
    torch.manual_seed(0)
    model = textvae.TextVAE.from_config(config, data.tokenizer).to(device).train()
    optimizer = build_optimizer(model, config.train)
    loader = make_loader(data.datasets["train"], data.tokenizer, batch_size, shuffle=True, seed=0)
    iterator = iter(loader)
    lengths = []

    def one_step(step: int) -> int:
        nonlocal iterator
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        output = model(batch, step=step)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return batch["lengths"]

    for step in range(warmup):
        one_step(step)
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        lengths.append(one_step(step).cpu())
    sync(device)
    seconds = time.perf_counter() - start
    words = torch.cat(lengths).numpy() - 2
    return {
        "seconds": seconds,
        "tokens": int(np.sum(words + 1)),
        "flops": flops_per_sentence(words, config.model, data.tokenizer.vocab_size),
        "padding_fraction": float(1 - np.sum(words + 2) / sum(int(l.max()) * len(l) for l in lengths)),
    }


class BareLSTMVAE(nn.Module):
    """The floor: a plain LSTM VAE step (embedding, LSTM encoder, Gaussian z, LSTM decoder with z at init and
    concat, full output projection and cross-entropy) on fixed-length batches, with no library around it."""

    def __init__(self, vocab: int, emb: int, hidden: int, z: int) -> None:
        super().__init__()
        self.enc_emb = nn.Embedding(vocab, emb)
        self.encoder = nn.LSTM(emb, hidden, batch_first=True)
        self.to_z = nn.Linear(hidden, 2 * z)
        self.dec_emb = nn.Embedding(vocab, emb)
        self.z_to_c = nn.Linear(z, hidden)
        self.decoder = nn.LSTM(emb + z, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(self.enc_emb(ids))
        mu, logvar = self.to_z(h[-1]).chunk(2, -1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        c0 = self.z_to_c(z).unsqueeze(0)
        inputs = torch.cat([self.dec_emb(ids[:, :-1]), z.unsqueeze(1).expand(-1, ids.size(1) - 1, -1)], -1)
        out, _ = self.decoder(inputs, (torch.tanh(c0), c0))
        logits = self.out(out)
        rec = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="sum")
        return (rec + kl.sum()) / ids.size(0)


def time_bare(vocab: int, batch_size: int, length: int, steps: int, warmup: int, device: torch.device, config) -> dict:
    torch.manual_seed(0)
    m = config.model
    model = BareLSTMVAE(vocab, m.decoder.embedding_size, m.decoder.hidden_size, m.latent.size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(4, vocab, (batch_size, length + 2), device=device)
    for _ in range(warmup):
        model(ids).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model(ids).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    seconds = time.perf_counter() - start
    words = np.full(batch_size * steps, length)
    return {"seconds": seconds, "tokens": int(np.sum(words + 1)), "flops": flops_per_sentence(words, m, vocab)}


def load_ptb_like(ptb: Path | None, config):
    """PTB when it is there; otherwise sentences with PTB's length distribution over a 10,000-word vocabulary."""
    if ptb is not None:
        config = textvae.load_config(PTB_CONFIG, [f"data.data_dir={ptb}"])
        return prepare_data(config.data, config.model.max_length), config, "ptb"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(10000)]
    lengths = np.clip(rng.gamma(4.0, 5.3, size=42068).astype(int), 1, 82)  # mean ~21 words, as PTB train
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "textvae_ptb_like"
    folder.mkdir(exist_ok=True)
    for split, n in (("train", 42068), ("valid", 3370), ("test", 3761)):
        lines = [" ".join(rng.choice(words, size=k)) for k in lengths[:n]]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    config = textvae.load_config(PTB_CONFIG, [f"data.data_dir={folder}"])
    return prepare_data(config.data, config.model.max_length), config, "ptb-like random (no PTB found)"


def run_epoch(config, data, output_dir: Path) -> dict:
    """One full PTB epoch at batch 32 through the real trainer (no validation until the end)."""
    from textvae.training.trainer import train

    steps = len(make_loader(data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=False))
    overrides = [
        f"data.data_dir={config.data.data_dir}", f"train.max_steps={steps}", f"train.output_dir={output_dir}",
        f"train.eval_every={steps}", f"train.checkpoint_every={steps}", f"train.log_every={max(1, steps // 10)}",
    ]
    config = textvae.load_config(PTB_CONFIG, overrides)
    result = train(config, data=data, progress=True)
    return {"steps": steps, "seconds": result.seconds, "tokens": result.tokens,
            "tokens_per_s": result.tokens / result.seconds, "valid": result.valid}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="PTB folder (default: $TEXTVAE_DATA/ptb or ../shared/data/ptb)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epoch", action="store_true", help="also time one PTB epoch through the trainer")
    parser.add_argument("--output-dir", default="runs/throughput_epoch")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    data, config, source = load_ptb_like(find_ptb(args.data_dir), None)
    rate = matmul_rate(device)
    mean_words = float(np.mean([len(ids) for ids in data.datasets["train"].token_ids]))
    report = {
        "machine": {"platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "matmul_flops": rate},
        "data": {"source": source, "train_sentences": len(data.datasets["train"]), "mean_words": mean_words,
                 "vocab": data.tokenizer.vocab_size},
        "model": "ptb_lstm_vae.yaml: embedding 256, LSTM 256, latent 32, z at init+concat",
        "results": [],
    }
    print(f"{source}: {len(data.datasets['train'])} sentences, vocab {data.tokenizer.vocab_size}; "
          f"fp32 matmul {rate / 1e9:.1f} GFLOP/s on {device} ({torch.get_num_threads()} threads)")
    print(f"{'batch':>5} {'impl':>8} {'tokens/s':>10} {'GFLOP/s':>8} {'MFU':>6} {'padding':>8}")
    for batch_size in args.batch_sizes:
        ours = time_textvae(data, config, batch_size, args.steps, args.warmup, device)
        bare = time_bare(data.tokenizer.vocab_size, batch_size, round(mean_words), args.steps, args.warmup, device, config)
        row = {"batch_size": batch_size}
        for name, m in (("textvae", ours), ("bare", bare)):
            m["tokens_per_s"] = m["tokens"] / m["seconds"]
            m["flops_per_s"] = m["flops"] / m["seconds"]
            m["mfu"] = m["flops_per_s"] / rate
            row[name] = m
            print(f"{batch_size:>5} {name:>8} {m['tokens_per_s']:>10,.0f} {m['flops_per_s'] / 1e9:>8.1f} {m['mfu']:>6.3f} "
                  f"{m.get('padding_fraction', 0.0):>8.3f}")
        row["ratio_mfu_textvae_over_bare"] = ours["mfu"] / bare["mfu"]
        report["results"].append(row)
        print(f"      textvae/bare utilisation ratio: {row['ratio_mfu_textvae_over_bare']:.2f}")
    report["peak_memory_mb"] = peak_memory_mb(device)
    if args.epoch:
        epoch = run_epoch(config, data, Path(args.output_dir))
        report["epoch"] = epoch
        print(f"one PTB epoch: {epoch['steps']} steps, {epoch['seconds']:.1f} s, {epoch['tokens_per_s']:,.0f} tokens/s")
    print(f"peak memory {report['peak_memory_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
