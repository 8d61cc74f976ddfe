"""Surface-normal rules: unit outputs, mirror negates x, renormalised test-time flip, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from densemtl.metrics import NormalsMetrics
from densemtl.tasks import get_task

normals = get_task("normals")


def test_activation_gives_unit_vectors() -> None:
    out = normals.activate(torch.randn(2, 3, 4, 5) * 7)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 4, 5), atol=1e-6)


def test_flip_mirrors_pixels_and_negates_x_only() -> None:
    label = torch.zeros(3, 1, 2)
    label[:, 0, 0] = torch.tensor([0.6, 0.0, 0.8])
    flipped = normals.flip_label(label)
    assert torch.equal(flipped[:, 0, 1], torch.tensor([-0.6, 0.0, 0.8]))
    assert torch.equal(flipped[:, 0, 0].abs(), torch.zeros(3))
    assert torch.equal(normals.mirror_values(label), label * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1))
    assert not normals.valid_mask(flipped)[0, 0] and normals.valid_mask(flipped)[0, 1]


def test_merge_mirrored_renormalises_the_sum() -> None:
    a = normals.activate(torch.randn(1, 3, 2, 3))
    b = normals.activate(torch.randn(1, 3, 2, 3))
    merged = normals.merge_mirrored(a, b)
    expected = a + normals.flip_prediction(b)
    expected = expected / expected.norm(dim=1, keepdim=True)
    assert torch.allclose(merged, expected, atol=1e-6)
    assert torch.allclose(merged.norm(dim=1), torch.ones(1, 2, 3), atol=1e-6)


def test_zoom_and_resize_keep_orientations() -> None:
    label = normals.activate(torch.randn(1, 3, 4, 4))[0]
    assert normals.zoom_label(label, 1.5) is label
    assert torch.equal(normals.resize_label(label, (8, 8))[:, ::2, ::2], label)


def test_png_round_trip_within_8_bit_and_invalid_black(tmp_path: Path) -> None:
    label = normals.activate(torch.randn(1, 3, 5, 6))[0]
    label[:, 0] = 0
    array = normals.label_to_numpy(label)
    assert array.shape == (5, 6, 3)
    normals.write(tmp_path / "n.png", array)
    back = normals.read(tmp_path / "n.png")
    assert np.abs(back - array).max() < 1.5 / 127.5
    assert (back[0] == 0).all() and (normals.colorize(back)[0] == 0).all()
    assert torch.equal(normals.from_numpy(array), label)


def test_metric_counts_angles() -> None:
    metric = normals.build_metric(0)
    assert isinstance(metric, NormalsMetrics)
    label = normals.activate(torch.randn(1, 3, 4, 4))
    metric.update(label, label)
    assert metric.compute()["normal_mean"] < 0.1
