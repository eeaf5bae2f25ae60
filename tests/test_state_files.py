"""Resume state as safetensors with a JSON structure: round trips keep values and types, an optimizer and the
generators continue exactly, and unreadable or foreign files are errors that name them."""

import json
import math
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from textvae.errors import CheckpointError
from textvae.training.state_files import (
    TREE_KEY,
    load_state_file,
    random_states,
    restore_random_states,
    save_state_file,
)


def test_round_trip_keeps_values_and_types(tmp_path):
    shared = torch.arange(6.0)
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": shared.view(2, 3)}, 7: {"momentum_buffer": None}},
        "param_groups": [{"lr": 0.5, "betas": (0.9, 0.999), "params": [0, 7], "nesterov": False, "name": "all"}],
        "bytes": torch.get_rng_state(),
        "empty": torch.zeros(0, 4),
        "same_storage": shared,  # a second view of one storage: safetensors alone refuses that
        "array": np.arange(5, dtype=np.uint32),
        "scalar": np.float64(2.5),
        "floats": [math.inf, -0.0, 1e-300, math.nan],
        "nested": ((1, "a"), [None, True, 0]),
        "zero_d": np.array(7, dtype=np.int16),
        "big_endian": np.arange(3, dtype=">f8"),
    }
    path = tmp_path / "state.safetensors"
    save_state_file(path, state)
    back = load_state_file(path)
    assert set(back) == set(state) and set(back["state"]) == {0, 7}  # int keys stay ints
    assert back["state"][0]["step"].shape == () and float(back["state"][0]["step"]) == 3.0
    assert torch.equal(back["state"][0]["exp_avg"], shared.view(2, 3)) and back["state"][7] == {"momentum_buffer": None}
    assert back["param_groups"] == state["param_groups"] and isinstance(back["param_groups"][0]["betas"], tuple)
    assert back["bytes"].dtype == torch.uint8 and torch.equal(back["bytes"], state["bytes"])
    assert back["empty"].shape == (0, 4) and torch.equal(back["same_storage"], shared)
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3, 4]
    assert type(back["scalar"]) is np.float64 and back["scalar"] == 2.5
    assert back["floats"][0] == math.inf and math.copysign(1, back["floats"][1]) == -1 and back["floats"][2] == 1e-300
    assert math.isnan(back["floats"][3])
    assert back["nested"] == ((1, "a"), [None, True, 0]) and [type(v) for v in back["nested"][1]] == [type(None), bool, int]
    assert type(back["param_groups"][0]["nesterov"]) is bool
    assert back["zero_d"].shape == () and back["zero_d"].dtype == np.int16 and int(back["zero_d"]) == 7
    assert back["big_endian"].dtype == np.dtype(">f8") and back["big_endian"].tolist() == [0.0, 1.0, 2.0]
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed, not left behind


def test_an_optimizer_continues_exactly(tmp_path):
    def setup():
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        return model, torch.optim.Adam(model.parameters(), lr=0.01)

    def step(model, optimizer, seed):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(seed))
        optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        optimizer.step()

    straight, opt = setup()
    for seed in range(4):
        step(straight, opt, seed)
    first, opt1 = setup()
    for seed in range(2):
        step(first, opt1, seed)
    save_state_file(tmp_path / "s.safetensors", {"model": first.state_dict(), "optimizer": opt1.state_dict()})
    resumed, opt2 = setup()
    saved = load_state_file(tmp_path / "s.safetensors")
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["optimizer"])
    for seed in range(2, 4):
        step(resumed, opt2, seed)
    assert torch.equal(resumed.weight, straight.weight) and torch.equal(resumed.bias, straight.bias)
    # without the moments the two would differ: the test can tell a lost state
    plain, opt3 = setup()
    plain.load_state_dict(saved["model"])
    for seed in range(2, 4):
        step(plain, opt3, seed)
    assert not torch.equal(plain.weight, straight.weight)


def test_random_states_come_back(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_state_file(tmp_path / "r.safetensors", random_states())

    def draw():
        return random.random(), float(np.random.randn()), torch.rand(3).tolist()

    first = draw()
    restore_random_states(load_state_file(tmp_path / "r.safetensors"))
    assert draw() == first


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="state file not found: .*missing.safetensors"):
        load_state_file(tmp_path / "missing.safetensors")
    weights = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(weights))
    with pytest.raises(CheckpointError, match=r"model.safetensors is a safetensors file without textvae's state header"):
        load_state_file(weights)
    path = tmp_path / "cut.safetensors"
    save_state_file(path, {"w": torch.zeros(100)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match=r"cut.safetensors cannot be read as a textvae state file"):
        load_state_file(path)
    pickled = tmp_path / "old.safetensors"
    torch.save({"w": torch.zeros(2)}, pickled)  # a pickle under the new name is not read either
    with pytest.raises(CheckpointError, match=r"old.safetensors cannot be read"):
        load_state_file(pickled)


@pytest.mark.parametrize("tree", [
    {"scalar": 100000, "dtype": "i1"},  # out of range for its dtype
    {"scalar": 1e400, "dtype": "<i8"},
    {"array": "t0", "dtype": "O"},  # an object array would hold anything
    {"scalar": 1, "dtype": "not a dtype"},
    {"tensor": "missing"},
    {"dict": 5},
    {"dict": [[{"a": 1}, 2]]},  # an unhashable key
    {"tuple": 3},
    "[" * 5000 + "]" * 5000,  # deeper than the decoder recurses
])
def test_a_hostile_header_is_a_checkpoint_error(tmp_path, tree):
    path = tmp_path / "hostile.safetensors"
    save_file({"t0": torch.zeros(2)}, str(path), metadata={TREE_KEY: tree if isinstance(tree, str) else json.dumps(tree)})
    with pytest.raises(CheckpointError, match=r"hostile.safetensors cannot be read as a textvae state file"):
        load_state_file(path)


def test_what_cannot_be_stored_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"root\['groups'\]\[1\]: a set cannot be stored"):
        save_state_file(tmp_path / "x.safetensors", {"groups": [1, {2}]})
    with pytest.raises(TypeError, match=r"key \(1, 2\) is a tuple"):
        save_state_file(tmp_path / "x.safetensors", {(1, 2): 0})
    with pytest.raises(TypeError, match=r"root\[0\]: a numpy <U1 value cannot be stored"):
        save_state_file(tmp_path / "x.safetensors", [np.array(["a"])])
    assert not list(tmp_path.iterdir())
