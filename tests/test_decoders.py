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
