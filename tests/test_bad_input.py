"""Bad input gets one clear error that names the problem: out-of-range settings, unusable data files, lengths
that leave nothing to train on, and API arguments (latents, counts). None may hang or end in a traceback."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from textvae import cli
from textvae.config import ConfigError, DataConfig, ModelConfig, TrainConfig, load_config
from textvae.data.batching import derive_max_length
from textvae.data.corpora import DataError, load_corpus
from textvae.data.pipeline import prepare_data
from textvae.errors import InputError, TextVAEError

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- settings out of range


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_steps=-5", "train.max_steps: -5 is out of range; it must be at least 0"),
        ("model.decoder.word_dropout=1.5", "model.decoder.word_dropout: 1.5 is out of range; it must be in [0, 1]"),
        ("model.objective.beta=-1", "model.objective.beta: -1.0 is out of range; it must be at least 0"),
        ("train.grad_clip=-1", "train.grad_clip: -1.0 is out of range; it must be at least 0"),
        ("train.warmup_steps=-10", "train.warmup_steps: -10 is out of range; it must be at least 0"),
        ("train.learning_rate=0", "train.learning_rate: 0.0 is out of range; it must be above 0"),
        ("train.learning_rate=.nan", "train.learning_rate: nan is not a finite number; it must be above 0"),
        ("data.batch_size=0", "data.batch_size: 0 is out of range; it must be at least 1"),
        ("train.log_every=0", "train.log_every: 0 is out of range; it must be at least 1"),
        ("model.latent.size=0", "model.latent.size: 0 is out of range; it must be at least 1"),
        ("model.encoder.dropout=1", "model.encoder.dropout: 1.0 is out of range; it must be in [0, 1)"),
        ("model.latent.category_sizes=[3,1]", "model.latent.category_sizes[1]: 1 is out of range; it must be at least 2"),
        ("model.latent.temperature=0", "model.latent.temperature: 0.0 is out of range; it must be above 0"),
        ("model.objective.kl_ramp_ratio=0", "model.objective.kl_ramp_ratio: 0.0 is out of range; it must be in (0, 1]"),
        ("model.max_length=0", "model.max_length: 0 is out of range; it must be at least 1"),
        ("seed=-1", "seed: -1 is out of range; it must be in [0, 4.29497e+09]"),
    ],
)
def test_settings_out_of_range_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == message


def test_configs_built_in_python_are_checked_too():
    with pytest.raises(ConfigError, match=r"^train.max_steps: -1 is out of range"):
        TrainConfig(max_steps=-1)
    with pytest.raises(ConfigError, match=r"^model.overlong: 'cut' is not one of truncate, drop, error"):
        ModelConfig(overlong="cut")


def test_moved_length_keys_say_where_they_went():
    with pytest.raises(ConfigError, match=r"'data.max_length' is now model.max_length"):
        load_config(None, ["data.max_length=40"])


def test_an_old_run_config_with_data_lengths_still_loads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: {max_length: 32}\ndata: {max_length: 20, overlong: drop}\n")
    with pytest.warns(UserWarning, match="data.overlong='drop' is ignored"):
        config = load_config(path)
    assert config.model.max_length == 20 and config.model.overlong == "truncate"


def test_the_cli_prints_one_error_line_with_exit_status_2(capsys):
    assert cli.main(["train", "train.max_steps=-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: train.max_steps: -5 is out of range; it must be at least 0"]


# ---------------------------------------------------------------- data files


def write_splits(folder: Path, train="a b c\nd e f\n", valid="a b\n", test="c d\n", suffix=".txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        if text is not None:
            (folder / f"{split}{suffix}").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def lines_config(folder: Path, **kw) -> DataConfig:
    return DataConfig(corpus="lines", data_dir=str(folder), **kw)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
@pytest.mark.parametrize("content", ["", "  \n\n\t\n"])
def test_an_empty_or_blank_split_file_is_named(tmp_path, split, content):
    folder = write_splits(tmp_path / "d", **{split: content})
    with pytest.raises(DataError, match=rf"the {split} split is empty: .*{split}.txt holds no non-blank sentence"):
        load_corpus(lines_config(folder))


def test_a_missing_split_file_is_named(tmp_path):
    folder = write_splits(tmp_path / "d", test=None)
    with pytest.raises(DataError, match="no test file in .*: looked for ptb.test.txt, test.txt"):
        load_corpus(lines_config(folder))


def test_non_utf8_names_file_line_and_column_and_replace_reads_it(tmp_path):
    folder = write_splits(tmp_path / "d", train=b"good line\nanother\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"train.txt, line 3, column 5: not valid UTF-8 \(byte 0xff\)"):
        load_corpus(lines_config(folder))
    corpus = load_corpus(lines_config(folder, encoding_errors="replace"))
    assert corpus.train == ["good line", "another", "bad \ufffd byte"]


def test_a_byte_order_mark_is_not_part_of_the_first_sentence(tmp_path):
    folder = write_splits(tmp_path / "d", train="\ufefffirst line\nsecond\n".encode("utf-8"))
    assert load_corpus(lines_config(folder)).train == ["first line", "second"]


def test_non_utf8_in_local_csv_files_read_with_datasets(tmp_path):
    folder = write_splits(tmp_path / "d", train=b"text\nfine\nna\xefve\n", valid="text\nok\n", test="text\nok\n",
                          suffix=".csv")
    with pytest.raises(DataError, match=r"train.csv, line 3, column 3: not valid UTF-8"):
        load_corpus(DataConfig(corpus="hf", data_dir=str(folder)))


def test_everything_dropped_by_length_is_an_error_not_an_empty_loader(tmp_path):
    folder = write_splits(tmp_path / "d")
    with pytest.raises(DataError, match=r"no train example is left after length handling \(0 of 2 sentences kept"):
        prepare_data(lines_config(folder), max_length=2, overlong="drop")


def test_training_on_an_empty_file_ends_at_once_with_one_error_line(tmp_path):
    folder = write_splits(tmp_path / "d", train="\n\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_text_vae.py"), "--data-dir", str(folder), "--output-dir",
         str(tmp_path / "run"), "--max-steps", "3", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: the train split is empty")
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- one length setting


def test_max_length_defaults_to_the_99_9th_percentile_of_training_lengths():
    assert derive_max_length([5] * 999 + [100]) == 5
    assert derive_max_length(list(range(1, 101)) * 100) == 100
    assert derive_max_length([]) == 1


def test_long_documents_keep_their_length_by_default(tmp_path):
    docs = "\n".join(" ".join(f"w{j}" for j in range(40 + i % 30)) for i in range(200))
    folder = write_splits(tmp_path / "d", train=docs, valid=docs, test=docs)
    data = prepare_data(lines_config(folder))
    assert data.max_length == 69  # the longest document: nothing of 200 is more than 0.1% of them
    assert data.reports["train"].kept == 200 and data.reports["train"].truncated == 0
    assert "99.9th percentile of 200 training sentences" in data.length_note
    config = load_config(None).model
    assert config.max_length is None


def test_the_api_applies_the_training_policy_and_warns_once_per_call_with_the_callers_indices(tiny_model):
    long = " ".join(["the cat sat on the mat ."] * 4)  # 28 tokens; the tiny model's max_length is 16
    sentences = ["the cat sat ."] * 300
    sentences[270] = long
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codes = tiny_model.encode(sentences)
    messages = [str(w.message) for w in caught]
    assert messages == [
        "sentences given: 300 of 300 sentences kept; 1 truncated to max_length=16 (first: sentence 270)"
    ]
    assert codes.shape == (300, 4)
    tiny_model.config.overlong = "drop"
    with pytest.raises(InputError, match="sentence 270 has 28 tokens, more than max_length=16"):
        tiny_model.encode(sentences)


# ---------------------------------------------------------------- the API's arguments


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_decode_refuses_non_finite_latents(tiny_model, bad):
    z = torch.zeros(3, 4)
    z[1, 2] = bad
    with pytest.raises(InputError, match=r"z has NaN or infinite values in 1 of 3 rows \(first: row 1\)"):
        tiny_model.decode(z)


def test_decode_takes_numpy_integers_and_a_single_code(tiny_model):
    tiny_model.eval()
    reference = tiny_model.decode(torch.zeros(2, 4))
    assert tiny_model.decode(np.zeros((2, 4))) == reference  # float64 numpy
    assert tiny_model.decode(torch.zeros(2, 4, dtype=torch.long)) == reference  # integers
    assert tiny_model.decode(torch.zeros(4)) == reference[:1]  # one (D,) code


@pytest.mark.parametrize(
    "z, message",
    [
        (torch.zeros(2, 5), r"z has shape \(2, 5\); this model's latent codes have shape \(N, 4\)"),
        (torch.zeros(0, 4), "z has no rows"),
        (torch.zeros(2, 4, dtype=torch.complex64), "z is complex"),
        ("0 0 0 0", "z must be a tensor or array of shape"),
    ],
)
def test_decode_names_what_is_wrong_with_z(tiny_model, z, message):
    with pytest.raises(InputError, match=message):
        tiny_model.decode(z)


@pytest.mark.parametrize("n, message", [(2.5, "n must be an integer, got 2.5"), (True, "n must be an integer"),
                                        ("3", "n must be an integer"), (0, "n must be at least 1, got 0")])
def test_sample_counts_must_be_integers(tiny_model, n, message):
    with pytest.raises(InputError, match=message):
        tiny_model.sample(n)


def test_counts_accept_numpy_integers(tiny_model):
    assert len(tiny_model.sample(np.int64(2), seed=0)) == 2
    assert len(tiny_model.interpolate("the cat sat .", "a dog ran .", steps=np.int32(3))) == 3
    with pytest.raises(InputError, match="steps must be an integer, got 2.0"):
        tiny_model.interpolate("the cat sat .", "a dog ran .", steps=2.0)


def test_every_library_error_is_one_class_the_cli_catches():
    for error in (ConfigError, DataError, InputError):
        assert issubclass(error, TextVAEError) and issubclass(error, ValueError)


def test_a_command_shows_each_length_warning_once_as_one_line(capsys):
    from textvae.cli.common import command_warnings
    from textvae.errors import LengthWarning

    def stage_one():
        warnings.warn("sentences given: 9 of 9 sentences kept; 1 truncated", LengthWarning)

    def stage_two():
        warnings.warn("sentences given: 9 of 9 sentences kept; 1 truncated", LengthWarning)
        warnings.warn("sentences given: 3 of 3 sentences kept; 1 truncated", LengthWarning)

    with command_warnings():
        stage_one()
        stage_two()
        stage_one()
    assert capsys.readouterr().err.splitlines() == [
        "warning: sentences given: 9 of 9 sentences kept; 1 truncated",
        "warning: sentences given: 3 of 3 sentences kept; 1 truncated",
    ]
