"""An RNN decoder run over many latent samples of the same sentences (importance-weighted evaluation), without
repeating the work the samples share: the first layer's input projection of the word embeddings is computed once
per sentence, and z's part of it (``concat``) once per sample, not once per token and sample. ``nn.LSTM`` cannot
take precomputed input gates, so the recurrence is written out here, time step by time step, over groups of about
``GROUP_ROWS`` sequences whose gates stay in cache.

``scripts/benchmarks/iw_speed.py`` compares the importance-weighted NLL with and without it (``previous``), and
``--breakdown`` gives the recurrence's share of the time.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

GROUP_ROWS = 256  # sequences per pass through the time steps: (256, 4 x 256) gates are 1 MB


def _cell_weights(rnn: nn.RNNBase, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W_ih, input bias, W_hh^T, b_hh) of one layer: the input bias is what joins W_ih x in the input gates, b_ih
    and for an LSTM b_hh too (its b_hh adds to every gate alike; a GRU's scales with the reset gate). Biases are
    zero when the RNN has none."""
    w_ih = getattr(rnn, f"weight_ih_l{layer}")
    zeros = w_ih.new_zeros(w_ih.size(0))
    b_ih = getattr(rnn, f"bias_ih_l{layer}") if rnn.bias else zeros
    b_hh = getattr(rnn, f"bias_hh_l{layer}") if rnn.bias else zeros
    input_bias = b_ih + b_hh if isinstance(rnn, nn.LSTM) else b_ih
    return w_ih, input_bias, getattr(rnn, f"weight_hh_l{layer}").t(), b_hh


def _lstm_layer(input_gates, h: torch.Tensor, c: torch.Tensor, w_hh_t: torch.Tensor, out: torch.Tensor) -> None:
    """The LSTM recurrence (PyTorch's gate order i, f, g, o), writing h_t to ``out[:, t]``; ``input_gates(t)``
    gives a new (N, 4H) tensor W_ih x_t + b_ih + b_hh."""
    for t in range(out.size(1)):
        gates = input_gates(t).addmm_(h, w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.addcmul(f.sigmoid_().mul_(c), i.sigmoid_(), g.tanh_())
        h = torch.mul(o.sigmoid_(), c.tanh(), out=out[:, t])


def _gru_layer(input_gates, h: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor, out: torch.Tensor) -> None:
    """The GRU recurrence (PyTorch's r, z, n), writing h_t to ``out[:, t]``; ``input_gates(t)`` gives a new
    (N, 3H) tensor W_ih x_t + b_ih."""
    size = h.size(1)
    for t in range(out.size(1)):
        x_gates = input_gates(t)
        h_gates = torch.addmm(b_hh, h, w_hh_t)
        reset_update = x_gates[:, : 2 * size].add_(h_gates[:, : 2 * size]).sigmoid_()
        reset, update = reset_update[:, :size], reset_update[:, size:]
        new = x_gates[:, 2 * size :].addcmul_(reset, h_gates[:, 2 * size :]).tanh_()
        h = torch.addcmul(new, update, h - new, out=out[:, t])


@torch.no_grad()
def rnn_over_samples(
    rnn: nn.RNNBase, embedded: torch.Tensor, z_inputs: Optional[torch.Tensor], state=None, samples: int = 1
) -> torch.Tensor:
    """Hidden states (S * B, T, H), sample-major, of ``rnn`` (an ``nn.LSTM`` or ``nn.GRU``, batch first) over B
    sentences' embeddings (B, T, E), each read with S latent samples: ``z_inputs`` (S, B, Dz) the z fed beside every
    embedding (None: none, and then ``samples`` gives S); ``state`` the initial state, (layers, S * B, H) or an
    (h, c) pair for an LSTM (None: zeros). Equal, to rounding, to ``rnn`` over the inputs expanded to S * B rows."""
    if not isinstance(rnn, (nn.LSTM, nn.GRU)) or rnn.bidirectional or not rnn.batch_first or rnn.proj_size:
        raise ValueError("rnn_over_samples takes a unidirectional, batch-first nn.LSTM or nn.GRU")
    with torch.profiler.record_function("rnn_over_samples"):  # one named span for profiles (iw_speed --breakdown)
        return _run(rnn, embedded, z_inputs, state, samples)


def _run(rnn: nn.RNNBase, embedded: torch.Tensor, z_inputs: Optional[torch.Tensor], state, samples: int) -> torch.Tensor:
    is_lstm = isinstance(rnn, nn.LSTM)
    batch, steps, embedding_size = embedded.shape
    if z_inputs is not None:
        samples = z_inputs.size(0)
    size = rnn.hidden_size
    h_state, c_state = (state if state is not None else (None, None)) if is_lstm else (state, None)
    cells = [_cell_weights(rnn, layer) for layer in range(rnn.num_layers)]
    w_ih, input_bias = cells[0][:2]
    per_sentence = torch.addmm(input_bias, embedded.reshape(-1, embedding_size), w_ih[:, :embedding_size].t())
    per_sentence = per_sentence.view(batch, steps, -1)  # (B, T, G)
    per_sample = None if z_inputs is None else z_inputs @ w_ih[:, embedding_size:].t()  # (S, B, G)
    out = embedded.new_empty(samples * batch, steps, size)
    group = max(1, GROUP_ROWS // batch)  # whole samples per group, so the sentence part broadcasts over them
    for first in range(0, samples, group):
        count = min(group, samples - first)
        lo, hi = first * batch, (first + count) * batch
        if per_sample is None:
            gates = (lambda t, count=count: per_sentence[:, t].repeat(count, 1))
        else:
            part = per_sample[first : first + count]
            gates = (lambda t, part=part: torch.add(part, per_sentence[:, t]).view(-1, part.size(-1)))
        below = None
        for layer, (layer_ih, layer_bias, w_hh_t, b_hh) in enumerate(cells):
            if layer:
                stacked = torch.addmm(layer_bias, below.reshape(-1, size), layer_ih.t()).view(hi - lo, steps, -1)
                gates = (lambda t, stacked=stacked: stacked[:, t].clone())
            target = out[lo:hi] if layer == rnn.num_layers - 1 else embedded.new_empty(hi - lo, steps, size)
            h0 = _initial(h_state, layer, lo, hi, embedded, size)
            if is_lstm:
                _lstm_layer(gates, h0, _initial(c_state, layer, lo, hi, embedded, size), w_hh_t, target)
            else:
                _gru_layer(gates, h0, w_hh_t, b_hh, target)
            below = target
    return out


def _initial(state: Optional[torch.Tensor], layer: int, lo: int, hi: int, like: torch.Tensor, size: int) -> torch.Tensor:
    """Rows [lo, hi) of one layer's initial state (layers, N, H), zeros when there is none."""
    if state is None:
        return like.new_zeros(hi - lo, size)
    return state[layer, lo:hi].contiguous()


def rnn_step(rnn: nn.RNNBase, inputs: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
    """One time step of ``rnn`` (a unidirectional ``nn.LSTM`` or ``nn.GRU``) for inputs (N, E): the top layer's
    output (N, H) and the new state in ``rnn``'s own form, (layers, N, H) or an (h, c) pair (``state`` None:
    zeros). It calls the fused cell of each layer (``torch.gru_cell``/``lstm_cell``), which on a CPU takes about
    two thirds of the time ``rnn`` takes over a sequence of length 1 (generation, one token at a time); gradients
    flow as through ``rnn``. Between-layer dropout in training mode, projections and bidirectional RNNs go
    through ``rnn`` itself."""
    if (not isinstance(rnn, (nn.LSTM, nn.GRU)) or rnn.bidirectional or rnn.proj_size
            or (rnn.training and rnn.dropout > 0 and rnn.num_layers > 1)):
        batch_first = inputs.unsqueeze(1) if rnn.batch_first else inputs.unsqueeze(0)
        out, state = rnn(batch_first, state)
        return (out[:, 0] if rnn.batch_first else out[0]), state
    is_lstm = isinstance(rnn, nn.LSTM)
    rows, size = inputs.size(0), rnn.hidden_size
    if state is None:
        zeros = inputs.new_zeros(rnn.num_layers, rows, size)
        state = (zeros, zeros) if is_lstm else zeros
    h_all, c_all = state if is_lstm else (state, None)
    x, hs, cs = inputs, [], []
    for layer in range(rnn.num_layers):
        weights = rnn.all_weights[layer]  # w_ih, w_hh (, b_ih, b_hh)
        if is_lstm:
            h, c = torch.lstm_cell(x, (h_all[layer], c_all[layer]), *weights)
            cs.append(c)
        else:
            h = torch.gru_cell(x, h_all[layer], *weights)
        hs.append(h)
        x = h
    new_h = torch.stack(hs)
    return x, ((new_h, torch.stack(cs)) if is_lstm else new_h)
