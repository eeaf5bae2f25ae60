"""Models; importing this package registers every model type."""

from ..config import Config, ModelConfig
from .base import BaseVAE, InputError, VAEModel, VAEOutput, load_pretrained
from .cvae import CVAE, CVAEOutput
from .hierarchical import VHRED
from .image_vae import ImageVAE
from .latent_action import LatentActionModel
from .negotiation import NegotiationAgent, NegotiationModel, NegotiationWordModel
from .sentence_vae import TextVAE


def build_model(config: "Config | ModelConfig | dict", tokenizer=None) -> VAEModel:
    """A fresh model of the type ``config.model.model_type`` names (a ``Config``, ``ModelConfig`` or its dict form),
    over ``tokenizer``'s vocabulary (None for image models); every model type is registered once this package is
    imported."""
    return BaseVAE.from_config(config, tokenizer)  # builds every registered type, image models too


__all__ = [
    "BaseVAE", "CVAE", "CVAEOutput", "ImageVAE", "InputError", "LatentActionModel", "NegotiationAgent",
    "NegotiationModel", "NegotiationWordModel", "TextVAE", "VAEModel", "VAEOutput", "VHRED", "build_model",
    "load_pretrained",
]
