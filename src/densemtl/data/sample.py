"""The sample contract every dataset in densemtl returns, and the collate function.

A sample is a dict:

========== ======================== ==========================================================
key        type                     meaning
========== ======================== ==========================================================
image      float32 [3, H, W]        RGB in [0, 1], *not* mean/std normalised (models do it)
semseg     int64 [H, W]             class ids 0..C-1, ``IGNORE_INDEX`` (255) = unlabelled
depth      float32 [1, H, W]        metric depth in metres, 0 = invalid
normals    float32 [3, H, W]        unit surface normals, camera frame (OpenCV: x right,
                                    y down, z forward; facing the camera: n . ray < 0),
                                    all-zero = invalid
meta       dict                     ``id`` (str), ``dataset`` (str), ``intrinsics``
                                    (float32 [4] fx, fy, cx, cy at the current image size, or
                                    absent), ``pseudo`` (set of task names whose label is a
                                    teacher's pseudo-label, not ground truth)
========== ======================== ==========================================================

A sample simply *lacks* the key of a task it has no label for (asymmetric annotations).
:func:`collate` fills a missing label with its invalid value, so losses skip it pixel-wise
without any ``if``, and records in ``batch["has_gt"][task]`` (bool [B]) which samples carry
ground truth, so metrics never count missing or pseudo labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from densemtl.tasks import get_task, task_names
from densemtl.tasks.semseg import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "TASKS", "collate", "empty_label", "valid_mask"]

#: Every registered task in the canonical order (semseg, depth, normals, ...); the registry
#: :data:`densemtl.tasks.TASKS` is the one source of truth.
TASKS: tuple[str, ...] = task_names()


def empty_label(task: str, height: int, width: int) -> torch.Tensor:
    """The all-invalid label of ``task`` at ``height`` x ``width`` (:meth:`Task.empty_label`)."""
    return get_task(task).empty_label(height, width)


def valid_mask(task: str, label: torch.Tensor) -> torch.Tensor:
    """Boolean mask of pixels holding a label ([B, H, W] for batched labels, [H, W] otherwise)."""
    return get_task(task).valid_mask(label)


def collate(samples: Sequence[dict[str, Any]], tasks: Iterable[str] = TASKS) -> dict[str, Any]:
    """Stack samples into a batch; labels of ``tasks`` are always present (filled where missing)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    images = torch.stack([s["image"] for s in samples])
    height, width = images.shape[-2:]
    batch: dict[str, Any] = {"image": images, "meta": [s.get("meta", {}) for s in samples], "has_gt": {}}
    for task in tasks:
        labels, has = [], []
        for s in samples:
            label = s.get(task)
            pseudo = task in s.get("meta", {}).get("pseudo", ())
            has.append(label is not None and not pseudo)
            labels.append(label if label is not None else empty_label(task, height, width))
        batch[task] = torch.stack(labels)
        batch["has_gt"][task] = torch.tensor(has, dtype=torch.bool)
    return batch
