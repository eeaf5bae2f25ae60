"""Models; importing this package registers every model type."""

from .base import BaseVAE, InputError, VAEOutput, load_pretrained
from .cvae import CVAE, CVAEOutput
from .sentence_vae import TextVAE

__all__ = ["BaseVAE", "CVAE", "CVAEOutput", "InputError", "TextVAE", "VAEOutput", "load_pretrained"]
