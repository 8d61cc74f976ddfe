from __future__ import annotations

import math

import pytest
import torch

from densemtl.data.sample import IGNORE_INDEX, valid_mask
from densemtl.losses import build_loss
from densemtl.training.module import WeightedLossSum
from densemtl.weighting import build_weighting


def test_cross_entropy_ignores_unlabelled_pixels() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 5.0]]]])  # [1, 2 classes, 1, 2]
    target = torch.tensor([[[0, IGNORE_INDEX]]])
    loss = build_loss("cross_entropy")(logits, target, valid_mask("semseg", target))
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["cross_entropy", "l1", "log_l1", "berhu", "silog", "cosine", "normals_l1"])
def test_no_valid_pixel_gives_connected_zero(name: str) -> None:
    channels = {"cross_entropy": 3, "cosine": 3, "normals_l1": 3}.get(name, 1)
    pred = (torch.rand(2, channels, 4, 4) + 0.1).requires_grad_()
    if name == "cross_entropy":
        target = torch.full((2, 4, 4), IGNORE_INDEX)
    else:
        target = torch.zeros(2, channels, 4, 4)
    valid = torch.zeros(2, 4, 4, dtype=torch.bool)
    loss = build_loss(name)(pred, target, valid)
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and torch.all(pred.grad == 0)


def test_l1_and_log_l1_use_only_valid_pixels() -> None:
    pred = torch.tensor([[[[2.0, 4.0, 100.0]]]])
    target = torch.tensor([[[[1.0, 4.0, 0.0]]]])
    valid = valid_mask("depth", target)
    assert build_loss("l1")(pred, target, valid).item() == pytest.approx(0.5)
    assert build_loss("log_l1")(pred, target, valid).item() == pytest.approx(math.log(2) / 2)


def test_berhu_is_l1_below_c_and_quadratic_above() -> None:
    pred = torch.tensor([[[[1.0, 2.0]]]])
    target = torch.tensor([[[[1.5, 12.0]]]])  # errors 0.5 and 10; c = 0.2 * 10 = 2
    loss = build_loss("berhu")(pred, target, valid_mask("depth", target))
    assert loss.item() == pytest.approx((0.5 + (100 + 4) / 4) / 2)


def test_silog_is_scale_invariant_when_lambda_is_one() -> None:
    target = torch.rand(1, 1, 5, 5) + 0.5
    valid = valid_mask("depth", target)
    silog = build_loss("silog", lam=1.0)
    assert silog(target * 3.0, target, valid).item() < 0.02  # only the sqrt epsilon remains
    assert build_loss("silog")(target * 3.0, target, valid).item() > 1.0


def test_cosine_loss_of_identical_normals_is_zero_and_opposite_is_two() -> None:
    n = torch.zeros(1, 3, 2, 2)
    n[:, 2] = -1
    valid = valid_mask("normals", n)
    assert build_loss("cosine")(n, n, valid).item() == pytest.approx(0.0)
    assert build_loss("cosine")(-n, n, valid).item() == pytest.approx(2.0)


def test_weighted_loss_sum_combines_parts() -> None:
    pred = torch.tensor([[[[2.0]]]])
    target = torch.tensor([[[[1.0]]]])
    valid = valid_mask("depth", target)
    combo = WeightedLossSum([{"name": "l1", "weight": 2.0}, {"name": "log_l1", "weight": 0.5}])
    assert combo(pred, target, valid).item() == pytest.approx(2.0 + 0.5 * math.log(2))


def test_fixed_and_uncertainty_weighting() -> None:
    losses = {"semseg": torch.tensor(2.0), "depth": torch.tensor(4.0)}
    assert build_weighting("fixed", ["semseg", "depth"], weights={"depth": 0.5})(
        losses
    ).item() == pytest.approx(4.0)
    uw = build_weighting("uncertainty", ["semseg", "depth"], form="kendall")
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    expected = 0.5 * 2.0 + 0.0 + 0.5 * 4.0 / 2.0 + 0.5 * math.log(2.0)
    assert uw(losses).item() == pytest.approx(expected)
    assert uw.weights()["depth"] == pytest.approx(0.25)


def test_class_weights_from_counts_and_reload() -> None:
    loss = build_loss("cross_entropy", class_weights="median_frequency")
    assert loss.needs_class_counts
    loss.set_class_counts(torch.tensor([100.0, 25.0, 0.0, 50.0]))
    # frequencies 4/7, 1/7, 0, 2/7; median of the present ones = 2/7
    torch.testing.assert_close(loss.class_weights, torch.tensor([0.5, 2.0, 0.0, 1.0]))
    fresh = build_loss("cross_entropy", class_weights="median_frequency")
    fresh.load_state_dict(loss.state_dict())
    torch.testing.assert_close(fresh.class_weights, loss.class_weights)
    mild = build_loss("cross_entropy", class_weights="sqrt_inverse")
    mild.set_class_counts(torch.tensor([100.0, 25.0, 0.0, 50.0]))
    torch.testing.assert_close(mild.class_weights, torch.tensor([0.5, 2.0, 0.0, 1.0]).sqrt())
    with pytest.raises(Exception, match="class_weights must be"):
        build_loss("cross_entropy", class_weights="bogus")
