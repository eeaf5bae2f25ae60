"""Models; importing this package registers every model type."""

from .base import BaseVAE, InputError, VAEOutput, load_pretrained
from .cvae import CVAE, CVAEOutput
from .hierarchical import VHRED
from .sentence_vae import TextVAE

__all__ = ["BaseVAE", "CVAE", "CVAEOutput", "InputError", "TextVAE", "VAEOutput", "VHRED", "load_pretrained"]
