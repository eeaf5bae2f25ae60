import math

import pytest
import torch

from textvae.config import ObjectiveConfig
from textvae.objectives import capacity, kl_term, kl_weight


def test_constant_schedule():
    config = ObjectiveConfig(beta=0.5)
    assert [kl_weight(config, s) for s in (0, 10, 10**6)] == [0.5, 0.5, 0.5]


def test_linear_schedule_values():
    config = ObjectiveConfig(kl_schedule="linear", kl_start=0.1, kl_warmup_steps=100)
    assert kl_weight(config, 0) == pytest.approx(0.1)
    assert kl_weight(config, 50) == pytest.approx(0.55)
    assert kl_weight(config, 100) == pytest.approx(1.0)
    assert kl_weight(config, 1000) == pytest.approx(1.0)


def test_sigmoid_schedule_values():
    config = ObjectiveConfig(kl_schedule="sigmoid", kl_warmup_steps=1000, beta=2.0)
    assert kl_weight(config, 500) == pytest.approx(1.0)  # midpoint: half of beta
    assert kl_weight(config, 1000) == pytest.approx(2.0 * 0.99)
    assert kl_weight(config, 0) == pytest.approx(2.0 * 0.01)
    values = [kl_weight(config, s) for s in range(0, 1200, 50)]
    assert values == sorted(values)


def test_cyclical_schedule_values():
    config = ObjectiveConfig(kl_schedule="cyclical", kl_cycles=4, kl_ramp_ratio=0.5, kl_total_steps=400)
    # period 100: rise over 50 steps, hold at 1 for 50
    assert kl_weight(config, 0) == 0.0
    assert kl_weight(config, 25) == pytest.approx(0.5)
    assert kl_weight(config, 50) == pytest.approx(1.0)
    assert kl_weight(config, 99) == pytest.approx(1.0)
    assert kl_weight(config, 100) == 0.0
    assert kl_weight(config, 325) == pytest.approx(0.5)
    assert kl_weight(config, 400) == 1.0
    assert kl_weight(config, 10**6) == 1.0


def test_capacity_rises_linearly():
    config = ObjectiveConfig(capacity=10.0, capacity_steps=100)
    assert capacity(config, 0) == 0.0
    assert capacity(config, 50) == pytest.approx(5.0)
    assert capacity(config, 500) == pytest.approx(10.0)


def test_free_bits_hinge_has_no_gradient_below_threshold():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]], requires_grad=True)
    term = kl_term(kl, ObjectiveConfig(free_bits=1.0), step=0)
    # dimension 0 averages 0.2 < 1 -> counts as 1; dimension 1 averages 3.0
    assert term.penalty.item() == pytest.approx(4.0)
    term.penalty.backward()
    assert torch.all(kl.grad[:, 0] == 0)
    assert torch.allclose(kl.grad[:, 1], torch.tensor([0.5, 0.5]))


def test_capacity_term_and_weights_reported():
    kl = torch.tensor([[1.0, 1.0], [3.0, 3.0]])  # mean total KL = 4
    config = ObjectiveConfig(capacity=10.0, capacity_steps=10, capacity_gamma=2.0)
    term = kl_term(kl, config, step=5)  # C = 5 -> 2 * |4 - 5|
    assert term.penalty.item() == pytest.approx(2.0)
    assert term.capacity == pytest.approx(5.0)


def test_plain_elbo_term_is_weighted_mean_kl():
    kl = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    term = kl_term(kl, ObjectiveConfig(kl_schedule="linear", kl_warmup_steps=10), step=5)
    assert term.kl_weight == pytest.approx(0.5)
    assert term.penalty.item() == pytest.approx(0.5 * 5.0)
    assert term.capacity is None
    assert math.isfinite(term.penalty.item())
