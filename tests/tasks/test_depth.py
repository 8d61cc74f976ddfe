"""Depth rules: activations, valid mask, zoom, colour range and files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densemtl.metrics import DepthMetrics
from densemtl.tasks import get_task
from densemtl.tasks.depth import DEPTH_ACTIVATIONS

depth = get_task("depth")
RAW = torch.linspace(-8, 8, 33).view(1, 1, 3, 11)


def test_activations_and_their_ranges() -> None:
    exp = depth.activate(RAW, depth_activation="exp", max_depth=10.0)
    assert (exp > 0).all() and exp.max() == pytest.approx(10.0)
    below = math.log(10.0) > RAW
    assert torch.allclose(exp[below], RAW.exp()[below])
    assert torch.equal(depth.activate(RAW, depth_activation="softplus"), F.softplus(RAW))
    assert (depth.activate(RAW, depth_activation="relu") >= 0).all()
    sig = depth.activate(RAW, depth_activation="sigmoid_range", max_depth=5.0)
    assert (sig > 0).all() and (sig < 5.0).all()
    assert depth.activate(RAW, depth_activation="identity") is RAW
    assert depth.activate(RAW).max() == pytest.approx(80.0)  # default: exp, capped at 80 m
    assert DEPTH_ACTIVATIONS == ("exp", "softplus", "relu", "sigmoid_range", "identity", "abs")
    with pytest.raises(ValueError, match="depth_activation must be one of"):
        depth.activate(RAW, depth_activation="tanh")


def test_valid_mask_is_positive_depth_without_the_channel() -> None:
    label = torch.tensor([[[0.0, 1.5], [2.0, 0.0]]])
    assert torch.equal(depth.valid_mask(label), torch.tensor([[False, True], [True, False]]))
    assert depth.valid_mask(label[None]).shape == (1, 2, 2)


def test_zoom_divides_depth_and_multiplies_disparity() -> None:
    label = torch.tensor([[[2.0, 0.0]]])
    assert torch.equal(depth.zoom_label(label, 2.0), torch.tensor([[[1.0, 0.0]]]))
    for target in ("disparity", "inverse_depth"):
        assert torch.equal(depth.zoom_label(label, 2.0, {"target": target}), torch.tensor([[[4.0, 0.0]]]))
    per_sample = depth.zoom_label(torch.ones(2, 1, 1, 1), torch.tensor([2.0, 4.0]).view(-1, 1, 1, 1))
    assert per_sample.flatten().tolist() == [0.5, 0.25]


def test_values_do_not_change_under_a_mirror() -> None:
    pred = torch.rand(2, 1, 3, 4) + 1
    assert torch.equal(depth.flip_prediction(pred), pred.flip(-1))
    assert torch.equal(depth.merge_mirrored(pred, pred), 0.5 * (pred + pred.flip(-1)))


def test_panel_shares_the_ground_truth_range_and_adds_an_error_map() -> None:
    gt = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    pred = gt + 10  # far beyond the GT range: saturates at the far colour
    gt_tile, pred_tile, error = depth.panel_tiles(pred, gt)
    assert (gt_tile[0, 0] == 0).all() and (error[0, 0] == 0).all()
    assert (pred_tile == depth.colorize(np.full_like(gt, 3.0), vmin=1.0, vmax=3.0)).all()
    assert len(depth.panel_tiles(pred)) == 1


def test_files_png_millimetres_and_npy(tmp_path: Path) -> None:
    array = np.array([[0.0, 1.2345], [2.5, 65.0]], dtype=np.float32)
    depth.write(tmp_path / "d.png", array)
    assert np.array_equal(depth.read(tmp_path / "d.png"), np.round(array * 1000) / 1000)
    np.save(tmp_path / "d.npy", array)
    assert np.array_equal(depth.read(tmp_path / "d.npy"), array)
    assert torch.equal(depth.from_numpy(array), torch.from_numpy(array)[None])


def test_metric_passes_its_options() -> None:
    metric = depth.build_metric(0, max_depth=10.0)
    assert isinstance(metric, DepthMetrics) and metric.max_depth == 10.0
