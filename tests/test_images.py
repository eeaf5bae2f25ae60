"""Image corpora: digits, and users' MNIST (idx, gzipped idx, npz), Frey faces (.mat) and PNG folders, read from small
files the tests write; malformed files fail with a DataError naming the file; batches the trainer's loader makes."""

import gzip
import struct

import numpy as np
import pytest

from textvae.config import Config, DataConfig, ImageDataConfig
from textvae.data.pipeline import make_loader, prepare_data
from textvae.errors import ConfigError, DataError


def write_idx(path, array, gz=False):
    raw = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def pixels(n, h=28, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def config(corpus, path=None, **images):
    return DataConfig(corpus=corpus, data_dir=None if path is None else str(path),
                      images=ImageDataConfig(**{"valid_size": 3, "test_size": 3, **images}))


def first_batch(prepared, split="train", batch_size=4):
    loader = make_loader(prepared.datasets[split], prepared.tokenizer, batch_size, shuffle=split == "train")
    return next(iter(loader))["images"]


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    train, test = pixels(20), pixels(6, seed=1)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", train, gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test, gz)
    data = prepare_data(config("mnist", tmp_path))
    assert [len(data.datasets[s]) for s in ("train", "valid", "test")] == [17, 3, 6]
    assert data.corpus.image_shape == (1, 28, 28)
    got = data.datasets["test"].images()
    assert np.allclose(got.numpy()[:, 0], test / 255.0)  # the test file is the test split, in order, in [0, 1]
    batch = first_batch(data)
    assert batch.shape == (4, 1, 28, 28) and batch.min() >= 0 and batch.max() <= 1


def test_mnist_npz_and_binarize(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=pixels(20), x_test=pixels(5), y_train=np.zeros(20), y_test=np.zeros(5))
    data = prepare_data(config("mnist", tmp_path / "mnist.npz", binarize=True))
    values = data.datasets["train"].images().unique().tolist()
    assert values == [0.0, 1.0] and len(data.datasets["test"]) == 5
    assert len(prepare_data(config("mnist", tmp_path)).datasets["test"]) == 5  # the folder holding it


def test_malformed_mnist_files_are_named(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    write_idx(tmp_path / "t10k-images-idx3-ubyte", pixels(4))
    bad.write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\0" * 100)  # cut short
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: idx header says 10 x 28 x 28 = 7,840 bytes"):
        prepare_data(config("mnist", tmp_path))
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: not an idx file"):
        prepare_data(config("mnist", tmp_path))
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot read"):
        prepare_data(config("mnist", gz))
    npz = tmp_path / "other.npz"
    np.savez(npz, images=pixels(3))
    with pytest.raises(DataError, match="other.npz has no array 'x_train'"):
        prepare_data(config("mnist", npz))
    with pytest.raises(DataError, match="needs data.data_dir"):
        prepare_data(config("mnist"))


def test_frey_faces_mat(tmp_path):
    import scipy.io

    faces = pixels(30, 28, 20)
    scipy.io.savemat(tmp_path / "frey_rawface.mat", {"ff": faces.reshape(30, -1).T})
    data = prepare_data(config("frey_faces", tmp_path))
    assert data.corpus.image_shape == (1, 28, 20)
    everything = np.concatenate([data.datasets[s].images().numpy() for s in ("train", "valid", "test")])
    assert sorted(map(bytes, (everything[:, 0] * 255).round().astype(np.uint8))) == sorted(map(bytes, faces))
    scipy.io.savemat(tmp_path / "wrong.mat", {"faces": faces.reshape(30, -1).T})
    with pytest.raises(DataError, match="wrong.mat has no array 'ff'"):
        prepare_data(config("frey_faces", tmp_path / "wrong.mat"))
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 but not really")
    with pytest.raises(DataError, match="broken.mat: not a readable MATLAB file"):
        prepare_data(config("frey_faces", tmp_path / "broken.mat"))


def write_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def test_png_folder(tmp_path):
    images = pixels(12, 16, 12)
    write_pngs(tmp_path / "pngs", images)
    data = prepare_data(config("image_folder", tmp_path / "pngs"))
    assert data.corpus.image_shape == (1, 16, 12)
    assert sum(len(data.datasets[s]) for s in ("train", "valid", "test")) == 12
    assert first_batch(data, batch_size=3).shape == (3, 1, 16, 12)
    # split folders are kept; colour files stay colour when asked
    write_pngs(tmp_path / "split" / "train", np.repeat(images[:8, :, :, None], 3, axis=-1))
    write_pngs(tmp_path / "split" / "test", np.repeat(images[8:, :, :, None], 3, axis=-1))
    split = prepare_data(config("image_folder", tmp_path / "split", grayscale=False))
    assert split.corpus.image_shape == (3, 16, 12) and len(split.datasets["test"]) == 4
    assert len(split.datasets["train"]) == 5 and len(split.datasets["valid"]) == 3


def test_png_folder_problems_are_named(tmp_path):
    write_pngs(tmp_path / "mixed", pixels(5, 16, 12))
    write_pngs(tmp_path / "mixed" / "more", pixels(1, 10, 10))
    with pytest.raises(DataError, match=r"more/000.png: image is \(10, 10\)"):
        prepare_data(config("image_folder", tmp_path / "mixed"))
    write_pngs(tmp_path / "broken", pixels(5, 16, 12))
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="bad.png: not a readable image"):
        prepare_data(config("image_folder", tmp_path / "broken"))


def test_digits_and_model_shape():
    data = prepare_data(DataConfig(corpus="digits"))
    sizes = [len(data.datasets[s]) for s in ("train", "valid", "test")]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 179
    assert data.datasets["train"].images().max() == 1.0
    model = data.model_config(Config()).model.image
    assert (model.channels, model.height, model.width) == (1, 8, 8)
    wrong = Config()
    wrong.model.image.height = 64
    with pytest.raises(ConfigError, match="model.image.height is 64, but digits's images have height 8"):
        data.model_config(wrong)


def test_sprites_corpus_renders_batches():
    data = prepare_data(DataConfig(corpus="sprites", images=ImageDataConfig(valid_size=100, test_size=100)))
    assert len(data.datasets["train"]) == 737_280 - 200
    batch = first_batch(data, batch_size=8)
    assert batch.shape == (8, 1, 64, 64) and set(batch.unique().tolist()) == {0.0, 1.0}
    again = first_batch(data, batch_size=8)  # a seeded sampler: the same first batch
    assert (batch == again).all()
    with pytest.raises(DataError, match="nothing would be left"):
        prepare_data(config("digits", valid_size=1000, test_size=1000))
