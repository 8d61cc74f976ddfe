"""Surface-normal angular-error metrics pooled over the dataset (conventions in ``docs/metrics.md``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from densemtl.metrics._state import count_state, float_state

NORMALS_METRICS = ("normal_mean", "normal_median", "normal_rmse", "normal_11_25", "normal_22_5", "normal_30")


def normal_angles(preds: Tensor, target: Tensor, eps: float = 1e-12) -> Tensor:
    """Angle in degrees between normalised ``preds`` and ``target`` ([B, 3, H, W] -> [B, H, W]).

    Uses ``2 * atan2(|p - g|, |p + g|)`` on unit vectors, which is exact to float precision near
    0° and 180° where ``acos(<p, g>)`` loses accuracy (as InvPT does); the two agree elsewhere.
    """
    p = preds / preds.norm(dim=1, keepdim=True).clamp(min=eps)
    g = target / target.norm(dim=1, keepdim=True).clamp(min=eps)
    return torch.rad2deg(2.0 * torch.atan2((p - g).norm(dim=1), (p + g).norm(dim=1)))


class NormalsMetrics(Metric):
    """Surface-normal angular errors pooled over every valid pixel of the dataset.

    Both prediction and ground truth are L2-normalised, the angle is ``2 * atan2(|p - g|, |p + g|)``
    in degrees (see :func:`normal_angles`), valid pixels are those whose ground truth is not the
    all-zero vector. ``normal_mean``, ``normal_rmse = sqrt(mean angle²)`` and the fractions of
    pixels under 11.25°, 22.5°, 30° (in [0, 1], strict ``<``) are exact. ``normal_median`` is the
    global median (LibMTL, MTL-PyTorch offline; not mtan's mean of per-batch medians) read from a
    histogram of ``bin_width`` degrees kept as a DDP sum-state: the middle element(s) are located
    exactly and reported as their bin centres, so the median is within ``bin_width / 2``
    (0.005° by default) of the exact value; even counts average the two middle elements like
    ``numpy.median``.

    Args:
        bin_width: histogram resolution for the median, degrees (default 0.01 -> 18000 bins).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False
    names = NORMALS_METRICS

    def __init__(self, bin_width: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bin_width = float(bin_width)
        self.num_bins = math.ceil(180.0 / self.bin_width)
        self.add_state("sum_angle", float_state(), dist_reduce_fx="sum")
        self.add_state("sum_angle_sq", float_state(), dist_reduce_fx="sum")
        for name in ("count", "count_11_25", "count_22_5", "count_30"):
            self.add_state(name, count_state(), dist_reduce_fx="sum")
        self.add_state("histogram", torch.zeros(self.num_bins, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of normals [B, 3, H, W] (any scale; zero ground truth = invalid)."""
        if preds.shape != target.shape:
            raise ValueError(
                f"normals predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in size"
            )
        valid = target.abs().sum(dim=1) > 0
        angles = normal_angles(preds.double(), target.double())[valid]
        self.sum_angle += angles.sum()
        self.sum_angle_sq += angles.square().sum()
        self.count += angles.numel()
        self.count_11_25 += (angles < 11.25).sum()
        self.count_22_5 += (angles < 22.5).sum()
        self.count_30 += (angles < 30.0).sum()
        bins = (angles / self.bin_width).long().clamp(0, self.num_bins - 1)
        self.histogram += torch.bincount(bins, minlength=self.num_bins)

    def _median(self) -> Tensor:
        cumulative = self.histogram.cumsum(0)
        n = int(self.count)
        ranks = torch.tensor([(n + 1) // 2, n // 2 + 1], device=cumulative.device)  # 1-based middle ranks
        bins = torch.searchsorted(cumulative, ranks)
        return ((bins.double() + 0.5) * self.bin_width).mean()

    def compute(self) -> dict[str, Tensor]:
        """The six normals metrics (NaN when no valid pixel was seen)."""
        if self.count == 0:
            return {name: torch.tensor(math.nan) for name in NORMALS_METRICS}
        n = self.count.double()
        result = {
            "normal_mean": self.sum_angle / n,
            "normal_median": self._median(),
            "normal_rmse": (self.sum_angle_sq / n).sqrt(),
            "normal_11_25": self.count_11_25 / n,
            "normal_22_5": self.count_22_5 / n,
            "normal_30": self.count_30 / n,
        }
        return {name: value.float() for name, value in result.items()}
