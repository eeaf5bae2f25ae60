"""Image corpora for the image VAEs (reference baselines), all read offline: the sprites grid (``data.sprites``),
scikit-learn's 8 x 8 digits, and users' files from ``data.data_dir``: MNIST (idx files, plain or gzipped, or an
``.npz`` with ``x_train``/``x_test``), Frey faces (``frey_rawface.mat``, via scipy) and a folder of PNG files (via
``datasets``' imagefolder). Every one becomes an ``ImageCorpus``: one ``ImageDataset`` per split whose batches are
``{"images": float32 (B, C, H, W) in [0, 1]}``, so the trainer's loaders and samplers serve images unchanged.

A file that cannot be read is a ``DataError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..registry import CORPORA
from .base import SPLITS
from .sprites import Sprites

if TYPE_CHECKING:
    from ..config import Config, DataConfig, ImageDataConfig

MAX_HELD_OUT = 5000


# ---------------------------------------------------------------- datasets and batches


class ImageDataset(Dataset):
    """``size`` images that ``fetch(indices)`` returns as float32 (B, C, H, W) in [0, 1]; items are indices, and the
    collator fetches a whole batch at once (the sprites grid renders it in one vectorised call)."""

    def __init__(self, fetch: Callable[[np.ndarray], np.ndarray], size: int, binarize: bool = False) -> None:
        self.fetch, self.size, self.binarize = fetch, size, binarize

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index

    def lengths(self) -> np.ndarray:
        """Every image has the same size: the trainer's length-bucketed sampler then just shuffles."""
        return np.ones(self.size, dtype=np.int64)

    def collator(self, tokenizer=None) -> "ImageCollator":
        return ImageCollator(self)

    def images(self, indices=None) -> torch.Tensor:
        """The images at ``indices`` (all by default) as one float tensor (N, C, H, W)."""
        indices = np.arange(self.size) if indices is None else np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(np.ascontiguousarray(self.fetch(indices), dtype=np.float32))
        return (images >= 0.5).float() if self.binarize else images


@dataclass
class ImageCollator:
    dataset: ImageDataset

    def __call__(self, indices) -> dict[str, torch.Tensor]:
        return {"images": self.dataset.images(indices)}


def array_fetch(array: np.ndarray, divisor: float) -> Callable[[np.ndarray], np.ndarray]:
    """Fetch rows of an (N, C, H, W) array of raw pixels, divided by ``divisor`` (255 for bytes) into [0, 1]."""
    return lambda indices: array[indices].astype(np.float32) / divisor


@dataclass
class ImageCorpus:
    """Images per split, all of one shape (C, H, W); ``ground_truth`` is the factor data where known (sprites)."""

    name: str
    datasets: dict[str, ImageDataset]
    image_shape: tuple[int, int, int]
    ground_truth: Optional[Sprites] = None
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> ImageDataset:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return self.datasets[name]


@dataclass
class PreparedImages:
    """An image corpus as the trainer takes it (``PreparedData``'s interface): datasets per split, no tokenizer."""

    corpus: ImageCorpus
    datasets: dict[str, ImageDataset]
    tokenizer: None = None
    reports: dict = field(default_factory=dict)

    def describe(self) -> str:
        sizes = ", ".join(f"{split} {len(self.datasets[split]):,}" for split in SPLITS)
        c, h, w = self.corpus.image_shape
        return f"data: {self.corpus.name} ({sizes} images of {c} x {h} x {w})"

    def model_config(self, config: "Config") -> "Config":
        """``config`` with ``model.image``'s shape set to the data's; a shape the config sets otherwise is an error."""
        image = config.model.image
        shape = dict(zip(("channels", "height", "width"), self.corpus.image_shape))
        for key, value in shape.items():
            if getattr(image, key) not in (None, value):
                raise ConfigError(f"model.image.{key} is {getattr(image, key)}, but {self.corpus.name}'s images have "
                                  f"{key} {value}; remove the setting to take it from the data")
        model = dataclasses.replace(config.model, image=dataclasses.replace(image, **shape))
        return dataclasses.replace(config, model=model)


def prepare_image_data(corpus: ImageCorpus) -> PreparedImages:
    return PreparedImages(corpus, corpus.datasets)


# ---------------------------------------------------------------- splits


def held_out_sizes(total: int, config: "ImageDataConfig", need_test: bool) -> tuple[int, int]:
    """(valid, test) images to hold out of ``total``: the configured sizes, or a tenth each (at most 5,000)."""
    default = max(1, min(MAX_HELD_OUT, total // 10))
    valid = config.valid_size or default
    test = (config.test_size or default) if need_test else 0
    if valid + test >= total:
        raise DataError(f"cannot hold out {valid} validation and {test} test images of {total}: nothing would be left "
                        "to train on; lower data.images.valid_size / test_size")
    return valid, test


def split_array(name: str, images: np.ndarray, divisor: float, config: "DataConfig",
                test: Optional[np.ndarray] = None, info: Optional[dict] = None) -> ImageCorpus:
    """An ``ImageCorpus`` of raw pixel arrays (N, C, H, W): validation (and test, unless the source has its own
    ``test`` images) held out at random with ``data.images.split_seed``."""
    ic = config.images
    valid_n, test_n = held_out_sizes(len(images), ic, need_test=test is None)
    order = np.random.default_rng(ic.split_seed).permutation(len(images))
    parts = {"valid": order[:valid_n], "test": order[valid_n : valid_n + test_n], "train": order[valid_n + test_n :]}
    datasets = {split: ImageDataset(array_fetch(images[np.sort(rows)], divisor), len(rows), ic.binarize)
                for split, rows in parts.items()}
    if test is not None:
        datasets["test"] = ImageDataset(array_fetch(test, divisor), len(test), ic.binarize)
    return ImageCorpus(name, datasets, tuple(images.shape[1:]), info=info or {})


def as_nchw(images: np.ndarray, source: "str | Path") -> np.ndarray:
    """(N, H, W) or (N, H, W, C) pixel arrays as (N, C, H, W); anything else is a DataError naming ``source``."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3, 4):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise DataError(f"{source}: expected images of shape (N, H, W) or (N, H, W, C), got {images.shape}")


def _require_path(config: "DataConfig", what: str) -> Path:
    if not config.data_dir:
        raise DataError(f"corpus {config.corpus!r} needs data.data_dir ({what})")
    path = Path(config.data_dir).expanduser()
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    return path


# ---------------------------------------------------------------- generated and bundled images


@CORPORA.register("sprites")
def load_sprites(config: "DataConfig") -> ImageCorpus:
    """The whole sprites grid (737,280 images, rendered batch by batch), validation and test held out at random."""
    sprites = Sprites()
    ic = config.images
    valid_n, test_n = held_out_sizes(len(sprites), ic, need_test=True)
    order = np.random.default_rng(ic.split_seed).permutation(len(sprites))
    parts = {"valid": order[:valid_n], "test": order[valid_n : valid_n + test_n], "train": np.sort(order[valid_n + test_n :])}

    def fetch_from(grid_rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return lambda indices: sprites.images(grid_rows[indices])[:, None]

    datasets = {split: ImageDataset(fetch_from(rows), len(rows), ic.binarize) for split, rows in parts.items()}
    return ImageCorpus("sprites", datasets, Sprites.image_shape, ground_truth=sprites,
                       info={"grid_rows": parts})


@CORPORA.register("digits")
def load_digits_corpus(config: "DataConfig") -> ImageCorpus:
    """scikit-learn's 1,797 real 8 x 8 handwritten digits (grey levels 0-16), bundled with the package."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[:, None]
    return split_array("digits", images, 16.0, config)


# ---------------------------------------------------------------- users' files


def read_idx(path: "str | Path") -> np.ndarray:
    """An idx file of unsigned bytes (MNIST's format; gzipped when its name ends in .gz) as an array."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise DataError(f"{path}: not an idx file (it must start with two zero bytes, a type byte and a dimension count)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: idx data type 0x{raw[2]:02x} is not unsigned bytes (0x08), which MNIST images are")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: idx header is cut short (it announces {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: idx header says {' x '.join(map(str, dims))} = {expected:,} bytes of pixels, "
                        f"the file holds {len(raw) - header:,}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
MNIST_NPZ_KEYS = {"train": "x_train", "test": "x_test"}


def _find_mnist(folder: Path, split: str) -> Path:
    stem = MNIST_FILES[split]
    for name in (stem, f"{stem}.gz", stem.replace("-idx3", ".idx3"), stem.replace("-idx3", ".idx3") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"no MNIST {split} images in {folder}: looked for {stem} and {stem}.gz (or an mnist.npz)")


def read_npz_images(path: Path, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, never unpickled; a missing key or unreadable file is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataError(f"{path} has no array {key!r} (it holds {', '.join(archive.files) or 'nothing'})")
            return archive[key]
    except (OSError, ValueError) as exc:  # not a zip, a truncated member, or a member that needs pickle
        raise DataError(f"{path}: cannot read {key!r}: {exc}") from None


@CORPORA.register("mnist")
def load_mnist(config: "DataConfig") -> ImageCorpus:
    """MNIST from ``data.data_dir``: a folder with the idx files (``train-images-idx3-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``) or an ``mnist.npz``, or the ``.npz`` file itself (``x_train``, ``x_test``).
    Validation images are held out of the training file; test is the test file."""
    path = _require_path(config, "a folder with MNIST's idx files, or an mnist.npz")
    if path.is_dir() and (path / "mnist.npz").is_file() and not any(path.glob("train-images*")):
        path = path / "mnist.npz"
    if path.is_file():
        arrays = {split: read_npz_images(path, key) for split, key in MNIST_NPZ_KEYS.items()}
    else:
        arrays = {split: read_idx(_find_mnist(path, split)) for split in MNIST_FILES}
    for split, array in arrays.items():
        if array.dtype != np.uint8:
            raise DataError(f"{path}: MNIST {split} images must be unsigned bytes (0-255), got {array.dtype}")
    train, test = (as_nchw(arrays[s], path) for s in ("train", "test"))
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{path}: training images are {train.shape[1:]}, test images {test.shape[1:]}")
    return split_array("mnist", train, 255.0, config, test=test, info={"path": str(path)})


@CORPORA.register("frey_faces")
def load_frey_faces(config: "DataConfig") -> ImageCorpus:
    """Frey faces: ``frey_rawface.mat`` (array ``ff``, 560 x 1,965 grey bytes, 28 x 20 images, one per column), the
    file or a folder holding it; read with ``scipy.io.loadmat``."""
    import scipy.io

    path = _require_path(config, "frey_rawface.mat or its folder")
    if path.is_dir():
        path = path / "frey_rawface.mat"
        if not path.is_file():
            raise DataError(f"no frey_rawface.mat in {path.parent}")
    try:
        contents = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, IndexError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        # scipy reports a short or foreign file as any of these (an IndexError for a header cut short)
        raise DataError(f"{path}: not a readable MATLAB file: {exc or type(exc).__name__}") from None
    if "ff" not in contents:
        names = ", ".join(k for k in contents if not k.startswith("__"))
        raise DataError(f"{path} has no array 'ff' (Frey faces' pixels; it holds {names or 'nothing'})")
    ff = np.asarray(contents["ff"])
    if ff.ndim != 2 or ff.shape[0] != 28 * 20:
        raise DataError(f"{path}: 'ff' must be 560 x N (28 x 20 pixels per column), got {ff.shape}")
    images = np.ascontiguousarray(ff.T.reshape(-1, 1, 28, 20))
    return split_array("frey_faces", images, 255.0 if ff.dtype == np.uint8 else 1.0, config, info={"path": str(path)})


def _decode_image(path: str, data: Optional[bytes], grayscale: bool) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            return np.asarray(image.convert("L" if grayscale else "RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image: {exc}") from None


HF_SPLITS = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}


@CORPORA.register("image_folder")
def load_image_folder(config: "DataConfig") -> ImageCorpus:
    """A folder of PNG (or JPEG) files read with ``datasets``' imagefolder builder (offline): ``train/``,
    ``validation/`` and ``test/`` subfolders where there are such, else held-out splits of all the files. Every
    image must have one size; grey unless ``data.images.grayscale`` is false."""
    import datasets

    folder = _require_path(config, "a folder of image files")
    if not folder.is_dir():
        raise DataError(f"image_folder: {folder} is not a folder")
    try:
        loaded = datasets.load_dataset("imagefolder", data_dir=str(folder))
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetGenerationError) as exc:
        raise DataError(f"image_folder: cannot read images in {folder}: {' '.join(str(exc).split())[:300]}") from None
    splits: dict[str, np.ndarray] = {}
    shape = None
    for hf_split, part in loaded.items():
        if hf_split not in HF_SPLITS:
            raise DataError(f"{folder}: split folder {hf_split!r} is not one of train, validation, test")
        part = part.cast_column("image", datasets.Image(decode=False))  # decode here, naming a file that fails
        arrays = []
        for item in part["image"]:
            array = _decode_image(item["path"], item.get("bytes"), config.images.grayscale)
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise DataError(f"{item['path']}: image is {array.shape[:2][::-1]} (width x height), the first one "
                                f"{shape[:2][::-1]}; every image must have one size")
            arrays.append(array)
        splits[HF_SPLITS[hf_split]] = as_nchw(np.stack(arrays), folder)
    if "train" not in splits:
        raise DataError(f"{folder}: split folders without a train/ folder")
    info = {"path": str(folder)}
    if "valid" not in splits:  # validation (and test, without a test/ folder) held out of train
        return split_array(folder.name, splits["train"], 255.0, config, test=splits.get("test"), info=info)
    if "test" not in splits:
        raise DataError(f"{folder}: a validation/ folder without a test/ folder")
    binarize = config.images.binarize
    datasets_ = {s: ImageDataset(array_fetch(a, 255.0), len(a), binarize) for s, a in splits.items()}
    return ImageCorpus(folder.name, datasets_, tuple(splits["train"].shape[1:]), info=info)
