"""textvae: variational autoencoders of text and dialogue in PyTorch.

    import textvae
    model = textvae.load_pretrained("runs/default/best")
    z = model.encode(["the cat sat on the mat ."])
    print(model.decode(z))
"""

from .config import (
    Config,
    ConfigError,
    DataConfig,
    DecoderConfig,
    EncoderConfig,
    LatentConfig,
    ModelConfig,
    ObjectiveConfig,
    TokenizerConfig,
    TrainConfig,
    load_config,
    save_config,
)
from .data.batching import collate
from .data.corpora import Corpus, DataError, load_corpus
from .data.pipeline import PreparedData, make_loader, prepare_data
from .data.tokenization import Tokenizer, load_tokenizer, train_tokenizer
from .errors import CheckpointError
from .models import BaseVAE, ImageVAE, InputError, TextVAE, VAEModel, VAEOutput, build_model, load_pretrained

TextVAEConfig = ModelConfig  # the config a TextVAE is built from

__version__ = "0.1.0"

__all__ = [
    "BaseVAE",
    "CheckpointError",
    "Config",
    "ConfigError",
    "Corpus",
    "DataConfig",
    "DataError",
    "DecoderConfig",
    "EncoderConfig",
    "ImageVAE",
    "InputError",
    "LatentConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PreparedData",
    "TextVAE",
    "TextVAEConfig",
    "TokenizerConfig",
    "Tokenizer",
    "TrainConfig",
    "VAEModel",
    "VAEOutput",
    "build_model",
    "collate",
    "load_config",
    "load_corpus",
    "load_pretrained",
    "load_tokenizer",
    "make_loader",
    "prepare_data",
    "save_config",
    "train_tokenizer",
]
