"""Metric depth: metres, 0 = invalid."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.tasks import TASKS
from densemtl.tasks.base import Task

if TYPE_CHECKING:
    from torchmetrics import Metric

#: How :meth:`DepthTask.activate` turns raw outputs into metres.
DEPTH_ACTIVATIONS = ("exp", "softplus", "relu", "sigmoid_range", "identity", "abs")
#: Depth PNGs of the folder format are uint16 millimetres.
PNG_SCALE = 1000.0
#: ``meta["target"]`` values meaning the ``depth`` label holds disparity / inverse depth.
INVERSE_TARGETS = ("disparity", "inverse_depth")


def error_range(pred: np.ndarray, gt: np.ndarray) -> float:
    """The top of the error map's colour range: the 99th percentile of |pred - gt| over valid gt."""
    valid = gt > 0
    return float(np.percentile(np.abs(pred - gt)[valid], 99)) if valid.any() else 1.0


def error_colours(err: np.ndarray, vmax: float) -> np.ndarray:
    """Absolute errors (any shape) -> uint8 RGB on the error maps' scale, 0 to ``vmax``."""
    from matplotlib import colormaps  # imported on use: matplotlib is slow to import

    return (colormaps["inferno"](np.clip(err / max(vmax, 1e-6), 0, 1))[..., :3] * 255).astype(np.uint8)


def colorize_error(pred: np.ndarray, gt: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """|pred - gt| over valid gt (> 0) as a heat map from 0 to ``vmax`` (default
    :func:`error_range`); black = invalid."""
    valid = gt > 0
    rgb = error_colours(
        np.where(valid, np.abs(pred - gt), 0.0), error_range(pred, gt) if vmax is None else vmax
    )
    rgb[~valid] = 0
    return rgb


@TASKS.register("depth")
class DepthTask(Task):
    """Monocular depth: metres ``[B, 1, H, W]`` (positive), label float32 ``[1, H, W]``, 0 = invalid.

    Folder format: ``depth/<id>.png`` uint16 millimetres, or ``depth/<id>.npy`` float metres.
    """

    name = "depth"
    label_channels = 1
    default_loss = "l1"
    folder = "depth"
    suffixes = (".png", ".npy")

    def activate(
        self, raw: torch.Tensor, depth_activation: str = "exp", max_depth: float = 80.0, **options: Any
    ) -> torch.Tensor:
        """``exp`` (the head predicts log-depth, clamped at ``max_depth``), ``softplus`` / ``relu``
        (metres directly), ``sigmoid_range`` (``(0, max_depth)``), ``identity`` or ``abs``
        (``|output|``: DenseTorch's depth at inference, Nekrasov et al.'s released code)."""
        if depth_activation == "exp":
            return torch.exp(raw.clamp(max=math.log(max_depth)))
        if depth_activation == "softplus":
            return F.softplus(raw)
        if depth_activation == "relu":
            return F.relu(raw)
        if depth_activation == "sigmoid_range":
            return torch.sigmoid(raw) * max_depth
        if depth_activation == "identity":
            return raw
        if depth_activation == "abs":
            return raw.abs()
        raise ValueError(f"depth_activation must be one of {DEPTH_ACTIVATIONS}, got {depth_activation!r}")

    def valid_mask(self, label: torch.Tensor) -> torch.Tensor:
        return (label > 0).squeeze(-3)

    def zoom_label(
        self, label: torch.Tensor, scale: float | torch.Tensor, meta: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """Zooming in by ``s`` = moving closer: depth ``/ s``; disparity / inverse depth
        (``meta["target"]``) ``* s``."""
        inverse = (meta or {}).get("target") in INVERSE_TARGETS
        return label * scale if inverse else label / scale

    def build_metric(self, num_classes: int, **options: Any) -> Metric:
        """Eigen et al.'s depth metrics (``min_depth``, ``max_depth``, ``eigen_crop``, ``per_image``)."""
        from densemtl.metrics import DepthMetrics

        return DepthMetrics(**options)

    def colorize(
        self,
        array: np.ndarray,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "turbo_r",
        **options: Any,
    ) -> np.ndarray:
        """Depth [H, W] -> uint8 RGB; near is red, far is blue; invalid (0) is black.

        The range defaults to the valid values' min / max.
        """
        from matplotlib import colormaps  # imported on use: matplotlib is slow to import

        valid = array > 0
        if vmin is None:
            vmin = float(array[valid].min()) if valid.any() else 0.0
        if vmax is None:
            vmax = float(array[valid].max()) if valid.any() else 1.0
        scaled = np.clip((array - vmin) / max(vmax - vmin, 1e-6), 0, 1)
        rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
        rgb[~valid] = 0
        return rgb

    #: the unit of the values, written on the colour bar
    unit = "m"

    def panel_range(
        self, pred: np.ndarray, gt: np.ndarray | None = None, value_range: Sequence[float] | None = None
    ) -> tuple[float, float]:
        """The colour range of a panel: ``value_range`` (the dataset's fixed display range, so
        that panels of different images compare), else the valid GT's min / max, else the
        prediction's."""
        if value_range is not None:
            return float(value_range[0]), float(value_range[1])
        valid = gt[gt > 0] if gt is not None and (gt > 0).any() else pred.ravel()
        return float(valid.min()), float(valid.max())

    def panel_tiles(
        self,
        pred: np.ndarray,
        gt: np.ndarray | None = None,
        value_range: Sequence[float] | None = None,
        **options: Any,
    ) -> list[np.ndarray]:
        """GT, prediction (one colour range, :meth:`panel_range`) and the error map."""
        vmin, vmax = self.panel_range(pred, gt, value_range)
        if gt is None:
            return [self.colorize(pred, vmin, vmax)]
        return [self.colorize(gt, vmin, vmax), self.colorize(pred, vmin, vmax), colorize_error(pred, gt)]

    def panel_legend(
        self,
        pred: np.ndarray,
        gt: np.ndarray | None = None,
        width: int = 320,
        value_range: Sequence[float] | None = None,
        **options: Any,
    ) -> np.ndarray:
        """The colour bar of :meth:`panel_tiles`' range, labelled in :attr:`unit`, and beside it,
        with ground truth, the error map's (0 to :func:`error_range`)."""
        from densemtl.tasks.legend import colour_bar, side_by_side

        vmin, vmax = self.panel_range(pred, gt, value_range)
        ramp = np.linspace(vmin, vmax, 256, dtype=np.float64)[None]
        # colorize marks values <= 0 invalid (black); the ramp's first colour is the range's start
        colours = self.colorize(np.maximum(ramp, np.finfo(np.float32).tiny), vmin, vmax)[0]
        bar = colour_bar(colours, vmin, vmax, self.unit, self.name, width=min(width // 2, 320))
        if gt is None or not (gt > 0).any():
            return bar
        top = error_range(pred, gt)
        heat = error_colours(np.linspace(0.0, top, 256), top)
        return side_by_side(
            [bar, colour_bar(heat, 0.0, top, self.unit, "|error|", width=min(width // 4, 160))]
        )

    def read(self, path: str | Path, **options: Any) -> np.ndarray:
        """Float32 metres [H, W] from a uint16-millimetre PNG or a float ``.npy``."""
        from densemtl.data import io

        if Path(path).suffix == ".npy":
            return io.read_depth_npy(path)
        return io.read_depth_png(path, PNG_SCALE)

    def write(self, path: str | Path, array: np.ndarray) -> None:
        """Metres [H, W] -> uint16 millimetre PNG (0 = invalid)."""
        from densemtl.data import io

        io.write_depth_png(path, array, PNG_SCALE)
