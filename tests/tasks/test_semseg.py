"""Semantic segmentation rules: ids, ignore index, argmax, palette, file ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.errors import DataError
from densemtl.metrics import SegmentationMetrics
from densemtl.metrics.xtasc import PerImageSegmentationMetrics
from densemtl.tasks import get_task
from densemtl.tasks.semseg import IGNORE_INDEX, default_palette

semseg = get_task("semseg")


def test_layout_channels_and_ignore_index() -> None:
    assert semseg.channels(21) == 21
    empty = semseg.empty_label(2, 3)
    assert empty.dtype == torch.int64 and (empty == IGNORE_INDEX).all()
    label = torch.tensor([[0, 255], [4, 1]])
    assert torch.equal(semseg.valid_mask(label), torch.tensor([[True, False], [True, True]]))


def test_logits_are_not_activated_and_to_numpy_is_the_argmax() -> None:
    logits = torch.randn(1, 5, 4, 6)
    assert semseg.activate(logits, depth_activation="relu") is logits
    ids = semseg.to_numpy(logits[0])
    assert ids.dtype == np.int64 and np.array_equal(ids, logits[0].argmax(0).numpy())


def test_flip_and_merge_mirrored_average_the_logits() -> None:
    a, b = torch.randn(2, 1, 3, 4, 5)
    assert torch.equal(semseg.merge_mirrored(a, b), 0.5 * (a + b.flip(-1)))
    label = torch.tensor([[1, 2, 3]])
    assert torch.equal(semseg.flip_label(label), torch.tensor([[3, 2, 1]]))


def test_read_maps_the_dataset_ignore_index_and_rejects_out_of_range_ids(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    semseg.write(path, np.array([[0, 7], [3, 2]]))
    assert np.array_equal(semseg.read(path, num_classes=4, ignore_index=7), [[0, 255], [3, 2]])
    with pytest.raises(DataError, match=r"a\.png.*\[7\] out of range for 4 classes"):
        semseg.read(path, num_classes=4)


def test_colorize_uses_the_palette_and_blacks_out_ignore() -> None:
    palette = [[10, 20, 30], [40, 50, 60]]
    rgb = semseg.colorize(np.array([[0, 1, 255]]), palette=palette)
    assert rgb.tolist() == [[[10, 20, 30], [40, 50, 60], [0, 0, 0]]]
    assert semseg.colorize(np.array([[2]]))[0, 0].tolist() == default_palette(3)[2]


def test_metric_is_dataset_level_or_per_image() -> None:
    assert isinstance(semseg.build_metric(6), SegmentationMetrics)
    assert isinstance(semseg.build_metric(6, per_image=True), PerImageSegmentationMetrics)
    metric = semseg.build_metric(3, absent_policy="zero")
    metric.update(torch.tensor([[[0, 1, 2]]]), torch.tensor([[[0, 1, 255]]]))
    assert metric.compute()["pixel_acc"] == 1.0
