"""Stereo disparity: pixels at the current image size, 0 = invalid (Cityscapes' ``disparity/``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.tasks import TASKS
from densemtl.tasks.base import Task
from densemtl.tasks.depth import DepthTask

if TYPE_CHECKING:
    from torchmetrics import Metric

#: How :meth:`DisparityTask.activate` makes raw outputs positive (``identity``: XTasC-Net's head).
DISPARITY_ACTIVATIONS = ("softplus", "relu", "identity")
#: Disparity PNGs store ``d * 256 + 1`` as uint16, 0 = invalid (the Cityscapes encoding).
PNG_SCALE = 256.0


def disparity_from_png(png: np.ndarray) -> np.ndarray:
    """Cityscapes-encoded PNG values -> disparity in pixels ``(p - 1) / 256`` (0 = invalid).

    ``p == 0`` is invalid and ``p == 1`` is zero disparity (infinitely far), which is 0 = invalid
    too (Cordts et al., CVPR 2016, the dataset's ``README`` of ``disparity_trainvaltest.zip``).
    """
    png = np.asarray(png, dtype=np.float32)
    return np.where(png > 0, (png - 1.0) / PNG_SCALE, 0.0).astype(np.float32)


def disparity_to_png(disparity: np.ndarray) -> np.ndarray:
    """Inverse of :func:`disparity_from_png`: uint16 ``round(d * 256) + 1`` where ``d > 0``, else 0."""
    disparity = np.asarray(disparity, dtype=np.float64)
    value = np.where(disparity > 0, np.round(disparity * PNG_SCALE) + 1.0, 0.0)
    if value.max(initial=0) > 65535:
        raise ValueError(f"disparity {disparity.max():.1f} px exceeds the uint16 range at scale {PNG_SCALE}")
    return value.astype(np.uint16)


@TASKS.register("disparity")
class DisparityTask(Task):
    """Stereo disparity ``[B, 1, H, W]`` in pixels (positive), label float32 ``[1, H, W]``, 0 = invalid.

    Disparity is ``baseline * fx / depth``, so its rules follow from fx being in pixels:

    * resize: nearest, and the values scale with the image width (``x new_w / old_w``): pixels
      at the new size;
    * zoom (:class:`~densemtl.data.transforms.RandomScaleCrop`, "the camera moved closer by
      ``s``"): nothing more. The resize to the zoomed size already multiplied it by ``s``, which
      is exactly ``baseline * fx / (depth / s)`` at the kept focal length;
    * mirror: pixels move, values stay (like depth).

    Default loss: ``xtasc_depth`` (per-image masked L1, XTasC-Net's loss on its Cityscapes
    disparity target; Nakano et al., arXiv 2111.14122). Metric:
    :class:`~densemtl.metrics.disparity.DisparityMetrics` (disparity errors, and depth errors in
    metres for samples whose meta has ``baseline`` and ``intrinsics``). Folder format:
    ``disparity/<id>.png`` in the Cityscapes encoding (:func:`disparity_to_png`), or
    ``disparity/<id>.npy`` float pixels.
    """

    name = "disparity"
    label_channels = 1
    default_loss = "xtasc_depth"
    folder = "disparity"
    suffixes = (".png", ".npy")

    def activate(
        self, raw: torch.Tensor, disparity_activation: str = "softplus", **options: Any
    ) -> torch.Tensor:
        """``softplus`` (default) or ``relu`` (positive pixels), or ``identity`` (XTasC-Net's
        unconstrained head)."""
        if disparity_activation == "softplus":
            return F.softplus(raw)
        if disparity_activation == "relu":
            return F.relu(raw)
        if disparity_activation == "identity":
            return raw
        raise ValueError(
            f"disparity_activation must be one of {DISPARITY_ACTIVATIONS}, got {disparity_activation!r}"
        )

    def valid_mask(self, label: torch.Tensor) -> torch.Tensor:
        return (label > 0).squeeze(-3)

    def resize_label(self, label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Nearest resize (as depth), values times ``new_width / old_width``: pixels at the new size."""
        return super().resize_label(label, size) * (size[1] / label.shape[-1])

    def zoom_label(
        self, label: torch.Tensor, scale: float | torch.Tensor, meta: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """Unchanged: the zoom's resize already scaled the values (see the class docstring)."""
        return label

    def build_metric(self, num_classes: int, **options: Any) -> Metric:
        """:class:`~densemtl.metrics.disparity.DisparityMetrics` (``per_image``, ``camera_depth``,
        ``min_depth`` / ``max_depth`` / ``eigen_crop`` of the depth through the camera, ``eps``)."""
        from densemtl.metrics.disparity import DisparityMetrics

        return DisparityMetrics(**options)

    def colorize(
        self,
        array: np.ndarray,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "plasma",
        **options: Any,
    ) -> np.ndarray:
        """Disparity [H, W] -> uint8 RGB: near (large disparity) yellow, far purple, invalid (0) black.

        The range defaults to the valid values' min / max; depth's colouring with another map.
        """
        from densemtl.tasks import get_task

        return get_task("depth").colorize(array, vmin, vmax, cmap)

    #: GT, prediction on one colour range, the |error| map and the colour bar, as for depth.
    unit = "px"
    panel_range = DepthTask.panel_range
    panel_tiles = DepthTask.panel_tiles
    panel_legend = DepthTask.panel_legend

    def read(self, path: str | Path, **options: Any) -> np.ndarray:
        """Float32 pixels [H, W] from a Cityscapes-encoded uint16 PNG or a float ``.npy``."""
        from densemtl.data import io

        if Path(path).suffix == ".npy":
            return io.read_depth_npy(path)
        return disparity_from_png(io.read_depth_png(path, scale=1.0))

    def write(self, path: str | Path, array: np.ndarray) -> None:
        """Pixels [H, W] -> Cityscapes-encoded uint16 PNG (0 = invalid)."""
        from densemtl.data import io

        if Path(path).suffix == ".npy":
            np.save(path, np.asarray(array, dtype=np.float32))
            return
        io.write_depth_png(path, disparity_to_png(array), scale=1.0)
