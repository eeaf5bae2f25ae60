"""model.init: uniform puts every parameter of a text model in its range (He et al. 2019, Li et al. 2019)."""

import pytest
import torch
from torch import nn

from textvae.config import ConfigError
from textvae.models import build_model

from .conftest import tiny_model_config


def embedding_weights(model):
    return {id(m.weight): m for m in model.modules() if isinstance(m, nn.Embedding)}


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("tie", [False, True])
def test_uniform_init_puts_every_weight_in_its_range(tokenizer, rnn, tie):
    torch.manual_seed(0)
    decoder = {"type": rnn, "embedding_size": 12 if tie else 8, "hidden_size": 12, "tie_embeddings": tie}
    config = tiny_model_config(rnn, init="uniform", init_range=0.01, embedding_init_range=0.1, decoder=decoder)
    model = build_model(config, tokenizer)
    embeddings = embedding_weights(model)
    assert len(embeddings) == 2  # encoder and decoder
    names = dict(model.named_parameters())
    assert any(n.startswith("encoder.rnn") for n in names) and any(n.startswith("latent.") for n in names)
    for name, p in names.items():
        limit = 0.1 if id(p) in embeddings else 0.01
        assert p.abs().max() <= limit, name
        assert p.unique().numel() > p.numel() // 2, name  # drawn, not constant (padding rows are the only zeros)
    for embedding in embeddings.values():
        assert torch.all(embedding.weight[tokenizer.pad_id] == 0)
        assert embedding.weight.abs().max() > 0.05  # the wider range, not the weights' one
    # the modules' own initialisation is far outside +-0.01 (an LSTM's weights lie in +-1/sqrt(hidden))
    default = build_model(tiny_model_config(rnn), tokenizer)
    assert default.encoder.rnn.weight_hh_l0.abs().max() > 0.1


def test_uniform_init_is_seeded_and_the_language_model_needs_no_encoder_type(tokenizer):
    config = tiny_model_config(init="uniform", latent={"type": "none"}, encoder={"type": "transformer"})
    torch.manual_seed(3)
    a = build_model(config, tokenizer).state_dict()
    torch.manual_seed(3)
    b = build_model(config, tokenizer).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_uniform_init_refuses_transformers(part):
    with pytest.raises(ConfigError, match=f"model.init: uniform is for RNN .* model.{part}.type is 'transformer'"):
        tiny_model_config(init="uniform", **{part: {"type": "transformer"}})


def test_uniform_init_refuses_the_convolutional_image_vae():
    with pytest.raises(ConfigError, match=r"model.model_type 'image_vae' builds convolutional ones"):
        tiny_model_config(init="uniform", model_type="image_vae")
