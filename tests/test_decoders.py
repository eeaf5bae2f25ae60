import pytest
import torch

from textvae.config import DecoderConfig
from textvae.modules.decoders import build_decoder, word_dropout


def test_word_dropout_rate_and_never_the_first_token_or_padding():
    torch.manual_seed(0)
    ids = torch.randint(4, 50, (400, 30))
    ids[:, 0] = 1
    ids[:, 25:] = 0  # padding
    dropped = word_dropout(ids, rate=0.3, unk_id=3, pad_id=0)
    assert torch.all(dropped[:, 0] == 1)
    assert torch.all(dropped[:, 25:] == 0)
    changed = (dropped[:, 1:25] == 3).float().mean().item()
    assert abs(changed - 0.3) < 0.01, changed
    assert torch.equal(word_dropout(ids, 0.0, 3, 0), ids)


@pytest.mark.parametrize("z_mode", ["init", "concat", "init+concat"])
@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_z_reaches_outputs_and_step_matches_teacher_forcing(z_mode, rnn):
    torch.manual_seed(0)
    config = DecoderConfig(type=rnn, embedding_size=6, hidden_size=7, num_layers=2, z_mode=z_mode)
    decoder = build_decoder(20, 3, config).eval()
    ids = torch.randint(4, 20, (2, 5))
    z = torch.randn(2, 3, requires_grad=True)
    hidden = decoder(ids, z)
    hidden.sum().backward()
    assert z.grad.abs().sum() > 0
    # incremental steps give the same logits as the teacher-forced pass
    state = decoder.initial_state(z)
    with torch.no_grad():
        full = decoder.project(decoder(ids, z))
        for t in range(ids.size(1)):
            logits, state = decoder.step(ids[:, t], z, state)
            assert torch.allclose(logits, full[:, t], atol=1e-5)


def test_tied_embeddings_need_equal_sizes():
    with pytest.raises(ValueError, match="tie_embeddings"):
        build_decoder(20, 3, DecoderConfig(embedding_size=6, hidden_size=7, tie_embeddings=True))
    decoder = build_decoder(20, 3, DecoderConfig(embedding_size=7, hidden_size=7, tie_embeddings=True))
    assert decoder.output.weight is decoder.embedding.weight


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_sequence_nll_through_token_nll_equals_logits_and_cross_entropy(kind):
    """Our decoders fuse projection and loss (``token_nll``); the per-sentence NLL and every parameter's gradient
    equal those of the logits path any other decoder takes."""
    from textvae.modules.decoders import sequence_nll

    torch.manual_seed(0)
    extra = {"num_heads": 2, "feedforward_size": 16, "z_mode": "memory"} if kind == "transformer" else {}
    config = DecoderConfig(type=kind, embedding_size=8, hidden_size=8, num_layers=1, **extra)
    decoder = build_decoder(23, 3, config).eval()
    ids = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0], [1, 9, 10, 11, 12, 2]])
    lengths = torch.tensor([5, 3, 6])
    z = torch.randn(3, 3)

    def nll_and_grads(fused: bool):
        decoder.zero_grad()
        if fused:
            nll = sequence_nll(decoder, ids, lengths, z)
        else:
            nll = sequence_nll(type("Plain", (), {"__call__": lambda self, i, zz: decoder(i, zz),
                                                  "project": lambda self, h: decoder.project(h)})(), ids, lengths, z)
        (nll * torch.tensor([1.0, 2.0, 0.5])).sum().backward()
        return nll.detach(), {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}

    fused_nll, fused_grads = nll_and_grads(True)
    plain_nll, plain_grads = nll_and_grads(False)
    torch.testing.assert_close(fused_nll, plain_nll, rtol=1e-5, atol=1e-5)
    assert fused_grads.keys() == plain_grads.keys() and "output.weight" in fused_grads
    for name in fused_grads:
        torch.testing.assert_close(fused_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_output_layer_without_bias_as_the_reference_code_builds_it(kind):
    torch.manual_seed(0)
    config = DecoderConfig(type=kind, embedding_size=8, hidden_size=8, num_heads=2, feedforward_size=16,
                           output_bias=False, z_mode="init+concat" if kind == "lstm" else "memory")
    decoder = build_decoder(20, 3, config)
    assert decoder.output.bias is None
    assert not any(name.startswith("output.bias") for name, _ in decoder.named_parameters())
    ids, z = torch.randint(4, 20, (2, 5)), torch.randn(2, 3)
    hidden = decoder(ids, z)
    logits = decoder.project(hidden)
    assert torch.allclose(logits, hidden @ decoder.output.weight.T, atol=1e-6)
