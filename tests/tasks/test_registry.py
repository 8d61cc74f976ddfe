"""The task registry and the contract every registered task keeps (one test per rule, all tasks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics import Metric

from densemtl.data import sample
from densemtl.errors import ConfigError
from densemtl.losses import build_loss
from densemtl.registry import Registry
from densemtl.tasks import TASKS, TaskRegistry, get_task, task_channels, task_names
from densemtl.tasks.base import Task


def _label(task: Task, h: int = 6, w: int = 8, seed: int = 0) -> torch.Tensor:
    """A label with valid and invalid pixels, in the task's own layout."""
    g = torch.Generator().manual_seed(seed)
    label = task.empty_label(h, w)
    if label.is_floating_point():
        valid = torch.rand(label.shape, generator=g) * 3 + 0.5
        if task.label_channels and task.label_channels > 1:
            valid = torch.nn.functional.normalize(valid - 2, dim=0)
    else:
        valid = torch.randint(0, 4, label.shape, generator=g)
    label[..., : h // 2, :] = valid[..., : h // 2, :]
    return label


def test_builtin_tasks_in_canonical_order_and_one_source_of_truth() -> None:
    assert task_names()[:3] == ("semseg", "depth", "normals")
    assert isinstance(TASKS, Registry)
    assert task_names() == sample.TASKS
    assert get_task("depth") is get_task("depth")
    assert task_channels(["semseg", "depth", "normals"], 13) == {"semseg": 13, "depth": 1, "normals": 3}
    with pytest.raises(ConfigError, match="unknown task"):
        task_channels(["semseg", "edges"], 13)
    with pytest.raises(ConfigError, match="unknown task 'edges'"):
        get_task("edges")


def test_a_new_task_is_one_class_and_one_registry_line() -> None:
    registry = TaskRegistry()

    @registry.register("edges")
    class EdgeTask(Task):
        name = "edges"
        default_loss = "l1"
        folder = "edges"

    registry.register("confidence")(type("Conf", (Task,), {"name": "confidence"}))
    assert registry.ordered_names() == ("edges", "confidence")
    assert registry.names() == ["confidence", "edges"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("edges")(EdgeTask)
    edges = registry.build("edges")
    label = edges.empty_label(4, 5)
    assert label.shape == (1, 4, 5) and not edges.valid_mask(label).any()
    label[0, 1, 2] = 0.7
    assert edges.valid_mask(label).sum() == 1 and edges.flip_label(label)[0, 1, 2] == 0.7
    assert edges.to_numpy(label).shape == (4, 5)


@pytest.mark.parametrize("name", task_names())
def test_empty_label_is_invalid_everywhere_and_valid_mask_shapes(name: str) -> None:
    task = get_task(name)
    empty = task.empty_label(6, 8)
    assert not task.valid_mask(empty).any()
    label = _label(task)
    mask = task.valid_mask(label)
    assert mask.shape == (6, 8) and mask[:3].all() and not mask[3:].any()
    batched = torch.stack([label, empty])
    assert task.valid_mask(batched).shape == (2, 6, 8)


@pytest.mark.parametrize("name", task_names())
def test_flip_twice_is_identity_and_flip_moves_pixels(name: str) -> None:
    task = get_task(name)
    label = _label(task)
    assert torch.equal(task.flip_label(task.flip_label(label)), label)
    assert torch.equal(task.valid_mask(task.flip_label(label)), task.valid_mask(label).flip(-1))
    pred = torch.randn(2, task.channels(4), 5, 7)
    assert torch.equal(task.flip_prediction(task.flip_prediction(pred)), pred)


@pytest.mark.parametrize("name", task_names())
def test_merge_mirrored_of_a_mirror_consistent_prediction_gives_it_back(name: str) -> None:
    task = get_task(name)
    pred = task.activate(torch.randn(2, task.channels(4), 5, 7))
    merged = task.merge_mirrored(pred, task.flip_prediction(pred))
    assert torch.allclose(merged, pred, atol=1e-6)


@pytest.mark.parametrize("name", task_names())
def test_mix_takes_the_pasted_map_where_the_mask_is_set(name: str) -> None:
    task = get_task(name)
    a, b = torch.stack([_label(task, seed=1)] * 2), torch.stack([_label(task, seed=2)] * 2)
    mask = torch.zeros(2, 6, 8, dtype=torch.bool)
    mask[0, :, :4] = True
    mixed = task.mix(a, b, mask)
    m = mask if a.dim() == 3 else mask[:, None].expand_as(a)
    assert torch.equal(mixed[m], a[m]) and torch.equal(mixed[~m], b[~m])


@pytest.mark.parametrize("name", task_names())
def test_resize_keeps_dtype_and_invalid_pixels_never_bleed(name: str) -> None:
    task = get_task(name)
    label = _label(task)
    label[..., 1, 2] = task.empty_label(1, 1)[..., 0, 0]  # an isolated invalid pixel
    resized = task.resize_label(label, (12, 16))
    assert resized.dtype == label.dtype and resized.shape[-2:] == (12, 16)
    mask = task.valid_mask(label)
    assert torch.equal(task.valid_mask(resized), mask.repeat_interleave(2, 0).repeat_interleave(2, 1))


@pytest.mark.parametrize("name", task_names())
def test_numpy_layout_round_trips_and_files_round_trip(name: str, tmp_path: Path) -> None:
    task = get_task(name)
    label = _label(task)
    array = task.label_to_numpy(label)
    assert torch.equal(task.from_numpy(array), label)
    path = tmp_path / task.folder / f"x{task.suffixes[0]}"
    task.write(path, array)
    back = task.read(path)
    assert back.shape == array.shape and back.dtype == array.dtype
    # files quantise (depth: mm, normals: 8 bit); validity survives exactly
    assert np.allclose(back, array, atol=1e-2)
    assert torch.equal(task.valid_mask(task.from_numpy(back)), task.valid_mask(label))


@pytest.mark.parametrize("name", task_names())
def test_colorize_is_uint8_rgb_with_invalid_black(name: str) -> None:
    task = get_task(name)
    array = task.label_to_numpy(_label(task))
    rgb = task.colorize(array)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert (rgb[3:] == 0).all() and rgb[:3].any()
    tiles = task.panel_tiles(array, array)
    assert len(tiles) >= 2 and all(t.shape == (6, 8, 3) and t.dtype == np.uint8 for t in tiles)


@pytest.mark.parametrize("name", task_names())
def test_default_loss_and_metric_build(name: str) -> None:
    task = get_task(name)
    assert build_loss(task.default_loss) is not None
    metric = task.build_metric(4)
    assert isinstance(metric, Metric)
    label = torch.stack([_label(task)] * 2)
    pred = task.activate(torch.randn(2, task.channels(4), 6, 8))
    metric.update(pred, label)
    assert any(np.isfinite(float(v)) for v in metric.compute().values())
