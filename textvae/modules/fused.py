"""Faster forms of the two costliest non-matrix steps of a text VAE's training step: the output layer's
linear + cross-entropy, and dropout. Both give the same results as the plain ``torch`` ops (to rounding; dropout
draws its mask from a different random stream).

Measured on a 2-core CPU (torch 2.13, hidden 256, vocabulary 10,002; ``scripts/benchmarks/output_layer.py``):
forward and backward of the output layer take 0.81x the time of ``F.linear`` + ``F.cross_entropy`` at 704 tokens (a
PTB batch of 32) and 0.80-0.86x at 2,816. Dropout on a (32, 23, 256) batch: ``F.dropout`` 2.7 ms, ``Dropout`` here
0.9 ms.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

# Tokens per block of the gradient-free path (evaluation): bounds the (vocabulary x tokens) logits it holds at once.
EVAL_BLOCK_TOKENS = 4096
# On a CPU a block is 1,008 tokens, and its product is taken a chunk of vocabulary rows at a time, each chunk about
# EVAL_CHUNK_LOGITS logits (2 MB of float32), so that exp2 and sum read the logits from the cache the product just
# wrote them to, not from memory: on the 2-core host here the whole output layer then takes about 1.2-1.3x the
# product's own time (``python scripts/benchmarks/iw_speed.py --samples --floor-sentences 0 --block-probe``).
EVAL_CPU_BLOCK_TOKENS = 1008
EVAL_CHUNK_LOGITS = 524_288
# Largest -log softmax the evaluation path computes with the target's logit as the shift (see ``_evaluation_nll``):
# a sum of at most V terms each below exp(60) stays far inside float32's range (3.4e38 ~ exp(88)).
SHIFT_HEADROOM = 60.0
LOG2_E = 1.0 / math.log(2.0)
# Token and width counts are padded to multiples of this in the matrix products (see ``_logits_t``).
ALIGN = 8


def _round_up(n: int) -> int:
    return n + (-n % ALIGN)


def _logits_t(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Transposed logits W h^T + b, (V, T') with T' = T rounded up to a multiple of ``ALIGN`` (the extra columns are
    those of zero hidden states). This way round the vocabulary is the product's rows: MKL runs (V x H)(H x T) at
    about 170 GFLOP/s on the CPU here against 100 for (T x H)(H x V), and only when T is a multiple of 8 (at
    T = 617, 982 or 1,138 it drops to 110). The bias is added after the product (``addmm`` would first copy it,
    broadcast, into the whole output)."""
    pad = -hidden.size(0) % ALIGN
    if pad:
        hidden = torch.cat([hidden, hidden.new_zeros(pad, hidden.size(1))])
    logits_t = weight @ hidden.t()
    return logits_t if bias is None else logits_t.add_(bias.unsqueeze(1))


def _nll_and_exp_(logits_t: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -log softmax at ``targets`` from (V, T) transposed logits, turning them in place into
    exp(logit - column max). Returns (nll (T,), the column sums of those exponentials)."""
    columns = torch.arange(logits_t.size(1), device=logits_t.device)
    target_logits = logits_t[targets, columns]
    peak = logits_t.amax(0)
    logits_t.sub_(peak).exp_()
    total = logits_t.sum(0)
    return peak + total.log() - target_logits, total


class _LinearCrossEntropy(torch.autograd.Function):
    """The loss's gradient with respect to the logits is softmax - onehot = E diag(1/s) - Y, with E the exponentials
    above (kept, transposed, in the logits' own memory) and s their column sums. Forward computes the loss and,
    while E is at hand, the hidden states' gradient diag(1/s) E^T W - W[targets]; backward scales it by the
    incoming per-token gradient g and forms the weight and bias gradients in one product, E [h g/s, g/s], less
    the one-hot part Y^T [h g, g]. Three matrix products, as the unfused ops, but no log-softmax tensor, no gradient
    tensor of the logits' size, and no pass to normalise E or subtract the one-hot: those act on (T, H) rows."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):  # type: ignore[override]
        tokens = hidden.size(0)
        exp_t = _logits_t(hidden, weight, bias)  # (V, T'), T' >= T
        nll, total = _nll_and_exp_(exp_t[:, :tokens], targets)
        exp_t[:, tokens:] = 0.0  # the alignment columns take no part in the gradients
        inverse = total.reciprocal_()
        hidden_grad = None
        if ctx.needs_input_grad[0]:
            hidden_grad = (exp_t.t() @ weight)[:tokens].mul_(inverse.unsqueeze(1)).sub_(weight[targets])
        ctx.save_for_backward(hidden, exp_t, inverse, targets, hidden_grad)
        ctx.has_bias = bias is not None
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll):  # type: ignore[override]
        hidden, exp_t, inverse, targets, hidden_grad = ctx.saved_tensors
        grad_nll = grad_nll.to(exp_t.dtype)
        grad_hidden = hidden_grad * grad_nll.unsqueeze(1) if ctx.needs_input_grad[0] else None
        if not (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            return grad_hidden, None, None, None
        tokens, size = hidden.shape
        scaled = grad_nll * inverse
        # one product gives both: columns [0, H) the weight's gradient, column H the bias's; rows and columns
        # padded with zeros to multiples of ALIGN, where MKL is fastest
        right = hidden.new_zeros(exp_t.size(1), _round_up(size + ctx.has_bias))
        torch.mul(hidden, scaled.unsqueeze(1), out=right[:tokens, :size])
        onehot_part = hidden * grad_nll.unsqueeze(1)
        if ctx.has_bias:
            right[:tokens, size] = scaled
            onehot_part = torch.cat([onehot_part, grad_nll.unsqueeze(1)], 1)
        both = exp_t @ right
        both[:, : onehot_part.size(1)].index_add_(0, targets, onehot_part, alpha=-1.0)
        grad_weight = both[:, :size].contiguous() if ctx.needs_input_grad[1] else None
        grad_bias = both[:, size].contiguous() if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_hidden, grad_weight, grad_bias, None


def _plain(hidden, weight, bias, targets) -> torch.Tensor:
    return F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="none")


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], targets: torch.Tensor
) -> torch.Tensor:
    """-log softmax(hidden W^T + b)[target] per token: (T, H) hidden, (V, H) weight, (V,) bias, (T,) targets ->
    (T,) in float32 (float64 for float64 inputs). Equal to
    ``F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="none")``.

    Under autocast, or in half precision, it is exactly that (the fused path keeps fp32/fp64 softmax arithmetic).
    Without gradients it runs in blocks of tokens (``_evaluation_block``), so importance-weighted evaluation over
    many samples never holds all their logits at once."""
    if targets.device.type == "cpu" and targets.numel():
        low, high = (int(x) for x in torch.aminmax(targets))
        if low < 0 or high >= weight.size(0):
            raise ValueError(f"target ids must lie in [0, {weight.size(0)}), got {low}..{high}")
    if (
        hidden.size(0) == 0
        or hidden.dtype not in (torch.float32, torch.float64)
        or weight.dtype != hidden.dtype
        or torch.is_autocast_enabled(hidden.device.type)
    ):
        return _plain(hidden, weight, bias, targets)
    parameters = (hidden, weight) if bias is None else (hidden, weight, bias)
    if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
        return _LinearCrossEntropy.apply(hidden, weight, bias, targets)
    with torch.no_grad():
        return _evaluation_nll(hidden, weight, bias, targets)


def _shifting_weight(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """log2(e) [W b -1 0..] (V, H') with H' = H + 2 rounded up to ``ALIGN``: multiplied by hidden rows [h 1 c 0..]
    it gives (W h + b - c) / ln 2, logits already shifted by c and in base 2, with no pass over the (V, T) result to
    add the bias or subtract c; ``exp2`` of it is exp(W h + b - c), and ``exp2`` is the faster of the two on the CPU
    here (``iw_speed.py --block-probe`` reports the ratio)."""
    vocab, size = weight.shape
    augmented = weight.new_zeros(vocab, _round_up(size + 2))
    augmented[:, :size] = weight
    if bias is not None:
        augmented[:, size] = bias
    augmented[:, size + 1] = -1.0
    return augmented.mul_(LOG2_E)


def _evaluation_block(vocab: int, device: torch.device) -> tuple[int, int]:
    """(tokens per block, vocabulary rows per product) of ``_evaluation_nll``: on a GPU ``EVAL_BLOCK_TOKENS`` and the
    whole vocabulary; on a CPU ``EVAL_CPU_BLOCK_TOKENS`` and chunks of about ``EVAL_CHUNK_LOGITS`` logits."""
    if device.type != "cpu":
        return EVAL_BLOCK_TOKENS, vocab
    return EVAL_CPU_BLOCK_TOKENS, min(vocab, _round_up(EVAL_CHUNK_LOGITS // EVAL_CPU_BLOCK_TOKENS))


def _evaluation_nll(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """The gradient-free path, in blocks of tokens (``_evaluation_block``): -log softmax at the target is
    log sum_v exp(logit_v - logit_target), so the target's logit (a dot product per token) is computed first and
    the matrix product itself returns the logits shifted by it, bias included, in base 2 (``_shifting_weight``); each
    chunk of vocabulary rows is then exponentiated (``exp2``) in place and summed into the block's totals while it
    is in cache: two passes over the logits after the product, against five when the bias is added and the column
    maximum found and subtracted. The shift is safe while no logit exceeds the target's by more than ``SHIFT_HEADROOM`` nats (float32
    exp overflows past 88); columns beyond it, or not finite, are recomputed with the column maximum."""
    augmented = _shifting_weight(weight, bias)
    size = hidden.size(1)
    step, rows = _evaluation_block(weight.size(0), hidden.device)
    chunks = augmented.split(rows)
    out = []
    for block, block_targets in zip(hidden.split(step), targets.split(step)):
        tokens = block.size(0)
        target_logits = (block * weight[block_targets]).sum(1)
        if bias is not None:
            target_logits += bias[block_targets]
        right = block.new_zeros(_round_up(tokens), augmented.size(1))  # (T', H'): [h 1 c 0..] rows, zero rows after
        right[:tokens, :size] = block
        right[:tokens, size] = 1.0
        right[:tokens, size + 1] = target_logits
        right_t = right.t()
        logits = block.new_empty(chunks[0].size(0), right.size(0))
        total = block.new_zeros(right.size(0))
        for chunk in chunks:
            total += torch.mm(chunk, right_t, out=logits[: chunk.size(0)]).exp2_().sum(0)
        nll = total[:tokens].log_()
        unsafe = ~(nll < SHIFT_HEADROOM)  # overflowed, NaN, or too close to it for the sum's precision
        if bool(unsafe.any()):
            index = unsafe.nonzero(as_tuple=True)[0]
            nll[index] = _plain(block[index], weight, bias, block_targets[index]).to(nll.dtype)
        out.append(nll)
    return torch.cat(out)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from ``torch.rand`` (vectorised) rather than ``bernoulli_``, which is
    3x slower there; on other devices, and outside training, it is ``nn.Dropout`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0.0 < self.p < 1.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))
