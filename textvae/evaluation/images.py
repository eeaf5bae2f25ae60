"""Figures and figures of merit for the image VAEs: PNG grids of reconstructions, prior samples and latent
traversals (one row per latent variable), and the summary ``scripts/train_image_vae.py`` prints at the end of a run
(valid ELBO, importance-weighted NLL of test images, active units, and the grids written beside the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..models.base import load_pretrained
from .latent_stats import collapse_warning
from .likelihood import image_iw_nll


def image_grid(images: "torch.Tensor | np.ndarray", columns: int, pad: int = 1) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] tiled row by row into one uint8 array (rows*(H+pad), columns*(W+pad)[, 3])
    with white lines between them."""
    images = torch.as_tensor(np.asarray(images, dtype=np.float32) if not isinstance(images, torch.Tensor) else images)
    images = images.detach().float().cpu().clamp(0, 1)
    n, c, h, w = images.shape
    rows = -(-n // columns)
    grid = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, columns)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[i]
    array = (grid.numpy() * 255).round().astype(np.uint8)
    return array[0] if c == 1 else array.transpose(1, 2, 0)


def save_image_grid(path: "str | Path", images, columns: int, scale: int = 1) -> Path:
    """Write ``image_grid(images, columns)`` as a PNG, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    array = image_grid(images, columns)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return Path(path)


def traversal_images(model, image, values: Sequence[float] = (-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2),
                     max_categories: int = 10) -> tuple[torch.Tensor, int]:
    """One row per latent variable: ``image``'s code with that variable changed (a Gaussian dimension set to each of
    ``values``; a categorical variable set to each category, up to ``max_categories``), decoded. Returns the images
    (rows * columns, C, H, W) and the number of columns."""
    z = model.encode(model.as_images(image)[:1])
    latent = model.latent
    sizes = list(getattr(latent, "category_sizes", []) or [])
    num_cont = latent.code_size - sum(sizes)
    columns = max(len(values), min(max_categories, max(sizes, default=0)))
    rows = []
    for d in range(num_cont):
        batch = z.repeat(columns, 1)
        batch[: len(values), d] = torch.tensor(values, dtype=z.dtype, device=z.device)
        rows.append(model.decode(batch)[: len(values)])
        rows.append(torch.ones_like(rows[-1][:1]).repeat(columns - len(values), 1, 1, 1))
    offset = num_cont
    for n in sizes:
        k = min(n, max_categories)
        batch = z.repeat(k, 1)
        batch[:, offset : offset + n] = 0
        batch[torch.arange(k), offset + torch.arange(k)] = 1
        rows += [model.decode(batch), torch.ones_like(model.decode(batch[:1])).repeat(columns - k, 1, 1, 1)]
        offset += n
    return torch.cat(rows), columns


def write_figures(model, images: torch.Tensor, folder: "str | Path", seed: int = 0, scale: int = 2) -> list[Path]:
    """reconstructions.png (originals above their reconstructions), samples.png (prior samples) and traversals.png
    (``traversal_images`` of the first image) in ``folder``."""
    folder = Path(folder)
    shown = images[:8]
    recon = model.reconstruct(shown)
    traversal, columns = traversal_images(model, shown[:1])
    return [
        save_image_grid(folder / "reconstructions.png", torch.cat([model.as_images(shown).cpu(), recon.cpu()]), len(shown), scale),
        save_image_grid(folder / "samples.png", model.sample(16, seed=seed), 8, scale),
        save_image_grid(folder / "traversals.png", traversal, columns, scale),
    ]


def print_image_summary(result, data, num_images: int = 256, num_samples: int = 100,
                        figures: Optional[str] = "figures") -> None:
    """Valid figures of the best model, its importance-weighted NLL of the first ``num_images`` test images with
    ``num_samples`` samples (the issue's K = 500 is ``scripts/benchmarks/images.py``'s), and PNG grids in the run
    folder's ``figures/``."""
    folder = result.best_dir or result.final_dir
    model = load_pretrained(folder)
    v, state = result.valid, result.state
    print(f"\nmodel folder: {folder}" + (f" (best valid ELBO {state.best_elbo:.3f}, step {state.best_step})" if result.best_dir else ""))
    print(f"valid at step {state.step}: ELBO {v['elbo']:.3f} nats/image (rec {v['rec']:.3f}, KL {v['kl']:.3f}), "
          f"active units {v['active_units']}/{model.latent.code_size}")
    warning = collapse_warning(v["kl"], v["active_units"], model.latent.code_size, model.config.objective)
    if warning:
        print(f"warning: {warning}")
    test = data.datasets["test"]
    images = test.images(np.arange(min(num_images, len(test))))
    nll = image_iw_nll(model, images, num_samples=num_samples, seed=0)
    print(f"test IW-NLL (K={num_samples}, {len(images)} images): {float(nll.mean()):.3f} nats/image")
    if figures:
        paths = write_figures(model, images, Path(result.output_dir) / figures)
        print("figures: " + ", ".join(str(p) for p in paths))
