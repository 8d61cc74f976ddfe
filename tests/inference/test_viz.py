"""Prediction panels: a depth colour bar in metres, a class legend, and one fixed depth range per
dataset so that panels of different images compare."""

from __future__ import annotations

import numpy as np

from densemtl.data.datamodule import panel_ranges
from densemtl.inference.viz import prediction_panel
from densemtl.tasks import get_task
from densemtl.tasks.depth import colorize_error, error_range

PALETTE = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]]
NAMES = ["wall", "floor", "chair", "table"]
H, W = 24, 32


def _sample(depth_scale: float) -> tuple[np.ndarray, dict, dict]:
    rng = np.random.default_rng(0)
    image = rng.random((3, H, W)).astype(np.float32)
    depth = np.full((H, W), 5.0, dtype=np.float32)
    depth[:, : W // 2] = depth_scale  # the other half: a different range per image
    semseg = np.zeros((H, W), dtype=np.int64)
    semseg[:, W // 2 :] = 2  # classes 0 and 2 only
    return image, {"semseg": semseg, "depth": depth}, {"semseg": semseg.copy(), "depth": depth.copy()}


def _colours(region: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in region.reshape(-1, 3).tolist()}


def test_panel_has_a_class_legend_and_a_depth_colour_bar_under_the_tiles() -> None:
    image, pred, gt = _sample(1.0)
    plain = prediction_panel(image, PALETTE, pred, gt, legend=False, ranges={"depth": (0.0, 10.0)})
    panel = prediction_panel(image, PALETTE, pred, gt, class_names=NAMES, ranges={"depth": (0.0, 10.0)})
    assert plain.shape[0] == H and panel.shape[0] > H + 20
    np.testing.assert_array_equal(panel[:H, : plain.shape[1]], plain)
    legend = panel[H:]
    colours = _colours(legend)
    assert tuple(PALETTE[0]) in colours and tuple(PALETTE[2]) in colours  # classes shown
    assert tuple(PALETTE[1]) not in colours and tuple(PALETTE[3]) not in colours  # absent classes left out
    assert (legend.sum(axis=2) < 100).sum() > 50  # text: class names and labels in metres
    depth = get_task("depth")
    near = tuple(depth.colorize(np.array([[1e-6]]), 0.0, 10.0)[0, 0].tolist())
    far = tuple(depth.colorize(np.array([[10.0]]), 0.0, 10.0)[0, 0].tolist())
    assert near in colours and far in colours  # the bar spans the fixed range's colours
    top = error_range(pred["depth"] + 0.5, gt["depth"])
    with_error = prediction_panel(image, PALETTE, {**pred, "depth": pred["depth"] + 0.5}, gt)
    heat = colorize_error(np.array([[0.0, top]]) + 1.0, np.ones((1, 2)), top)[0]
    error_colours = _colours(with_error[H:])
    assert all(tuple(c) in error_colours for c in heat.tolist())  # the error map's scale, 0 to its top


def test_fixed_depth_range_colours_the_same_depth_alike_in_every_image() -> None:
    panels = {}
    for scale in (1.0, 9.0):
        image, pred, gt = _sample(scale)
        own = prediction_panel(image, PALETTE, pred, gt, legend=False)
        fixed = prediction_panel(image, PALETTE, pred, gt, legend=False, ranges={"depth": (0.0, 10.0)})
        panels[scale] = (own, fixed)
    # the GT depth tile follows RGB, GT seg and predicted seg; its right half is 5 m in both images
    x = 3 * (W + 4) + W - 2
    own_1, fixed_1 = panels[1.0]
    own_9, fixed_9 = panels[9.0]
    np.testing.assert_array_equal(fixed_1[H // 2, x], fixed_9[H // 2, x])
    assert not np.array_equal(own_1[H // 2, x], own_9[H // 2, x])  # per-image ranges: not comparable


def test_colour_bar_ends_are_the_range_colours() -> None:
    depth = get_task("depth")
    pred = np.linspace(2.0, 6.0, H * W, dtype=np.float32).reshape(H, W)
    bar = depth.panel_legend(pred, None, width=200)
    coloured_per_row = (bar.max(axis=2) != bar.min(axis=2)).sum(axis=1)  # text is grey, the bar is not
    row = bar[int(coloured_per_row.argmax())]
    coloured = [i for i, c in enumerate(row.tolist()) if len(set(c)) > 1]
    first, last = row[coloured[0]], row[coloured[-1]]
    np.testing.assert_array_equal(first, depth.colorize(np.array([[2.0]]), 2.0, 6.0)[0, 0])
    np.testing.assert_array_equal(last, depth.colorize(np.array([[6.0]]), 2.0, 6.0)[0, 0])
    assert get_task("normals").panel_legend(np.zeros((H, W, 3), np.float32)) is None


def test_display_ranges_come_from_the_dataset() -> None:
    assert panel_ranges("synthetic") == {"depth": (0.0, 10.0)}
    assert panel_ranges("nyuv2") == {"depth": (0.0, 10.0)}
    assert panel_ranges("kitti") == {"depth": (0.0, 80.0)}
    assert panel_ranges("cityscapes", {"depth_target": "disparity"}) == {}  # not metres: no fixed range
    assert panel_ranges("folder") == {}
