"""Shared tiny fixtures: a word tokenizer on a small made-up corpus and tiny VAEs (dimensions of a few units)."""

import pytest
import torch

from textvae.config import ModelConfig, TokenizerConfig, from_dict
from textvae.data.tokenization import train_tokenizer

SENTENCES = [
    "the cat sat on the mat .",
    "a dog ran in the park .",
    "the bird sang a song .",
    "my friend read the old book today .",
    "we will eat fish .",
    "did the cat see the dog ?",
    "the tall man walked home slowly .",
    "she likes green tea .",
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run fastest on one thread, and much slower with two when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(SENTENCES, TokenizerConfig(type="word"))


def tiny_model_config(rnn: str = "lstm", **overrides) -> ModelConfig:
    """A ModelConfig with tiny sizes; ``overrides`` are nested dicts merged over it."""
    base = {
        "encoder": {"type": rnn, "embedding_size": 8, "hidden_size": 12},
        "decoder": {"type": rnn, "embedding_size": 8, "hidden_size": 12},
        "latent": {"size": 4},
        "max_length": 16,
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return from_dict(ModelConfig, base, prefix="model.")


def fit(model, batch: dict, steps: int, lr: float) -> list[float]:
    """``steps`` Adam steps of ``model`` on one batch (the step number passed on, for schedules); the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        output = model(batch, step=step)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    return losses


@pytest.fixture
def tiny_model(tokenizer):
    from textvae import TextVAE

    torch.manual_seed(0)
    return TextVAE.from_config(tiny_model_config(), tokenizer)


@pytest.fixture
def sharp_model(tiny_model):
    with torch.no_grad():  # a decoder that depends on z enough for paths to change sentence along the way
        tiny_model.decoder.output.weight.mul_(4)
        tiny_model.latent.proj.weight.mul_(10)
    return tiny_model.eval()
