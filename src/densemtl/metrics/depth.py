"""Monocular-depth metrics (Eigen, Puhrsch & Fergus, NIPS 2014) and the Eigen evaluation crop.

Conventions (valid range, crop, pixel pooling vs per-image averaging) in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from densemtl.metrics._state import count_state, float_state

DEPTH_METRICS = (
    "abs_err",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)

#: How :class:`DepthMetrics` treats non-positive predictions (``clamp``).
PREDICTION_CLAMPS = ("logs", "all", "abs")

# Eigen et al. (NIPS 2014) evaluation crop on 480 x 640 NYUv2 frames: rows 45:471, cols 41:601.
_EIGEN_CROP = (45 / 480, 471 / 480, 41 / 640, 601 / 640)


def eigen_crop_mask(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Boolean [H, W] mask of the Eigen et al. (2014) crop, scaled from 480 x 640 (bounds rounded half up)."""
    top, bottom, left, right = (int(f * n + 0.5) for f, n in zip(_EIGEN_CROP, (height, height, width, width)))
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[top:bottom, left:right] = True
    return mask


class DepthMetrics(Metric):
    """The standard monocular-depth metrics (Eigen, Puhrsch & Fergus, NIPS 2014).

    With ``e = p - g`` and ``d = ln p - ln g`` over valid pixels:
    ``abs_err = mean|e|``, ``abs_rel = mean|e|/g`` (mtan's "RelErr"), ``sq_rel = mean e²/g``,
    ``rmse = sqrt(mean e²)``, ``rmse_log = sqrt(mean d²)``, ``log10 = mean|log10 p - log10 g|``,
    ``silog = 100 * sqrt(mean d² - (mean d)²)`` (MDE-Toolbox; mmseg uses ``sqrt(mean d² - 0.5 (mean d)²)``),
    ``delta_k = fraction of max(p/g, g/p) < 1.25^k`` (in [0, 1]).

    Valid pixels: ``g > 0`` and ``g > min_depth`` and ``g < max_depth`` (when given) and, with
    ``eigen_crop``, inside the Eigen crop. Non-positive predictions (``clamp``): ``logs`` (default)
    clamps them to ``eps`` only where a log or a ratio ``g/p`` is taken (``rmse_log``, ``log10``,
    ``silog``, ``delta_k``) and the linear errors use the raw prediction, as mtan / LibMTL do;
    ``all`` clamps before every metric, RMSE included (MTL-PyTorch / InvPT); ``abs`` takes ``|p|``
    first (DenseTorch). They differ only where a prediction is ``<= 0``.

    Averaging: by default pixels are pooled over the whole dataset (every valid pixel weighs the
    same; MTL-PyTorch, InvPT, LibMTL); ``per_image=True`` computes each metric per image and
    averages over images (MDE-Toolbox, mmseg), e.g. ``rmse`` is then the mean of per-image RMSEs;
    ``per_batch=True`` pools each :meth:`update` call's pixels and averages over calls (mtan's
    mean of per-batch means, which depends on its batch size). Images (batches) with no valid
    pixel contribute nothing. Sums are kept in float64.

    Args:
        min_depth: exclude ground truth ``<= min_depth`` metres (None: only ``g > 0``).
        max_depth: exclude ground truth ``>= max_depth`` metres (None: no cap).
        eigen_crop: evaluate only inside the Eigen crop (rows 45:471, cols 41:601 of 480 x 640,
            scaled proportionally, bounds rounded half up, for other sizes).
        per_image: per-image averaging instead of pixel pooling.
        per_batch: per-update-call averaging instead of pixel pooling (not with ``per_image``).
        eps: lower clamp of predictions before logs and ratios (MTL-PyTorch / InvPT use 1e-9).
        clamp: ``logs`` (default), ``all`` or ``abs`` (see above).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False
    names = DEPTH_METRICS

    # state name -> per-pixel quantity summed (pooled mode); per-image mode keeps one state per metric.
    _POOLED = (
        "abs",
        "abs_rel",
        "sq_rel",
        "sq",
        "sq_log",
        "abs_log10",
        "d",
        "d2",
        "delta1",
        "delta2",
        "delta3",
    )

    def __init__(
        self,
        min_depth: float | None = None,
        max_depth: float | None = None,
        eigen_crop: bool = False,
        per_image: bool = False,
        eps: float = 1e-9,
        clamp: str = "logs",
        per_batch: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if clamp not in PREDICTION_CLAMPS:
            raise ValueError(f"depth metric clamp must be one of {PREDICTION_CLAMPS}, got {clamp!r}")
        if per_image and per_batch:
            raise ValueError("depth metrics: per_image and per_batch exclude each other")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.eigen_crop = eigen_crop
        self.per_image = per_image
        self.per_batch = per_batch
        self.eps = eps
        self.clamp = clamp
        for name in DEPTH_METRICS if per_image or per_batch else self._POOLED:
            self.add_state(f"sum_{name}", float_state(), dist_reduce_fx="sum")
        self.add_state("count", count_state(), dist_reduce_fx="sum")  # valid pixels, images or batches

    def valid_mask(self, target: Tensor) -> Tensor:
        """Valid pixels of ``target`` [B, H, W] under this metric's range and crop."""
        valid = target > 0
        if self.min_depth is not None:
            valid &= target > self.min_depth
        if self.max_depth is not None:
            valid &= target < self.max_depth
        if self.eigen_crop:
            valid &= eigen_crop_mask(*target.shape[-2:], device=target.device)
        return valid

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of depth maps in metres, [B, 1, H, W] or [B, H, W] (same size for both)."""
        preds = preds.squeeze(1) if preds.dim() == 4 else preds
        target = target.squeeze(1) if target.dim() == 4 else target
        if preds.shape != target.shape:
            raise ValueError(
                f"depth predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in size"
            )
        valid = self.valid_mask(target)
        p = preds.double()
        if self.clamp == "all":
            p = p.clamp(min=self.eps)
        elif self.clamp == "abs":
            p = p.abs()
        g = target.double()
        p_pos = p.clamp(min=self.eps)
        g_pos = g.clamp(min=self.eps)  # only affects invalid pixels, keeps their terms finite
        err = p - g
        d = torch.log(p_pos) - torch.log(g_pos)
        ratio = torch.maximum(p_pos / g_pos, g_pos / p_pos)
        terms = {
            "abs": err.abs(),
            "abs_rel": err.abs() / g_pos,
            "sq_rel": err.square() / g_pos,
            "sq": err.square(),
            "sq_log": d.square(),
            "abs_log10": d.abs() / math.log(10.0),
            "d": d,
            "d2": d.square(),
            **{f"delta{k}": (ratio < 1.25**k).double() for k in (1, 2, 3)},
        }
        w = valid.double()
        if not (self.per_image or self.per_batch):
            for name, value in terms.items():
                setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + (value * w).sum())
            self.count += valid.sum()
            return
        # one row per image, or one row for the whole batch
        rows = (lambda t: t.reshape(1, -1)) if self.per_batch else (lambda t: t.flatten(1))
        n = rows(w).sum(1)
        keep = n > 0
        n = n[keep]
        mean = {name: rows(value * w).sum(1)[keep] / n for name, value in terms.items()}
        per_image = _depth_from_means(mean)
        for name in DEPTH_METRICS:
            setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + per_image[name].sum())
        self.count += keep.sum()

    def compute(self) -> dict[str, Tensor]:
        """The ten depth metrics (NaN when no valid pixel / image was seen)."""
        if self.count == 0:
            return {name: torch.tensor(math.nan) for name in DEPTH_METRICS}
        n = self.count.double()
        if self.per_image or self.per_batch:
            return {name: (getattr(self, f"sum_{name}") / n).float() for name in DEPTH_METRICS}
        mean = {name: getattr(self, f"sum_{name}") / n for name in self._POOLED}
        return {name: value.float() for name, value in _depth_from_means(mean).items()}


def _depth_from_means(mean: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Depth metrics from the means of the per-pixel terms (over a dataset, or per image)."""
    variance = (mean["d2"] - mean["d"].square()).clamp(min=0.0)
    return {
        "abs_err": mean["abs"],
        "abs_rel": mean["abs_rel"],
        "sq_rel": mean["sq_rel"],
        "rmse": mean["sq"].sqrt(),
        "rmse_log": mean["sq_log"].sqrt(),
        "log10": mean["abs_log10"],
        "silog": 100.0 * variance.sqrt(),
        "delta1": mean["delta1"],
        "delta2": mean["delta2"],
        "delta3": mean["delta3"],
    }
