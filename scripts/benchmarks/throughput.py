"""Training throughput of a PTB VAE (the LSTM one by default, ``--config`` for another): tokens/s, model FLOP
utilisation against this machine's measured fp32 matrix-multiply rate, and peak memory; beside it, in the same run,
a bare PyTorch VAE of the same shape (LSTM, or transformer layers from ``torch.nn``) on fixed-length random batches
(the floor a library should not fall below). FLOPs are counted analytically from the config.

    python scripts/benchmarks/throughput.py --data-dir ../shared/data/ptb --json throughput.json
    python scripts/benchmarks/throughput.py --epoch          # also one full PTB epoch through the trainer
    python scripts/benchmarks/throughput.py --config configs/ptb_transformer_vae.yaml
    python scripts/benchmarks/throughput.py --images --batch-sizes 64   # the conv VAE of configs/sprites_beta_vae.yaml

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
from textvae.cli import run_script
from textvae.training.host_memory import keep_freed_host_memory
from textvae.training.trainer import build_optimizer, clip_grad_norm_

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


def rnn_flops_per_token(kind: str, input_size: int, hidden: int, layers: int, directions: int = 1) -> float:
    """Forward FLOPs of an LSTM (4 gates) or GRU (3 gates) stack for one token."""
    gates = 4 if kind == "lstm" else 3
    sizes = [input_size] + [hidden * directions] * (layers - 1)
    return float(sum(2 * gates * hidden * (size + hidden) * directions for size in sizes))


def transformer_flops(tokens: np.ndarray, size: int, feedforward: int, layers: int, causal: bool, extra_keys: int = 0,
                      memory: int = 0) -> np.ndarray:
    """Forward FLOPs of transformer blocks over sentences of ``tokens`` positions: projections and feed-forward per
    position, attention scores and weighted values per (query, key) pair (each position sees every position, or
    itself and those before it plus ``extra_keys`` prefix positions when ``causal``), and cross-attention to
    ``memory`` slots (queries and outputs per position, keys and values per slot)."""
    per_position = 2 * 4 * size * size + 2 * 2 * size * feedforward
    pairs = tokens * (tokens + 1) / 2 + tokens * extra_keys if causal else tokens * tokens
    flops = layers * (tokens * per_position + 4 * size * pairs)
    if memory:
        flops = flops + layers * (tokens * (2 * 2 * size * size + 4 * size * memory) + memory * 2 * 2 * size * size)
    return flops


def encoder_flops(words: np.ndarray, e, z_size: int) -> np.ndarray:
    """Encoder forward FLOPs per sentence: it reads n + 2 tokens (<bos> .. <eos>); then the posterior projection."""
    tokens = words + 2
    posterior = 2 * 2 * z_size
    if e.type in ("lstm", "gru"):
        directions = 2 if e.bidirectional else 1
        per_token = rnn_flops_per_token(e.type, e.embedding_size, e.hidden_size, e.num_layers, directions)
        return tokens * per_token + posterior * e.hidden_size * directions
    if e.type == "transformer":
        h = e.hidden_size
        flops = transformer_flops(tokens, h, e.feedforward_size, e.num_layers, causal=False)
        flops = flops + tokens * (2 * e.embedding_size * h if e.embedding_size != h else 0)
        flops = flops + tokens * (2 * h if e.pooling == "attention" else 0)
        return flops + posterior * h
    raise SystemExit(f"no FLOP count for encoder type {e.type!r}")


def decoder_flops(words: np.ndarray, d, z_size: int, vocab: int) -> np.ndarray:
    """Decoder forward FLOPs per sentence: n + 1 input tokens, each predicting the next over the vocabulary."""
    tokens = words + 1
    if d.type in ("lstm", "gru"):
        inputs = d.embedding_size + (z_size if "concat" in d.z_mode else 0)
        per_token = rnn_flops_per_token(d.type, inputs, d.hidden_size, d.num_layers) + 2 * d.hidden_size * vocab
        init = 2 * z_size * d.num_layers * d.hidden_size if "init" in d.z_mode else 0
        return tokens * per_token + init
    if d.type == "transformer":
        h, modes = d.hidden_size, d.z_mode.split("+")
        prefix = d.prefix_slots if "prefix" in modes else 0
        memory = d.memory_slots if "memory" in modes else 0
        flops = transformer_flops(tokens + prefix, h, d.feedforward_size, d.num_layers, causal=True, memory=memory)
        flops = flops + tokens * (2 * h * vocab + (2 * d.embedding_size * h if d.embedding_size != h else 0))
        return flops + 2 * z_size * h * (memory + prefix + ("embedding" in modes))
    raise SystemExit(f"no FLOP count for decoder type {d.type!r}")


def flops_per_sentence(lengths: np.ndarray, config, vocab: int) -> float:
    """Analytic training FLOPs (forward + backward = 3x forward matrix work) for sentences of ``lengths`` words."""
    z = latent_code_size(config.latent)
    words = np.asarray(lengths, dtype=np.float64)
    return float(3 * np.sum(encoder_flops(words, config.encoder, z) + decoder_flops(words, config.decoder, z, vocab)))


def latent_code_size(latent) -> int:
    """Width of z: Gaussian dimensions, categorical one-hot codes, or both."""
    return {"gaussian": latent.size, "gumbel": sum(latent.category_sizes),
            "joint": latent.size + sum(latent.category_sizes)}[latent.type]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def repeated_timings(block, repeats: int, device: torch.device) -> list[float]:
    """Wall times of ``repeats`` calls of ``block``, each synchronised with ``device`` before and after."""
    timings = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        block()
        sync(device)
        timings.append(time.perf_counter() - start)
    return timings


def time_textvae(data, config, batch_size: int, steps: int, warmup: int, device: torch.device, repeats: int = 3) -> dict:
    """The library's own training step (loader, forward, backward, the trainer's clipping, Adam) on PTB batches:
    ``repeats`` timings of the same ``steps`` batches, the fastest reported (as ``timeit`` does; ``seconds_all``
    keeps every one), since anything else the machine runs only ever slows a timing down."""
    torch.manual_seed(0)
    model = textvae.build_model(data.model_config(config), data.tokenizer).to(device).train()
    optimizer = build_optimizer(model, config.train)
    loader = make_loader(data.datasets["train"], data.tokenizer, batch_size, shuffle=True, seed=0)

    def one_step(batch: dict, step: int) -> None:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        output = model(batch, step=step)
        output.loss.backward()
        clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for step, batch in zip(range(warmup), loader):
        one_step(batch, step)
    lengths = []

    def all_steps() -> None:
        lengths.clear()
        for step, batch in zip(range(steps), loader):  # the same batches every time (same sampler epoch)
            one_step(batch, step)
            lengths.append(batch["lengths"])

    timings = repeated_timings(all_steps, repeats, device)
    words = torch.cat(lengths).numpy() - 2
    return {
        "seconds": min(timings),
        "seconds_all": timings,
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


class BareTransformerVAE(nn.Module):
    """The floor for a transformer VAE: ``torch.nn`` pre-norm encoder layers, mean pooling, Gaussian z as memory
    slots for ``torch.nn`` pre-norm decoder layers (causal self-attention, cross-attention), full output projection
    and cross-entropy, on fixed-length batches."""

    def __init__(self, vocab: int, config) -> None:
        super().__init__()
        e, d, z = config.encoder, config.decoder, config.latent.size
        self.slots, self.size = d.memory_slots, d.hidden_size
        self.enc_emb, self.enc_pos = nn.Embedding(vocab, e.hidden_size), nn.Embedding(e.max_positions, e.hidden_size)
        layer = nn.TransformerEncoderLayer(e.hidden_size, e.num_heads, e.feedforward_size, e.dropout, "gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, e.num_layers, enable_nested_tensor=False)
        self.to_z = nn.Linear(e.hidden_size, 2 * z)
        self.z_to_memory = nn.Linear(z, d.memory_slots * d.hidden_size)
        self.dec_emb, self.dec_pos = nn.Embedding(vocab, d.hidden_size), nn.Embedding(d.max_positions, d.hidden_size)
        layer = nn.TransformerDecoderLayer(d.hidden_size, d.num_heads, d.feedforward_size, d.dropout, "gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, d.num_layers, norm=nn.LayerNorm(d.hidden_size))
        self.out = nn.Linear(d.hidden_size, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.size(1), device=ids.device)
        h = self.encoder(self.enc_emb(ids) + self.enc_pos(positions)).mean(1)
        mu, logvar = self.to_z(h).chunk(2, -1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        memory = self.z_to_memory(z).view(ids.size(0), self.slots, self.size)
        inputs = self.dec_emb(ids[:, :-1]) + self.dec_pos(positions[:-1])
        mask = nn.Transformer.generate_square_subsequent_mask(inputs.size(1), device=ids.device)
        logits = self.out(self.decoder(inputs, memory, tgt_mask=mask, tgt_is_causal=True))
        rec = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="sum")
        return (rec + kl.sum()) / ids.size(0)


def bare_model(vocab: int, config) -> nn.Module | None:
    """The bare PyTorch model of the config's shape, when there is one: an LSTM pair, or a transformer pair with z
    as memory."""
    m = config.model
    if m.latent.type != "gaussian":
        return None
    if m.encoder.type == m.decoder.type == "lstm" and m.decoder.z_mode == "init+concat" and not m.encoder.bidirectional:
        return BareLSTMVAE(vocab, m.decoder.embedding_size, m.decoder.hidden_size, m.latent.size)
    if m.encoder.type == m.decoder.type == "transformer" and m.decoder.z_mode == "memory":
        return BareTransformerVAE(vocab, m)
    return None


def bare_timings(model: nn.Module, inputs: torch.Tensor, lr: float, clip: float | None, steps: int, warmup: int,
                 device: torch.device, repeats: int) -> list[float]:
    """``repeated_timings`` of ``steps`` bare steps on one fixed batch: ``model(inputs)`` is the loss; backward,
    torch's clipping (unless ``clip`` is None), fused Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def one_step() -> None:
        model(inputs).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        one_step()

    def all_steps() -> None:
        for _ in range(steps):
            one_step()

    return repeated_timings(all_steps, repeats, device)


def time_bare(vocab: int, batch_size: int, length: int, steps: int, warmup: int, device: torch.device, config,
              repeats: int = 3) -> dict | None:
    """The bare model's step (forward, backward, torch's clipping, fused Adam) on one fixed random batch, timed as
    ``time_textvae`` is: the fastest of ``repeats`` runs of ``steps`` steps."""
    torch.manual_seed(0)
    m = config.model
    model = bare_model(vocab, config)
    if model is None:
        return None
    ids = torch.randint(4, vocab, (batch_size, length + 2), device=device)
    timings = bare_timings(model.to(device).train(), ids, 1e-3, config.train.grad_clip, steps, warmup, device, repeats)
    words = np.full(batch_size * steps, length)
    return {"seconds": min(timings), "seconds_all": timings, "tokens": int(np.sum(words + 1)),
            "flops": flops_per_sentence(words, m, vocab)}


IMAGE_CONFIG = ROOT / "configs" / "sprites_beta_vae.yaml"


def image_flops_per_image(config) -> float:
    """Training FLOPs per image of an image VAE (3 x the forward's multiply-adds x 2): convolutions
    2 Cin Cout k^2 per output pixel, transposed ones per input pixel, dense layers 2 in out; the latent head
    (mean and log-variance of each Gaussian dimension, or a logit per category) and the decoder's first layer."""
    from textvae.models.image_vae import conv_channels

    image = config.image
    channels = conv_channels(config)
    c, h, w = image.channels, image.height, image.width
    convs = 0.0
    for out in channels:
        h, w = h // 2, w // 2
        convs += 2 * c * out * 16 * h * w  # each of the encoder's outputs and, mirrored, each decoder input
        c = out
    flat, hidden, code = c * h * w, image.hidden_size, latent_code_size(config.latent)
    head = 2 * hidden * (2 * config.latent.size if config.latent.type == "gaussian" else code)
    dense = 2 * flat * hidden + head + 2 * code * hidden + 2 * hidden * flat
    return 3.0 * (2 * convs + dense)


def time_image_vae(data, config, batch_size: int, steps: int, warmup: int, device: torch.device, repeats: int = 3) -> dict:
    """The library's image VAE step, as ``time_textvae`` times the text one: its loader (the sprites batches are
    rendered in the collator), forward, backward, the trainer's norm check and fused Adam."""
    torch.manual_seed(0)
    model = textvae.build_model(data.model_config(config), None).to(device).train()
    optimizer = build_optimizer(model, config.train)
    loader = make_loader(data.datasets["train"], None, batch_size, shuffle=True, seed=0)
    clip = config.train.grad_clip if config.train.grad_clip > 0 else float("inf")

    def one_step(batch: dict, step: int) -> None:
        output = model({k: v.to(device, non_blocking=True) for k, v in batch.items()}, step=step)
        output.loss.backward()
        clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for step, batch in zip(range(warmup), loader):
        one_step(batch, step)

    def all_steps() -> None:
        for step, batch in zip(range(steps), loader):
            one_step(batch, step)

    timings = repeated_timings(all_steps, repeats, device)
    return {"seconds": min(timings), "seconds_all": timings, "tokens": steps * batch_size,
            "flops": steps * batch_size * image_flops_per_image(data.model_config(config).model)}


class BareConvVAE(nn.Module):
    """The floor for images: the same conv encoder and decoder written plainly in torch.nn (4 x 4 stride-2
    convolutions, dense layers, ReLU), a Gaussian z, Bernoulli pixels, beta times the closed-form KL."""

    def __init__(self, image, latent_size: int, channels, beta: float) -> None:
        super().__init__()
        c, h, w = image.channels, image.height, image.width
        layers, widths = [], [c, *channels]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        side = (channels[-1], h // 2 ** len(channels), w // 2 ** len(channels))
        flat = side[0] * side[1] * side[2]
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, image.hidden_size), nn.ReLU(),
                                     nn.Linear(image.hidden_size, 2 * latent_size))
        layers = [nn.Linear(latent_size, image.hidden_size), nn.ReLU(), nn.Linear(image.hidden_size, flat), nn.ReLU(),
                  nn.Unflatten(1, side)]
        for a, b in zip(widths[::-1], widths[::-1][1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*layers[:-1])
        self.beta = beta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.encoder(images).chunk(2, dim=-1)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), images, reduction="sum")
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum()
        return (rec + self.beta * kl) / images.size(0)


def time_bare_conv(config, batch_size: int, steps: int, warmup: int, device: torch.device, repeats: int = 3) -> dict:
    """``BareConvVAE``'s step (forward, backward, fused Adam; no norm check) on one fixed batch of random binary
    images, timed as the library's step is."""
    from textvae.models.image_vae import conv_channels

    torch.manual_seed(0)
    m = config.model
    model = BareConvVAE(m.image, m.latent.size, conv_channels(m), m.objective.beta).to(device).train()
    images = (torch.rand(batch_size, m.image.channels, m.image.height, m.image.width, device=device) < 0.1).float()
    timings = bare_timings(model, images, config.train.learning_rate, None, steps, warmup, device, repeats)
    return {"seconds": min(timings), "seconds_all": timings, "tokens": steps * batch_size,
            "flops": steps * batch_size * image_flops_per_image(m)}


def load_images(config_path: Path):
    from textvae.config import load_config

    config = load_config(config_path, ["data.images.valid_size=64", "data.images.test_size=64"])
    data = prepare_data(config.data)
    return data, config, f"{config.data.corpus} ({len(data.datasets['train']):,} training images)"


def load_ptb_like(ptb: Path | None, config_path: Path = PTB_CONFIG):
    """PTB when it is there; otherwise sentences with PTB's length distribution over a 10,000-word vocabulary."""
    if ptb is not None:
        config = textvae.load_config(config_path, [f"data.data_dir={ptb}"])
        return prepare_data(config.data, config.model.max_length, overlong=config.model.overlong), config, "ptb"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(10000)]
    lengths = np.clip(rng.gamma(4.0, 5.3, size=42068).astype(int), 1, 82)  # mean ~21 words, as PTB train
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "textvae_ptb_like"
    folder.mkdir(exist_ok=True)
    for split, n in (("train", 42068), ("valid", 3370), ("test", 3761)):
        lines = [" ".join(rng.choice(words, size=k)) for k in lengths[:n]]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    config = textvae.load_config(config_path, [f"data.data_dir={folder}"])
    return prepare_data(config.data, config.model.max_length, overlong=config.model.overlong), config, "ptb-like random (no PTB found)"


def run_epoch(config, data, output_dir: Path, config_path: Path = PTB_CONFIG, keep_host_memory: bool = True) -> dict:
    """One full PTB epoch at batch 32 through the real trainer (no validation until the end): wall time with the
    closing validation and checkpoint, and the trainer's logged rate over the training steps alone."""
    from textvae.training.trainer import train

    steps = len(make_loader(data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=False))
    overrides = [
        f"data.data_dir={config.data.data_dir}", f"train.max_steps={steps}", f"train.output_dir={output_dir}",
        f"train.eval_every={steps}", f"train.checkpoint_every={steps}", f"train.log_every={max(1, steps // 10)}",
        f"train.keep_host_memory={str(keep_host_memory).lower()}",
    ]
    config = textvae.load_config(config_path, overrides)
    result = train(config, data=data, progress=True)
    # the trainer's own rate at its last log line: the training steps alone, before the closing validation pass
    logged = [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]
    training_rate = [entry["tokens_per_s"] for entry in logged if entry["split"] == "train"][-1]
    return {"steps": steps, "seconds": result.seconds, "tokens": result.tokens,
            "tokens_per_s": result.tokens / result.seconds, "training_tokens_per_s": training_rate,
            "valid": result.valid}


def describe(name: str, m) -> str:
    """One line naming the config and its shape, for the report."""
    def part(c) -> str:
        if c.type == "transformer":
            return f"transformer {c.num_layers}x{c.hidden_size} ({c.num_heads} heads, ff {c.feedforward_size})"
        return f"{c.type.upper()} {c.hidden_size}"
    return (f"{name}: encoder {part(m.encoder)}, decoder {part(m.decoder)}, latent {m.latent.type} "
            f"{latent_code_size(m.latent)}, z at {m.decoder.z_mode}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(PTB_CONFIG), help="the model and data config (default: %(default)s)")
    parser.add_argument("--data-dir", help="PTB folder (default: $TEXTVAE_DATA/ptb or ../shared/data/ptb)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timings of the same steps; the fastest is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epoch", action="store_true", help="also time one PTB epoch through the trainer")
    parser.add_argument("--images", action="store_true",
                        help="the image VAE (--config default: configs/sprites_beta_vae.yaml) beside a bare conv VAE")
    parser.add_argument("--output-dir", default="runs/throughput_epoch")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (the trainer keeps freed host memory, "
                             "train.keep_host_memory; this process-wide setting speeds up the bare model too)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    kept = False if args.default_malloc or device.type != "cpu" else keep_freed_host_memory()

    if args.images:
        return image_main(args, device, kept)
    config_path = Path(args.config)
    data, config, source = load_ptb_like(find_ptb(args.data_dir), config_path)
    rate = matmul_rate(device)
    mean_words = float(np.mean([len(ids) for ids in data.datasets["train"].token_ids]))
    report = {
        "machine": {"platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "matmul_flops": rate, "keep_host_memory": kept},
        "data": {"source": source, "train_sentences": len(data.datasets["train"]), "mean_words": mean_words,
                 "vocab": data.tokenizer.vocab_size},
        "model": describe(config_path.name, config.model),
        "results": [],
    }
    print(f"{source}: {len(data.datasets['train'])} sentences, vocab {data.tokenizer.vocab_size}; "
          f"fp32 matmul {rate / 1e9:.1f} GFLOP/s on {device} ({torch.get_num_threads()} threads); "
          f"freed host memory {'kept' if kept else 'returned (glibc default)'}")
    print(f"{'batch':>5} {'impl':>8} {'tokens/s':>10} {'GFLOP/s':>8} {'MFU':>6} {'padding':>8}")
    for batch_size in args.batch_sizes:
        ours = time_textvae(data, config, batch_size, args.steps, args.warmup, device, args.repeats)
        bare = time_bare(data.tokenizer.vocab_size, batch_size, round(mean_words), args.steps, args.warmup, device,
                         config, args.repeats)
        row = {"batch_size": batch_size}
        for name, m in (("textvae", ours), ("bare", bare)):
            if m is None:
                continue
            m["tokens_per_s"] = m["tokens"] / m["seconds"]
            m["flops_per_s"] = m["flops"] / m["seconds"]
            m["mfu"] = m["flops_per_s"] / rate
            row[name] = m
            print(f"{batch_size:>5} {name:>8} {m['tokens_per_s']:>10,.0f} {m['flops_per_s'] / 1e9:>8.1f} {m['mfu']:>6.3f} "
                  f"{m.get('padding_fraction', 0.0):>8.3f}")
        if bare is not None:
            row["ratio_mfu_textvae_over_bare"] = ours["mfu"] / bare["mfu"]
            print(f"      textvae/bare utilisation ratio: {row['ratio_mfu_textvae_over_bare']:.2f}")
        report["results"].append(row)
    report["peak_memory_mb"] = peak_memory_mb(device)
    if args.epoch:
        epoch = run_epoch(config, data, Path(args.output_dir), config_path, keep_host_memory=not args.default_malloc)
        report["epoch"] = epoch
        print(f"one PTB epoch: {epoch['steps']} steps, {epoch['seconds']:.1f} s with the closing validation and "
              f"checkpoint, {epoch['tokens_per_s']:,.0f} tokens/s ({epoch['training_tokens_per_s']:,.0f} in training)")
    print(f"peak memory {report['peak_memory_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def image_main(args, device: torch.device, kept: bool) -> int:
    """``--images``: images/s and utilisation of the library's conv VAE step beside ``BareConvVAE``'s."""
    config_path = IMAGE_CONFIG if Path(args.config) == PTB_CONFIG else Path(args.config)
    data, config, source = load_images(config_path)
    rate = matmul_rate(device)
    report = {"machine": {"platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "matmul_flops": rate, "keep_host_memory": kept},
              "data": source, "config": str(config_path),
              "flops_per_image": image_flops_per_image(data.model_config(config).model), "results": []}
    print(f"{source}, {config_path.name}: {report['flops_per_image'] / 1e6:.1f} MFLOP per training image; fp32 matmul "
          f"{rate / 1e9:.1f} GFLOP/s on {device} ({torch.get_num_threads()} threads)")
    print(f"{'batch':>5} {'impl':>8} {'images/s':>10} {'GFLOP/s':>8} {'MFU':>6}")
    for batch_size in args.batch_sizes:
        row = {"batch_size": batch_size}
        ours = time_image_vae(data, config, batch_size, args.steps, args.warmup, device, args.repeats)
        bare = time_bare_conv(data.model_config(config), batch_size, args.steps, args.warmup, device, args.repeats)
        for name, m in (("textvae", ours), ("bare", bare)):
            m["images_per_s"] = m["tokens"] / m["seconds"]
            m["flops_per_s"] = m["flops"] / m["seconds"]
            m["mfu"] = m["flops_per_s"] / rate
            row[name] = m
            print(f"{batch_size:>5} {name:>8} {m['images_per_s']:>10,.0f} {m['flops_per_s'] / 1e9:>8.1f} {m['mfu']:>6.3f}")
        row["ratio_mfu_textvae_over_bare"] = row["textvae"]["mfu"] / row["bare"]["mfu"]
        print(f"      textvae/bare utilisation ratio: {row['ratio_mfu_textvae_over_bare']:.2f}")
        report["results"].append(row)
    report["peak_memory_mb"] = peak_memory_mb(device)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
