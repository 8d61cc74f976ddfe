"""Surface normals: unit vectors in the camera frame (OpenCV axes: x right, y down, z forward)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.tasks import TASKS
from densemtl.tasks.base import Task

if TYPE_CHECKING:
    from torchmetrics import Metric


@TASKS.register("normals")
class NormalsTask(Task):
    """Surface normals: unit vectors ``[B, 3, H, W]``, label float32 ``[3, H, W]``, all-zero = invalid.

    Folder format: ``normals/<id>.png`` 8/16-bit RGB ``(n + 1) / 2``, (0, 0, 0) = invalid, or
    ``normals/<id>.npy`` float.
    """

    name = "normals"
    label_channels = 3
    default_loss = "cosine"
    folder = "normals"
    suffixes = (".png", ".npy")

    def activate(self, raw: torch.Tensor, **options: Any) -> torch.Tensor:
        """L2-normalise over channels."""
        return F.normalize(raw, dim=1)

    def valid_mask(self, label: torch.Tensor) -> torch.Tensor:
        return label.abs().sum(dim=-3) > 0

    def mirror_values(self, x: torch.Tensor) -> torch.Tensor:
        """A left-right mirror negates the x component (camera frame: x points right)."""
        return x * torch.tensor([-1.0, 1.0, 1.0], device=x.device).view(3, 1, 1)

    def merge_mirrored(self, pred: torch.Tensor, mirrored_pred: torch.Tensor) -> torch.Tensor:
        """Sum of the two unit vectors, re-normalised (the mean direction)."""
        return F.normalize(pred + self.flip_prediction(mirrored_pred), dim=1)

    def build_metric(self, num_classes: int, **options: Any) -> Metric:
        """Angular errors: mean / median / RMSE and the 11.25, 22.5, 30 degree accuracies."""
        from densemtl.metrics import NormalsMetrics

        return NormalsMetrics(**options)

    def colorize(self, array: np.ndarray, **options: Any) -> np.ndarray:
        """Unit normals [H, W, 3] -> uint8 RGB ``(n + 1) / 2``; invalid (zero) is black."""
        invalid = np.abs(array).sum(-1) == 0
        rgb = np.clip((array + 1.0) * 127.5, 0, 255).astype(np.uint8)
        rgb[invalid] = 0
        return rgb

    def read(self, path: str | Path, **options: Any) -> np.ndarray:
        """Float32 unit normals [H, W, 3] (invalid all-zero), see :func:`densemtl.data.io.read_normals`."""
        from densemtl.data import io

        return io.read_normals(path)

    def write(self, path: str | Path, array: np.ndarray) -> None:
        """Unit normals [H, W, 3] -> 8-bit RGB PNG ``(n + 1) * 127.5``, invalid (0, 0, 0)."""
        from densemtl.data import io

        io.write_normals_png(path, array)
