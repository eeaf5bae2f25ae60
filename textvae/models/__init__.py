"""Models; importing this package registers every model type."""

from ..config import Config, ModelConfig
from .base import BaseVAE, InputError, VAEOutput, load_pretrained
from .cvae import CVAE, CVAEOutput
from .hierarchical import VHRED
from .latent_action import LatentActionModel
from .negotiation import NegotiationAgent, NegotiationModel, NegotiationWordModel
from .sentence_vae import TextVAE


def build_model(config: "Config | ModelConfig | dict", tokenizer) -> BaseVAE:
    """A fresh model of the type ``config.model.model_type`` names (a ``Config``, ``ModelConfig`` or its dict form),
    over ``tokenizer``'s vocabulary; every model type is registered once this package is imported."""
    return BaseVAE.from_config(config, tokenizer)


__all__ = [
    "BaseVAE", "CVAE", "CVAEOutput", "InputError", "LatentActionModel", "NegotiationAgent", "NegotiationModel",
    "NegotiationWordModel", "TextVAE", "VAEOutput", "VHRED", "build_model", "load_pretrained",
]
