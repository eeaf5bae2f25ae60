"""Sprites: a generator with dSprites's factor grid (Matthey et al. 2017), for image disentanglement baselines.

Five factors, 737,280 binary 64 x 64 images, one per combination, in dSprites's order (the last factor fastest)::

    col  factor       values
    0    shape        3   square, ellipse, heart
    1    scale        6   0.5, 0.6, ..., 1.0
    2    orientation  40  2 pi k / 40, k = 0..39 (counter-clockwise)
    3    pos_x        32  the shape's centre at column 16 + k (pixels; one step = one pixel)
    4    pos_y        32  the shape's centre at row 16 + k (downwards)

Each (shape, scale, orientation) is drawn once, as a 32 x 32 binary template (a pixel is on when its centre lies
inside the shape), and an image is that template pasted at its position: translation is exact, so one position
step moves the shape by one pixel, and rendering a batch is one vectorised copy (no per-image loop). The shape's
centre sits on a pixel corner, so the pixel centres around it form a grid that rotations by 90 degrees map onto
itself: a square at orientation k and k + 10 (90 degrees) and an ellipse at k and k + 20 (180 degrees) are the same
image, as in dSprites. dSprites's own positions span about 1.3 pixels a step; this grid's shapes move over 32 pixels.

``Sprites`` implements the ground-truth protocol (``data.ground_truth``): observations are boolean (64, 64) arrays,
so the disentanglement metrics run on it unchanged with an encoder of images. ``Sprites.oracle_encoder`` is the
perfect encoder of the images whose scores are the metrics' ceilings: the symmetries above leave part of the
orientation undetermined.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .ground_truth import check_factors

FACTOR_NAMES = ["shape", "scale", "orientation", "pos_x", "pos_y"]
FACTORS_NUM_VALUES = [3, 6, 40, 32, 32]
SHAPES = ["square", "ellipse", "heart"]
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = 2 * math.pi * np.arange(40) / 40
IMAGE_SIZE = 64
PATCH = 32  # template side; a template's centre is its pixel corner (16, 16)
NUM_IMAGES = int(np.prod(FACTORS_NUM_VALUES))  # 737,280
# shape sizes in pixels at scale 1: square half-side, ellipse semi-axes, heart unit; the largest reaches 12.5 pixels
# from the centre, so every shape fits its template and the image at every position
SQUARE_HALF_SIDE = 10.0
ELLIPSE_AXES = (13.0, 6.5)
HEART_UNIT = 11.0


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u right, v up; pixels at scale 1) lie inside the shape at orientation 0."""
    if shape == "square":
        return (np.abs(u) < SQUARE_HALF_SIDE) & (np.abs(v) < SQUARE_HALF_SIDE)
    if shape == "ellipse":
        a, b = ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 < 1.0
    # the heart curve (x^2 + y^2 - 1)^3 = x^2 y^3, its bounding box centred on the origin
    x, y = u / HEART_UNIT, v / HEART_UNIT + 0.12
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 < 0.0


def render_templates() -> np.ndarray:
    """Every (shape, scale, orientation) as a 32 x 32 boolean template: (3 * 6 * 40, 32, 32), in factor order."""
    offsets = np.arange(PATCH) - PATCH // 2 + 0.5  # pixel centres relative to the shape's centre
    dx = offsets[None, :]
    dy = -offsets[:, None]  # rows run downwards, v upwards
    templates = np.zeros((len(SHAPES), len(SCALES), len(ORIENTATIONS), PATCH, PATCH), dtype=bool)
    for s, shape in enumerate(SHAPES):
        for c, scale in enumerate(SCALES):
            for o, angle in enumerate(ORIENTATIONS):
                # rotating the shape by +angle is rotating the points by -angle; sizes scale with 1 / scale
                cos, sin = math.cos(angle), math.sin(angle)
                u = (cos * dx + sin * dy) / scale
                v = (-sin * dx + cos * dy) / scale
                templates[s, c, o] = _inside(shape, u, v)
    return templates.reshape(-1, PATCH, PATCH)


class Sprites:
    """dSprites's factor grid, rendered on demand (see the module's docstring). Deterministic: the images are a
    function of the factors; ``rng`` draws the factors only."""

    factor_names = FACTOR_NAMES
    factors_num_values = FACTORS_NUM_VALUES
    num_factors = len(FACTOR_NAMES)
    image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self) -> None:
        self.templates = render_templates()
        self._oracle = None

    def __len__(self) -> int:
        return NUM_IMAGES

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor vectors (n, 5), each factor uniform and independent (the whole grid, equally weighted)."""
        return np.stack([rng.integers(0, k, size=n) for k in FACTORS_NUM_VALUES], axis=1)

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator = None) -> list[np.ndarray]:
        """The image of each factor row, a boolean (64, 64) array each, in a list as the protocol's observations are
        (the metrics concatenate them); ``rng`` is unused (one image per combination). ``render`` gives one array."""
        return list(self.render(factors))

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Boolean images (n, 64, 64) of factor rows (n, 5): each row's template pasted at its position."""
        f = check_factors(self, factors)
        n = len(f)
        template = (f[:, 0] * len(SCALES) + f[:, 1]) * len(ORIENTATIONS) + f[:, 2]
        images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        span = np.arange(PATCH)
        rows = (f[:, 4, None] + span)[:, :, None]  # template top row = centre row - 16 = pos_y
        cols = (f[:, 3, None] + span)[:, None, :]
        images[np.arange(n)[:, None, None], rows, cols] = self.templates[template]
        return images

    def images(self, indices: "Sequence[int] | np.ndarray") -> np.ndarray:
        """The images at positions of the whole grid (dSprites's row order): boolean (n, 64, 64)."""
        return self.render(self.factors_of(indices))

    @staticmethod
    def factors_of(indices: "Sequence[int] | np.ndarray") -> np.ndarray:
        """Factor rows (n, 5) of grid positions in [0, 737,280), the last factor varying fastest."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= NUM_IMAGES):
            raise ValueError(f"sprite indices must lie in [0, {NUM_IMAGES}), got {indices.min()} to {indices.max()}")
        return np.stack(np.unravel_index(indices, FACTORS_NUM_VALUES), axis=1).astype(np.int64)

    @staticmethod
    def index_of(factors: np.ndarray) -> np.ndarray:
        """Grid positions of factor rows: the inverse of ``factors_of``."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), FACTORS_NUM_VALUES).astype(np.int64)

    def oracle_encoder(self) -> "SpritesOracle":
        """The perfect encoder of these images (built once): what ``metric_ceilings`` scores."""
        if self._oracle is None:
            self._oracle = SpritesOracle(self)
        return self._oracle


def _windows(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's bounding-box corner (row, column) and its 32 x 32 window from there, bits packed: (n, 128)."""
    n, size = len(images), images.shape[1]
    rows_on, cols_on = images.any(2), images.any(1)
    if not rows_on.any(1).all():
        raise ValueError(f"image {int(np.argmin(rows_on.any(1)))} is blank: not an image of the sprites grid")
    top, left = rows_on.argmax(1), cols_on.argmax(1)
    span = np.arange(PATCH)
    r, c = top[:, None] + span, left[:, None] + span
    keep = (r < size)[:, :, None] & (c < size)[:, None, :]
    window = images[np.arange(n)[:, None, None], np.minimum(r, size - 1)[:, :, None],
                    np.minimum(c, size - 1)[:, None, :]] & keep
    return top, left, np.packbits(window, axis=-1).reshape(n, -1)


class SpritesOracle:
    """The perfectly disentangled encoder of sprite images: image -> one categorical code per factor.

    An image is looked up among the 720 templates by its pixels from its bounding box on; every (shape, scale,
    orientation, position) that draws exactly this image is consistent with it. Code k is the smallest value of
    factor k among them: the factor itself where the image determines it, its symmetry class otherwise (a
    square's orientation modulo 90 degrees, an ellipse's modulo 180). ``undetermined[k]``: the fraction of the grid
    whose image leaves factor k undetermined (counted over the templates, every position alike)."""

    def __init__(self, sprites: Sprites) -> None:
        self.num_values = list(FACTORS_NUM_VALUES)
        top, left, keys = _windows(sprites.templates.astype(bool))
        self._table: dict[bytes, int] = {}
        members: list[list[int]] = []
        for t, key in enumerate(keys):
            group = self._table.setdefault(key.tobytes(), len(members))
            if group == len(members):
                members.append([])
            members[group].append(t)
        ids = np.arange(len(keys))
        # per group: its templates' (shape, scale, orientation) and bounding-box corners within the template
        self._groups = [(np.stack(np.unravel_index(ids[m], FACTORS_NUM_VALUES[:3]), axis=1), top[m], left[m])
                        for m in members]
        centre = np.array([[*np.unravel_index(t, FACTORS_NUM_VALUES[:3]), 16, 16] for t in ids])
        self.undetermined = self.resolve(sprites.render(centre))[1].mean(0)

    @property
    def categorical(self) -> np.ndarray:
        return np.ones(len(self.num_values), dtype=bool)

    def __call__(self, images) -> np.ndarray:
        """Codes (n, 5) as floats for images (n, 64, 64) or (n, 1, 64, 64), boolean or in [0, 1]."""
        return self.resolve(images)[0].astype(np.float64)

    def resolve(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Codes (n, 5) and whether each factor is undetermined, i.e. consistent with several values (n, 5)."""
        images = np.asarray(images)
        if images.ndim == 4:
            images = images[:, 0]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected sprite images (n, 64, 64), got shape {images.shape}")
        images = images if images.dtype == bool else images >= 0.5
        top, left, keys = _windows(images)
        packed = keys.tobytes()
        width = keys.shape[1]
        group = np.array([self._table.get(packed[i * width : (i + 1) * width], -1) for i in range(len(keys))])
        if (group < 0).any():
            raise ValueError(f"image {int(np.argmax(group < 0))} is not an image of the sprites grid")
        codes = np.zeros((len(images), len(FACTOR_NAMES)), dtype=np.int64)
        undetermined = np.zeros(codes.shape, dtype=bool)
        for g in np.unique(group):
            rows = np.nonzero(group == g)[0]
            factors, r0, c0 = self._groups[g]
            pos_x = left[rows, None] - c0[None, :]  # the template's corner sits at the image's corner
            pos_y = top[rows, None] - r0[None, :]
            valid = (pos_x >= 0) & (pos_x < 32) & (pos_y >= 0) & (pos_y < 32)
            values = [np.broadcast_to(factors[:, k], pos_x.shape) for k in range(3)] + [pos_x, pos_y]
            for k, value in enumerate(values):
                codes[rows, k] = np.where(valid, value, np.iinfo(np.int64).max).min(1)
                undetermined[rows, k] = np.where(valid, value, -1).max(1) != codes[rows, k]
        return codes, undetermined
