import pytest
import torch

from textvae.config import EncoderConfig
from textvae.data.batching import collate
from textvae.modules.encoders import build_encoder


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_padded_batch_encodes_each_sentence_as_alone(rnn, bidirectional, layers):
    torch.manual_seed(0)
    config = EncoderConfig(type=rnn, embedding_size=6, hidden_size=5, num_layers=layers, bidirectional=bidirectional)
    encoder = build_encoder(20, config).eval()
    sentences = [[4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    batch = collate(sentences, pad_id=0, bos_id=1, eos_id=2)
    together = encoder(batch["input_ids"], batch["lengths"])
    assert together.shape == (3, encoder.output_size)
    assert encoder.output_size == 5 * (2 if bidirectional else 1)
    for i, sentence in enumerate(sentences):
        alone = collate([sentence], pad_id=0, bos_id=1, eos_id=2)
        assert torch.allclose(together[i], encoder(alone["input_ids"], alone["lengths"])[0], atol=1e-6)


def test_encoder_state_depends_on_every_token():
    torch.manual_seed(0)
    encoder = build_encoder(20, EncoderConfig(type="lstm", embedding_size=6, hidden_size=5)).eval()
    a = collate([[4, 5, 6]], 0, 1, 2)
    b = collate([[9, 5, 6]], 0, 1, 2)
    assert not torch.allclose(encoder(a["input_ids"], a["lengths"]), encoder(b["input_ids"], b["lengths"]))
