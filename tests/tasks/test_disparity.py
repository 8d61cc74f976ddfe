"""The disparity task: registry, geometric rules (with the transforms), loss, colouring, files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.data.sample import collate
from densemtl.data.transforms import RandomHorizontalFlip, RandomScaleCrop, resize_sample
from densemtl.losses import build_loss
from densemtl.tasks import get_task, task_channels, task_names
from densemtl.tasks.disparity import disparity_from_png, disparity_to_png

BF = 0.2 * 400.0  # baseline (m) * fx (px)


def _sample(disparity: torch.Tensor, fx: float = 400.0) -> dict:
    height, width = disparity.shape[-2:]
    return {
        "image": torch.rand(3, height, width),
        "disparity": disparity,
        "meta": {"intrinsics": torch.tensor([fx, fx, width / 2 - 0.5, height / 2 - 0.5]), "baseline": 0.2},
    }


def test_registered_with_one_channel_and_its_layout() -> None:
    task = get_task("disparity")
    assert "disparity" in task_names() and task_channels(["semseg", "disparity"], 7) == {
        "semseg": 7,
        "disparity": 1,
    }
    label = torch.tensor([[[0.0, 2.0], [3.0, 0.0]]])
    assert task.valid_mask(label).tolist() == [[False, True], [True, False]]
    batch = collate([{"image": torch.zeros(3, 2, 2), "meta": {}}], tasks=("disparity",))
    assert batch["disparity"].shape == (1, 1, 2, 2) and not batch["disparity"].any()
    assert not batch["has_gt"]["disparity"].any()


def test_resize_scales_values_with_the_width_and_keeps_depth_through_the_camera() -> None:
    disparity = torch.full((1, 4, 8), 6.0)
    disparity[0, :2] = 0.0
    out = resize_sample(_sample(disparity), (2, 4))
    assert torch.equal(out["disparity"][0, 1], torch.full((4,), 3.0))  # pixels halve with the width
    assert not out["disparity"][0, 0].any()  # invalid stays invalid (nearest, no bleeding)
    fx = float(out["meta"]["intrinsics"][0])
    assert pytest.approx(0.2 * fx / 3.0) == BF / 6.0  # same metres before and after


def test_zoom_multiplies_by_s_once_consistent_with_depth_divided_by_s() -> None:
    random.seed(0)
    out = RandomScaleCrop(scales=(2.0,), choice=True)(_sample(torch.full((1, 8, 8), 5.0)))
    assert torch.allclose(out["disparity"], torch.full((1, 8, 8), 10.0))  # closer by 2: disparity x 2
    fx = float(out["meta"]["intrinsics"][0])
    assert fx == pytest.approx(400.0)  # the focal length keeps its pre-zoom value
    assert 0.2 * fx / 10.0 == pytest.approx((BF / 5.0) / 2.0)  # = depth / s, as the depth task does
    depth = get_task("depth").zoom_label(torch.full((1, 8, 8), BF / 5.0), 2.0)
    assert torch.allclose(depth, torch.full((1, 8, 8), 0.2 * fx / 10.0))


def test_flip_moves_pixels_and_keeps_values() -> None:
    disparity = torch.tensor([[[1.0, 2.0, 3.0]]])
    random.seed(0)
    out = RandomHorizontalFlip(p=1.0)(_sample(disparity))
    assert out["disparity"].tolist() == [[[3.0, 2.0, 1.0]]]


def test_activation_and_default_loss() -> None:
    task = get_task("disparity")
    raw = torch.tensor([[[[-3.0, 0.0, 2.0]]]])
    assert (task.activate(raw) > 0).all()
    assert torch.allclose(task.activate(raw), torch.log1p(torch.exp(raw)))
    assert torch.equal(task.activate(raw, disparity_activation="identity"), raw)
    with pytest.raises(ValueError, match="disparity_activation"):
        task.activate(raw, disparity_activation="exp")
    loss = build_loss(task.default_loss)
    pred = torch.tensor([[[[1.0, 5.0]]], [[[2.0, 2.0]]]])
    target = torch.tensor([[[[2.0, 0.0]]], [[[4.0, 6.0]]]])
    # XTasC-Net's per-image masked L1: image 1 -> |1 - 2| = 1, image 2 -> (2 + 4) / 2 = 3
    assert float(loss(pred, target, task.valid_mask(target))) == pytest.approx((1.0 + 3.0) / 2)


def test_colorize_near_is_bright_and_invalid_black() -> None:
    task = get_task("disparity")
    rgb = task.colorize(np.array([[0.0, 1.0, 50.0]], np.float32))
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 2].astype(int).sum() > rgb[0, 1].astype(int).sum()  # plasma: near yellow, far purple
    assert not np.array_equal(rgb, get_task("depth").colorize(np.array([[0.0, 1.0, 50.0]], np.float32)))
    tiles = task.panel_tiles(np.array([[2.0, 3.0]], np.float32), np.array([[2.0, 0.0]], np.float32))
    assert len(tiles) == 3 and all(t.shape == (1, 2, 3) for t in tiles)


def test_files_round_trip_in_the_cityscapes_encoding(tmp_path: Path) -> None:
    task = get_task("disparity")
    disparity = np.array([[0.0, 1.5], [100.25, 1 / 256]], np.float32)
    assert disparity_to_png(disparity).tolist() == [[0, 385], [25665, 2]]
    assert np.array_equal(disparity_from_png(np.array([0, 1, 257])), [0.0, 0.0, 1.0])
    task.write(tmp_path / "a.png", disparity)
    assert np.array_equal(task.read(tmp_path / "a.png"), disparity)
    task.write(tmp_path / "a.npy", disparity)
    assert np.array_equal(task.read(tmp_path / "a.npy"), disparity)
