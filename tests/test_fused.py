"""The fused output layer and dropout equal the plain torch ops they replace."""

import pytest
import torch
import torch.nn.functional as F

from textvae.modules import fused
from textvae.modules.fused import Dropout, linear_cross_entropy


def plain(hidden, weight, bias, targets):
    return F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="none")


def leaves(tokens=37, hidden=16, vocab=53, bias=True, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=g, dtype=dtype) * 0.3).requires_grad_()
    b = (torch.randn(vocab, generator=g, dtype=dtype) * 0.3).requires_grad_() if bias else None
    t = torch.randint(0, vocab, (tokens,), generator=g)
    return h, w, b, t


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("tokens", [37, 40, 1])  # padded to a multiple of 8 in the products, or not
def test_values_and_gradients_match_plain_ops(bias, tokens):
    h, w, b, t = leaves(tokens=tokens, bias=bias)
    upstream = torch.rand(h.size(0))  # a different weight per token, as per-sentence sums then a mean give
    params = [p for p in (h, w, b) if p is not None]
    expected = plain(h, w, b, t)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), params)
    got = linear_cross_entropy(h, w, b, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for g_got, g_expected in zip(torch.autograd.grad((got * upstream).sum(), params), expected_grads):
        torch.testing.assert_close(g_got, g_expected, rtol=1e-4, atol=1e-5)


def test_gradcheck_in_double_precision():
    h, w, b, t = leaves(tokens=5, hidden=4, vocab=7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h, w, b: linear_cross_entropy(h, w, b, t).double(), (h, w, b))


def test_only_the_inputs_that_need_gradients_get_them():
    h, w, b, t = leaves()
    h.requires_grad_(False)
    linear_cross_entropy(h, w, b, t).sum().backward()
    assert h.grad is None and w.grad is not None and b.grad is not None


def test_tied_weight_gets_both_gradients():
    """A weight shared with an embedding (tied) accumulates the output layer's gradient on top of its own."""
    h, w, _, t = leaves(bias=False)
    ids = torch.tensor([1, 2, 2])
    (F.embedding(ids, w).sum() + linear_cross_entropy(h, w, None, t).sum()).backward()
    fused_grad = w.grad.clone()
    w.grad = None
    (F.embedding(ids, w).sum() + plain(h, w, None, t).sum()).backward()
    torch.testing.assert_close(fused_grad, w.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_gradient_free_path_runs_in_blocks_and_vocabulary_chunks(monkeypatch, bias):
    """Blocks of 8 tokens (37 tokens: a short last block) and chunks of 8 vocabulary rows (a short last chunk)."""
    monkeypatch.setattr(fused, "EVAL_BLOCK_TOKENS", 8)
    monkeypatch.setattr(fused, "EVAL_CPU_BLOCK_TOKENS", 8)
    monkeypatch.setattr(fused, "EVAL_CHUNK_LOGITS", 64)
    h, w, b, t = leaves(tokens=37, bias=bias)
    assert fused._evaluation_block(w.size(0), h.device) == (8, 8) and w.size(0) % 8
    with torch.no_grad():
        got = linear_cross_entropy(h, w, b, t)
        expected = plain(h, w, b, t)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_free_path_survives_targets_far_below_the_best_logit(dtype):
    """The evaluation path shifts logits by the target's: a token 40 nats below the best keeps that shift, one
    200 nats below (exp would overflow) is recomputed with the column maximum; both equal the plain ops."""
    h, w, b, t = leaves(tokens=24, dtype=dtype)
    with torch.no_grad():
        b = b.clone()
        b[t[3]] -= 40.0  # a confident miss
        b[t[5]] -= 200.0  # beyond any shift's headroom
        b[t[9]] += 300.0  # a target far above the others: the sum is 1 + a vanishing rest
        got = linear_cross_entropy(h.detach(), w.detach(), b, t)
        expected = plain(h.detach(), w.detach(), b, t)
    assert expected[5] > 150 and expected[3] > 30 and expected[9] < 1e-6
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-5, atol=1e-4)


def test_autocast_falls_back_to_plain_ops():
    h, w, b, t = leaves()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy(h, w, b, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, plain(h, w, b, t), rtol=0.05, atol=0.05)


def test_no_tokens_and_bad_targets():
    h, w, b, _ = leaves()
    assert linear_cross_entropy(h[:0], w, b, torch.zeros(0, dtype=torch.long)).shape == (0,)
    with pytest.raises(ValueError, match=r"target ids must lie in \[0, 53\)"):
        linear_cross_entropy(h[:2], w, b, torch.tensor([0, 53]))


def test_large_logits_stay_finite():
    h, w, b, t = leaves()
    got = linear_cross_entropy(h * 1e3, w, b, t)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, plain(h * 1e3, w, b, t), rtol=1e-4, atol=1e-2)


def test_dropout_masks_and_scales_like_nn_dropout():
    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.ones(200, 300, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
