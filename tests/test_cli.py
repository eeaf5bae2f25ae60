import json

import numpy as np

from textvae.cli import main

from .conftest import SENTENCES


def test_sample_and_encode_commands(tmp_path, tiny_model, capsys, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    assert main(["sample", str(folder), "-n", "3", "--strategy", "sample", "--seed", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 3  # a sentence per line (an untrained model may give empty ones)

    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES[:3]) + "\n\n")
    assert main(["encode", str(folder), "--input", str(source)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["sentence"] for line in lines] == SENTENCES[:3] and len(lines[0]["z"]) == 4
    assert main(["encode", str(folder), "--input", str(source), "--output", str(tmp_path / "z.npy")]) == 0
    codes = np.load(tmp_path / "z.npy")
    assert codes.shape == (3, 4)
    assert np.allclose(codes, tiny_model.encode(SENTENCES[:3]).numpy(), atol=1e-5)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err
    assert main([]) == 2


def test_interpolate_command_prints_the_path(tmp_path, tiny_model, capsys):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    assert main(["interpolate", str(folder), SENTENCES[0], SENTENCES[1], "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 steps" in out or "distinct" in out
