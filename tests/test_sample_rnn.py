"""The recurrence over many latent samples (``modules.sample_rnn``) against ``nn.LSTM``/``nn.GRU`` over the expanded
inputs, and the decoder path that uses it in importance-weighted evaluation."""

import pytest
import torch
from torch import nn

from tests.conftest import SENTENCES, tiny_model_config
from textvae import TextVAE
from textvae.modules import decoders, sample_rnn
from textvae.modules.decoders import sequence_nll
from textvae.modules.sample_rnn import rnn_over_samples


def expanded(rnn, embedded, z_inputs, state, samples):
    batch, steps, _ = embedded.shape
    x = embedded.unsqueeze(0).expand(samples, -1, -1, -1)
    if z_inputs is not None:
        x = torch.cat([x, z_inputs.unsqueeze(2).expand(-1, -1, steps, -1)], -1)
    with torch.no_grad():
        return rnn(x.reshape(samples * batch, steps, -1), state)[0]


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("initial", [True, False])
def test_equals_the_torch_rnn_over_expanded_inputs(monkeypatch, kind, layers, concat, initial):
    """Every mode the RNN decoder has (z concatenated, initial state from z, both, neither), one and two layers;
    groups of 2 samples (GROUP_ROWS 6 with 3 sentences), so 5 samples make a short last group."""
    monkeypatch.setattr(sample_rnn, "GROUP_ROWS", 6)
    torch.manual_seed(0)
    embedding, z_size, hidden, batch, steps, samples = 6, 3, 8, 3, 7, 5
    rnn = kind(embedding + (z_size if concat else 0), hidden, num_layers=layers, batch_first=True).eval()
    embedded = torch.randn(batch, steps, embedding)
    z_inputs = torch.randn(samples, batch, z_size) if concat else None
    state = None
    if initial:
        h0 = torch.randn(layers, samples * batch, hidden)
        state = (h0, torch.randn(layers, samples * batch, hidden)) if kind is nn.LSTM else h0
    got = rnn_over_samples(rnn, embedded, z_inputs, state, samples=samples)
    want = expanded(rnn, embedded, z_inputs, state, samples)
    assert got.shape == (samples * batch, steps, hidden)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_rejects_rnns_it_does_not_model():
    with pytest.raises(ValueError, match="unidirectional, batch-first"):
        rnn_over_samples(nn.LSTM(4, 4, batch_first=True, bidirectional=True), torch.randn(1, 2, 4), None)
    with pytest.raises(ValueError, match="unidirectional, batch-first"):
        rnn_over_samples(nn.LSTM(4, 4), torch.randn(1, 2, 4), None)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("z_mode", ["init", "concat", "init+concat"])
def test_log_prob_given_z_over_samples_equals_one_sample_at_a_time(monkeypatch, tokenizer, rnn, z_mode):
    """The model's (S, B) log p(x|z) through the shared recurrence equals S separate teacher-forced passes."""
    calls = []
    monkeypatch.setattr(decoders, "rnn_over_samples", lambda *a, **k: calls.append(1) or rnn_over_samples(*a, **k))
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(rnn, decoder={"z_mode": z_mode, "num_layers": 2}), tokenizer).eval()
    ids = [model.token_ids([s])[0] for s in SENTENCES[:4]]
    length = max(len(x) for x in ids) + 2
    input_ids = torch.full((4, length), tokenizer.pad_id)
    for row, x in enumerate(ids):
        input_ids[row, : len(x) + 2] = torch.tensor([tokenizer.bos_id, *x, tokenizer.eos_id])
    lengths = torch.tensor([len(x) + 2 for x in ids])
    z = torch.randn(6, 4, 4)
    with torch.no_grad():
        many = model.log_prob_given_z(input_ids, lengths, z)
        one_by_one = torch.stack([-sequence_nll(model.decoder, input_ids, lengths, z[s]) for s in range(6)])
    assert calls == [1]  # the samples went through the shared recurrence, once
    torch.testing.assert_close(many, one_by_one, rtol=1e-5, atol=1e-5)


def test_forward_samples_refuses_training_mode(tiny_model):
    tiny_model.train()
    with pytest.raises(RuntimeError, match="model.eval"):
        tiny_model.decoder.forward_samples(torch.zeros(2, 3, dtype=torch.long), torch.randn(4, 2, 4))


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("initial", [True, False])
def test_rnn_step_equals_the_torch_rnn_one_step_at_a_time(kind, layers, bias, initial):
    """Three steps of ``rnn_step`` (the fused cells) give ``rnn``'s outputs and final state over the sequence, and
    the same gradients with respect to the weights."""
    torch.manual_seed(0)
    rows, steps, width, hidden = 4, 3, 5, 6
    rnn = kind(width, hidden, num_layers=layers, batch_first=True, bias=bias, dropout=0.3 if layers > 1 else 0.0)
    rnn.eval()
    x = torch.randn(rows, steps, width)
    state = None
    if initial:
        h0 = torch.randn(layers, rows, hidden)
        state = (h0, torch.randn(layers, rows, hidden)) if kind is nn.LSTM else h0
    want, want_state = rnn(x, state)
    outs, current = [], state
    for t in range(steps):
        out, current = sample_rnn.rnn_step(rnn, x[:, t], current)
        outs.append(out)
    got = torch.stack(outs, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(current if kind is nn.LSTM else (current,), want_state if kind is nn.LSTM else (want_state,)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (want ** 2).sum().backward()
    expected = [p.grad.clone() for p in rnn.parameters()]
    rnn.zero_grad()
    (got ** 2).sum().backward()
    for p, g in zip(rnn.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_rnn_step_keeps_torch_rnn_for_between_layer_dropout_in_training(monkeypatch):
    """With dropout between layers in training mode the step runs ``rnn`` itself (the cells have no dropout)."""
    rnn = nn.GRU(5, 6, num_layers=2, dropout=0.5, batch_first=True).train()
    called = []
    monkeypatch.setattr(torch, "gru_cell", lambda *a: called.append(1))
    out, state = sample_rnn.rnn_step(rnn, torch.randn(3, 5))
    assert out.shape == (3, 6) and state.shape == (2, 3, 6) and not called
    rnn.eval()
    with pytest.raises(TypeError):  # the monkeypatched cell returned None: the cell path was taken
        sample_rnn.rnn_step(rnn, torch.randn(3, 5))
    assert called
