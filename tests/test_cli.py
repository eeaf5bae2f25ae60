import argparse
import io
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from textvae.cli import main
from textvae.cli.encode import encode_parser
from textvae.cli.evaluate import evaluation_parser
from textvae.cli.interpolate import interpolation_parser
from textvae.cli.sample import sample_parser

from .conftest import SENTENCES
from .test_decoding import constant_logits_model


def test_sample_and_encode_commands(tmp_path, tiny_model, capsys, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    assert main(["sample", str(folder), "-n", "3", "--strategy", "sample", "--seed", "1"]) == 0
    expected = tiny_model.sample(3, seed=1, strategy="sample")  # a sentence per line (an untrained model may give empty ones)
    assert capsys.readouterr().out == "".join(f"{sentence}\n" for sentence in expected)

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
    from textvae.evaluation.homotopy import sentence_path

    path = sentence_path(tiny_model, SENTENCES[0], SENTENCES[1], 4, "linear")
    assert main(["interpolate", str(folder), SENTENCES[0], SENTENCES[1], "--steps", "4", "--method", "linear"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"a: {SENTENCES[0]}", f"b: {SENTENCES[1]}"]
    assert all(any(sentence in line for line in lines[2:]) for sentence in path.sentences)
    assert main(["interpolate", str(folder), SENTENCES[0], SENTENCES[1], "--steps", "4", "--method", "linear",
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sentences"] == path.sentences and len(shown["t"]) == 4 and shown["method"] == "linear"
    assert shown["metrics"]["num_distinct"] == len(set(path.sentences))


# ---------------------------------------------------------------- one loader, shared flags, one-line errors


@pytest.fixture
def looping_folder(tmp_path, tokenizer):
    """A saved model whose greedy decodes repeat 'cat' to max_length (see test_decoding)."""
    model = constant_logits_model(tokenizer, {"cat": 3.0, "dog": 2.5, "bird": 2.0, None: 1.8})
    return model.save_pretrained(tmp_path / "run" / "best")


def test_every_command_takes_a_run_folder_or_its_model_folder(tmp_path, tiny_model, capsys):
    folder = tiny_model.save_pretrained(tmp_path / "run" / "final")
    run = folder.parent
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES[:2]) + "\n")
    for command in (["sample", "-n", "3"], ["encode", "--input", str(source)],
                    ["interpolate", SENTENCES[0], SENTENCES[1], "--steps", "3"]):
        assert main([command[0], str(folder), *command[1:]]) == 0
        from_model = capsys.readouterr()
        assert main([command[0], str(run), *command[1:]]) == 0
        from_run = capsys.readouterr()
        assert from_run.out == from_model.out and from_model.out.strip()
        assert f"using the model in {folder}" in from_run.err
    (tmp_path / "empty").mkdir()
    assert main(["encode", str(tmp_path / "empty")]) == 2
    assert "no config.json in it nor in a best/final/last subfolder" in capsys.readouterr().err


def test_sample_takes_the_shared_decoding_flags(looping_folder, capsys):
    def sample(*flags):
        assert main(["sample", str(looping_folder.parent), "-n", "2", *flags]) == 0
        return capsys.readouterr().out.splitlines()

    assert sample() == [" ".join(["cat"] * 16)] * 2  # the model's max_length
    assert sample("--max-length", "3") == ["cat cat cat"] * 2
    assert sample("--no-repeat-ngram-size", "1") == ["cat dog bird"] * 2
    assert sample("--repetition-penalty", "2") == ["cat dog bird"] * 2
    assert sample("--no-repeat-ngram-size", "2") == ["cat cat dog cat bird cat"] * 2
    assert sample("--strategy", "sample", "--top-k", "1", "--repetition-penalty", "2") == ["cat dog bird"] * 2
    assert sample("--strategy", "beam", "--beam-size", "1", "--length-penalty", "0",
                  "--no-repeat-ngram-size", "2") == ["cat cat dog cat bird cat"] * 2


@pytest.mark.parametrize("argv,message", [
    (["interpolate", "{m}", "a", "b", "--steps", "0"], "argument --steps: must be at least 2, got 0"),
    (["sample", "{m}", "--temperature", "-1"], "argument --temperature: must be above 0, got -1"),
    (["sample", "{m}", "--num", "0"], "argument -n/--num: must be at least 1, got 0"),
    (["sample", "{m}", "-n", "two"], "argument -n/--num: expected an integer, got 'two'"),
    (["sample", "{m}", "--top-p", "1.5"], "argument --top-p: must be in (0, 1], got 1.5"),
    (["sample", "{m}", "--repetition-penalty", "0.5"], "argument --repetition-penalty: must be at least 1, got 0.5"),
    (["sample", "{m}", "--no-repeat-ngram-size", "-1"], "argument --no-repeat-ngram-size: must be at least 0"),
    (["sample", "{m}", "--top-k", "5"], "--top-k apply to --strategy sample, not greedy"),
    (["sample", "{m}", "--strategy", "sample", "--beam-size", "3"], "--beam-size apply to --strategy beam, not sample"),
    (["evaluate", "{m}", "--num-samples", "-1"], "argument --num-samples: must be at least 0, got -1"),
    (["evaluate", "{m}", "--strategy", "nucleus"], "argument --strategy: invalid choice: 'nucleus'"),
    (["interpolate", "{m}", "--prior", "--max-length", "0"], "argument --max-length: must be at least 1, got 0"),
    (["encode", "{m}", "--input", "{m}/missing.txt"], "input file not found"),
    (["sample"], "the following arguments are required: model"),
])
def test_a_bad_flag_value_is_one_error_line(looping_folder, capsys, argv, message):
    assert main([arg.format(m=looping_folder) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if not line.startswith("using the model in")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err


PARSERS = {"sample": sample_parser, "encode": encode_parser, "interpolate": interpolation_parser,
           "evaluate": evaluation_parser}


def test_every_option_has_help_and_the_help_shows_defaults():
    decoding = {}
    for name, build in PARSERS.items():
        parser = build()
        assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
        for action in parser._actions:
            assert action.help and len(action.help) > 8, (name, action.option_strings or action.dest)
        text = parser.format_help()
        assert "--device DEVICE" in text and "run folder" in text
        group = next((g for g in parser._action_groups if g.title == "decoding"), None)
        if group is not None:
            decoding[name] = sorted(opt for action in group._group_actions for opt in action.option_strings)
            body = " ".join(text.split("\ndecoding:")[1].split())
            assert "--beam-size BEAM_SIZE beam: hypotheses kept per sentence (default: 4)" in body
    # one definition of the decoding flags, on every command that decodes
    assert decoding["sample"] == decoding["interpolate"] == decoding["evaluate"]
    assert {"--strategy", "--temperature", "--top-k", "--top-p", "--beam-size", "--length-penalty",
            "--repetition-penalty", "--no-repeat-ngram-size"} <= set(decoding["sample"])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_evaluate_shows_a_progress_bar_for_every_long_stage_on_a_terminal_only(tiny_model, tmp_path, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "run" / "best")
    data = tmp_path / "corpus"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("\n".join(SENTENCES) + "\n")
    stages = ["ELBO", "IW-NLL (K=2)", "encoding", "mutual information", "reconstructions", "prior samples",
              "linear interpolations", "spherical interpolations"]

    def stderr_of(stream, *flags):
        monkeypatch.setattr(sys, "stderr", stream)
        assert main(["evaluate", str(folder), "--data-dir", str(data), "--num-samples", "2", "--prior-samples", "4",
                     "--interpolation-pairs", "1", "--output-dir", str(tmp_path / "eval"), *flags]) == 0
        monkeypatch.undo()
        return stream.getvalue()

    shown = stderr_of(Terminal())
    assert all(f"{stage}:" in shown for stage in stages), shown
    piped = stderr_of(io.StringIO())
    assert not any(f"{stage}:" in piped for stage in stages) and "evaluating" in piped
    assert stderr_of(Terminal(), "--no-progress") == ""


def test_the_readme_commands_of_evaluate_and_interpolate_run(tiny_model, tmp_path, monkeypatch, capsys):
    """The README's `textvae` lines, on a tiny run folder named as there, with flags that keep them fast."""
    from textvae.config import Config, DataConfig, save_config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Evaluate and interpolate")[1].split("```bash\n")[1].split("```")[0]
    lines = [line.split("#")[0].strip() for line in section.splitlines() if "textvae " in line]
    assert len(lines) == 5
    monkeypatch.chdir(tmp_path)
    tiny_model.save_pretrained(tmp_path / "runs" / "default" / "best")
    save_config(Config(data=DataConfig(synthetic_size=100)), tmp_path / "runs" / "default" / "config.yaml")
    fast = {"evaluate": ["--num-samples", "2", "--prior-samples", "4", "--interpolation-pairs", "1",
                         "--max-sentences", "6", "--no-progress"]}
    ran = 0
    for line in lines:
        stdin, _, command = line.rpartition("| ")
        argv = shlex.split(command)[1:]
        if "--data-dir" in argv:  # PTB is not here
            continue
        if stdin:
            monkeypatch.setattr(sys, "stdin", io.StringIO(shlex.split(stdin)[1] + "\n"))
        assert main(argv + fast.get(argv[0], [])) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.strip()
        ran += 1
    assert ran == 4 and (tmp_path / "runs" / "default" / "eval-best-test" / "metrics.json").is_file()


def test_run_script_turns_library_errors_into_one_line(capsys):
    """Scripts and examples run their main() through ``run_script``: a library error is one ``error:`` line and exit
    status 2; anything else (a bug) still raises with its traceback; a main returning None exits 0."""
    from textvae.cli import run_script
    from textvae.errors import DataError

    def missing():
        raise DataError("data folder not found: /nowhere")

    assert run_script(missing) == 2
    assert capsys.readouterr().err == "error: data folder not found: /nowhere\n"
    assert run_script(lambda: None) == 0 and run_script(lambda: 3) == 3

    def bug():
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_script(bug)
