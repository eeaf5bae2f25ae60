"""Convolutional image VAEs, the reference baselines: the text models' latents (Gaussian, Gumbel-Softmax with
per-variable category sizes, joint) and objectives (beta, capacity, free bits, beta-TCVAE) on images, trained by the
same trainer, so a beta-VAE or a capacity-controlled VAE of this library can be checked against the image
literature before it is trusted on text.

Networks (``model.image.architecture``): ``conv64`` is disentanglement_lib's for 64 x 64 images (Locatello et al.
2019): four 4 x 4 stride-2 convolutions of 32, 32, 64, 64 channels, a dense layer of 256, ReLU; the decoder mirrors
it (dense 256, dense to 4 x 4 x 64, transposed convolutions 64, 32, 32, channels). ``small`` has two convolutions
(32, 64), for 8 x 8 digits, 28 x 28 MNIST and 28 x 20 Frey faces. Padding 1 halves each side exactly (TensorFlow's
'same' pads 4 x 4 stride-2 convolutions one pixel more on one side).

Likelihoods (``model.image.likelihood``): Bernoulli with the decoder's logits; Gaussian N(sigmoid(output), std^2)
with a fixed or learned std. Batches are ``{"images": (B, C, H, W) floats in [0, 1]}`` (``data.images``).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig
from ..errors import InputError
from ..modules.latents import build_latent
from ..registry import MODELS
from .base import VAEModel, count_argument, evaluating
from .sentence_vae import TextVAEOutput, check_objective, latent_forward

ARCHITECTURES = {"conv64": (32, 32, 64, 64), "small": (32, 64)}


def conv_channels(config: ModelConfig) -> tuple[int, ...]:
    """The encoder's conv channels for ``model.image`` (``auto``: conv64 for 64 x 64 images, small otherwise), after
    checking that the image sides halve exactly through them."""
    image = config.image
    name = image.architecture
    if name == "auto":
        name = "conv64" if (image.height, image.width) == (64, 64) else "small"
    channels = ARCHITECTURES[name]
    step = 2 ** len(channels)
    if image.height % step or image.width % step:
        raise ConfigError(f"model.image.architecture {name} halves the image {len(channels)} times: height and width "
                          f"must be multiples of {step}, got {image.height} x {image.width}")
    return channels


class ConvEncoder(nn.Module):
    """Images (B, C, H, W) -> h (B, hidden): 4 x 4 stride-2 convolutions, then a dense layer, ReLU throughout."""

    def __init__(self, shape: Sequence[int], channels: Sequence[int], hidden: int) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 4, stride=2, padding=1), nn.ReLU()]
            c, h, w = out, h // 2, w // 2
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU())
        self.output_size = hidden

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(images))


class ConvDecoder(nn.Module):
    """z (N, D) -> pixel outputs (N, C, H, W): the encoder mirrored (dense layers, then 4 x 4 stride-2 transposed
    convolutions); the last layer has no activation (Bernoulli logits, or the Gaussian mean before its sigmoid)."""

    def __init__(self, code_size: int, shape: Sequence[int], channels: Sequence[int], hidden: int) -> None:
        super().__init__()
        c, h, w = shape
        self.start = (channels[-1], h // 2 ** len(channels), w // 2 ** len(channels))
        self.dense = nn.Sequential(nn.Linear(code_size, hidden), nn.ReLU(),
                                   nn.Linear(hidden, math.prod(self.start)), nn.ReLU())
        outs = [*reversed(channels[:-1]), c]
        layers: list[nn.Module] = []
        width = channels[-1]
        for i, out in enumerate(outs):
            layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
            width = out
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.dense(z).view(-1, *self.start))


@MODELS.register("image_vae")
class ImageVAE(VAEModel):
    """A convolutional VAE of images. ``forward(batch, step)`` returns the text VAE's output (named loss terms);
    ``log_prob_given_z`` gives log p(x|z) for any number of latent samples, which importance-weighted evaluation
    (``evaluation.likelihood.image_iw_nll``) builds on."""

    uses_tokenizer = False
    api_batch_size = 256

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        image = config.image
        missing = [key for key in ("channels", "height", "width") if getattr(image, key) is None]
        if missing:
            raise ConfigError(f"model.image.{missing[0]} is not set: prepare_data takes the image shape from the data, "
                              "so build the model from data.model_config(config) (or set model.image's shape)")
        conv_channels(config)

    def __init__(self, config: ModelConfig, tokenizer=None) -> None:
        super().__init__(config, None)
        image = config.image
        self.image_shape = (image.channels, image.height, image.width)
        channels = conv_channels(config)
        self.encoder = ConvEncoder(self.image_shape, channels, image.hidden_size)
        self.latent = build_latent(self.encoder.output_size, config.latent)
        self.decoder = ConvDecoder(self.latent.code_size, self.image_shape, channels, image.hidden_size)
        if image.likelihood == "gaussian" and image.gaussian_std is None:
            self.log_std = nn.Parameter(torch.tensor(math.log(0.1)))  # learned; starts at 0.1 of the [0, 1] range
        check_objective(config, self.latent)

    # ------------------------------------------------------------------ the model
    def posterior(self, images: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """q(z|x) for images (B, C, H, W). ``lengths`` is unused: the text models' signature, so the evaluation code
        that samples from posteriors serves both."""
        return self.latent.posterior(self.encoder(images))

    def decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output (N, C, H, W): Bernoulli logits, or the Gaussian mean before its sigmoid."""
        return self.decoder(z)

    def pixel_log_prob(self, output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image (N,) from the decoder's output (N, C, H, W), summed over pixels, in nats."""
        if self.config.image.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(output, images, reduction="none").flatten(1).sum(-1)
        std = self.config.image.gaussian_std
        log_std = self.log_std if std is None else output.new_tensor(math.log(std))
        var = torch.exp(2 * log_std)
        squared = (images - torch.sigmoid(output)) ** 2
        return -(0.5 * squared / var + log_std + 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)

    def log_prob_given_z(self, images: torch.Tensor, lengths: Optional[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image: z (B, D) -> (B,), or z (S, B, D) -> (S, B) for S samples per image (``lengths``:
        unused, as in ``posterior``)."""
        if z.dim() == 2:
            return self.pixel_log_prob(self.decoder_output(z), images)
        samples, batch = z.shape[:2]
        output = self.decoder_output(z.reshape(samples * batch, -1))
        expanded = images.unsqueeze(0).expand(samples, *images.shape).reshape(samples * batch, *images.shape[1:])
        return self.pixel_log_prob(output, expanded).view(samples, batch)

    def forward(self, batch: dict, step: int = 0) -> TextVAEOutput:
        """One training or evaluation pass over ``{"images": (B, C, H, W)}``; the KL weights and the Gumbel temperature
        follow ``step``. ``num_tokens`` counts pixel values (B x C x H x W): the trainer's rates are per value."""
        images = batch["images"]
        q = self.posterior(images)
        return latent_forward(self.latent, self.config, q, step, lambda z: -self.log_prob_given_z(images, None, z),
                              num_tokens=torch.tensor(images.numel(), device=images.device))

    # ------------------------------------------------------------------ images in and out
    def as_images(self, images) -> torch.Tensor:
        """Images as a float tensor (N, C, H, W) in [0, 1] on the model's device: a tensor or array (or a list of
        arrays) of shape (N, C, H, W), or (N, H, W) for one channel; booleans are 0/1, bytes 0-255."""
        if isinstance(images, (list, tuple)):
            images = np.stack([np.asarray(image) for image in images]) if images else np.zeros((0,))
        array = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if array.dtype == torch.bool:
            array = array.float()
        elif array.dtype == torch.uint8:
            array = array.float() / 255.0
        if array.dim() == 3 and self.image_shape[0] == 1:
            array = array.unsqueeze(1)
        if array.dim() != 4 or tuple(array.shape[1:]) != self.image_shape or array.size(0) == 0:
            raise InputError(f"images must have shape (N, {', '.join(map(str, self.image_shape))}) with N >= 1, got "
                             f"{tuple(array.shape)}")
        return array.to(device=self.device, dtype=torch.float32)

    @torch.no_grad()
    def encode(self, images, sample: bool = False) -> torch.Tensor:
        """Images -> latent codes (N, D): posterior modes (Gaussian means, one-hot argmax categories), or one
        posterior sample each with ``sample=True``; batches of ``api_batch_size``."""
        images = self.as_images(images)
        codes = []
        with evaluating(self):
            for start in range(0, images.size(0), self.api_batch_size):
                q = self.posterior(images[start : start + self.api_batch_size])
                codes.append(self.latent.rsample(q) if sample else self.latent.mode(q))
        return torch.cat(codes)

    @torch.no_grad()
    def decode(self, z) -> torch.Tensor:
        """Latent codes (N, D) -> the decoder's mean images (N, C, H, W) in [0, 1] (Bernoulli probabilities or
        Gaussian means)."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.size(1) != self.latent.code_size:
            raise InputError(f"z has shape {tuple(z.shape)}; this model's latent codes have shape (N, {self.latent.code_size})")
        with evaluating(self):
            return torch.cat([torch.sigmoid(self.decoder_output(z[i : i + self.api_batch_size]))
                              for i in range(0, z.size(0), self.api_batch_size)])

    def reconstruct(self, images) -> torch.Tensor:
        """Encode to posterior modes and decode back: mean images (N, C, H, W)."""
        return self.decode(self.encode(images))

    def sample(self, n: int, seed: Optional[int] = None) -> torch.Tensor:
        """Mean images of ``n`` latents drawn from the prior (``seed`` fixes them)."""
        n = count_argument("n", n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.decode(self.latent.sample_prior(n, generator=generator))
