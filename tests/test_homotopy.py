import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from textvae.data.synthetic import GRAMMAR
from textvae.cli.interpolate import main as interpolate_main
from textvae.evaluation.homotopy import (
    average_path_metrics,
    format_path,
    interpolation_points,
    path_metrics,
    prior_path,
    sentence_path,
    token_edit_distance,
)

from .conftest import SENTENCES

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_linear_and_spherical_points():
    za, zb = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 5.0, 0.0])
    line = interpolation_points(za, zb, 5, "linear")
    assert line.shape == (5, 3) and torch.equal(line[0], za) and torch.equal(line[-1], zb)
    assert torch.allclose(line[2], (za + zb) / 2)
    arc = interpolation_points(za, zb, 5, "spherical")
    assert torch.equal(arc[0], za) and torch.equal(arc[-1], zb)
    assert torch.allclose(arc.norm(dim=1), torch.full((5,), 5.0))  # equal-norm ends: the arc keeps the norm
    cos = torch.nn.functional.cosine_similarity(arc[:-1], arc[1:])
    assert torch.allclose(cos, cos[0].expand(4))  # equal angular steps
    parallel = interpolation_points(za, 2 * za, 3, "spherical")
    assert torch.allclose(parallel[1], 1.5 * za)  # falls back to the line
    with pytest.raises(ValueError, match="unknown interpolation method"):
        interpolation_points(za, zb, 3, "cubic")


def test_token_edit_distance_and_path_measures():
    assert token_edit_distance("the cat sat .", "the cat sat .") == 0
    assert token_edit_distance("the cat sat .", "the dog sat .") == 1
    assert token_edit_distance("the cat sat .", "the cat .") == 1
    assert token_edit_distance("a b c", "c b a") == 2
    assert token_edit_distance("", "a b") == 2
    path = [
        "the teacher buys the book .",
        "the teacher buys the book .",
        "the teacher buys the books .",
        "the teacher the books buys .",  # not grammatical
        "the teachers buy the books .",
    ]
    metrics = path_metrics(path, GRAMMAR.accepts)
    assert metrics["num_distinct"] == 4 and metrics["changes"] == 3
    assert metrics["mean_edit_distance"] == pytest.approx((0 + 1 + 2 + 3) / 4)
    assert metrics["grammatical_fraction"] == pytest.approx(4 / 5)


@pytest.mark.parametrize("method", ["linear", "spherical"])
@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_path_ends_decode_to_the_reconstructions_of_the_ends(sharp_model, method, strategy):
    a, b = SENTENCES[0], SENTENCES[3]
    path = sentence_path(sharp_model, a, b, steps=7, method=method, strategy=strategy)
    assert len(path.sentences) == 7 and path.z.shape == (7, 4)
    assert path.sentences[0] == sharp_model.reconstruct(a, strategy=strategy)[0]
    assert path.sentences[-1] == sharp_model.reconstruct(b, strategy=strategy)[0]
    assert torch.allclose(path.z[0], sharp_model.encode(a)[0], atol=1e-5)
    assert torch.allclose(path.z[-1], sharp_model.encode(b)[0], atol=1e-5)
    sentences = path.sentences
    assert path.metrics["num_distinct"] == len(set(sentences))
    assert path.metrics["changes"] == sum(x != y for x, y in zip(sentences, sentences[1:]))
    if strategy == "greedy":
        assert path.sentences[0] != path.sentences[-1]  # the test model tells the two ends apart


def test_prior_paths_and_averages(sharp_model):
    one, two = prior_path(sharp_model, steps=5, seed=3), prior_path(sharp_model, steps=5, seed=3)
    assert one.sentences == two.sentences and torch.equal(one.z, two.z)
    assert one.start is None and one.method == "spherical"
    a, b = SENTENCES[1], SENTENCES[4]
    average = average_path_metrics(sharp_model, [a, b], num_pairs=1, steps=6)
    single = sentence_path(sharp_model, a, b, steps=6).metrics  # either order: both measures are symmetric
    assert average["num_distinct"] == single["num_distinct"]
    assert average["mean_edit_distance"] == pytest.approx(single["mean_edit_distance"])


def test_format_path_is_a_table_with_the_inputs_and_measures(sharp_model):
    path = sentence_path(sharp_model, SENTENCES[0], SENTENCES[3], steps=4)
    table = format_path(path, grammar=lambda s: s.endswith("."))
    lines = table.splitlines()
    assert lines[0] == f"a: {SENTENCES[0]}" and lines[1] == f"b: {SENTENCES[3]}"
    assert lines[3].split() == ["step", "t", "gram", "sentence"]
    assert lines[5].startswith("   0   0.00  ") and path.sentences[0] in lines[5]
    assert lines[8].startswith("   3   1.00  ")
    assert "linear interpolation, 4 steps" in lines[-1] and "grammatical" in lines[-1]


def test_interpolate_command_and_script_print_the_path(sharp_model, tmp_path, capsys, monkeypatch):
    folder = sharp_model.save_pretrained(tmp_path / "run" / "best")
    a, b = SENTENCES[0], SENTENCES[3]
    assert interpolate_main([str(folder), a, b, "--steps", "5"]) == 0
    out = capsys.readouterr().out
    expected = sentence_path(sharp_model, a, b, steps=5).sentences
    assert all(s in out for s in expected) and "5 steps" in out and "gram" not in out  # not the corpus grammar
    assert interpolate_main([str(tmp_path / "run"), a, b, "--steps", "3", "--method", "spherical", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sentences"] == sentence_path(sharp_model, a, b, 3, "spherical").sentences
    assert interpolate_main([str(folder), "--prior", "--steps", "3", "--strategy", "sample", "--top-k", "3"]) == 0
    assert interpolate_main([str(tmp_path / "nope"), a, b]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert interpolate_main([str(folder), a]) == 2
    monkeypatch.setattr(sys, "argv", ["interpolate.py", str(folder), a, b, "--steps", "3"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPTS / "interpolate.py"), run_name="__main__")
    assert exit_info.value.code == 0 and "3 steps" in capsys.readouterr().out
