"""XTasC-Net's evaluation convention (akarimoon/xtask_mt ``module.py``; methods.md §3.4), to set our
numbers beside the authors' README tables. Dataset-level metrics stay in :mod:`densemtl.metrics`.

* :class:`PerImageSegmentationMetrics`: ``miou_per_image`` = mean over images of the mean IoU over
  the classes present in prediction or ground truth of that image (labelled pixels only);
  ``pixel_acc_per_image`` = mean over images of the pixel accuracy.
* :class:`PerImageDepthMetrics`: ``abs_err_per_image`` = mean over images of ``mean|p - t|`` and
  ``abs_rel_per_image`` of ``mean |p - t| / t`` over ``t > 0``, in the target's own units
  (Cityscapes: disparity / 256 as the authors, so "Abs Rel" is around 20).

Sum states (``dist_reduce_fx="sum"``), so DDP gives the single-process result. Both take the
constructor arguments of their dataset-level counterparts (channels first, extra options ignored)
so they can be swapped into :class:`densemtl.metrics.MultiTaskMetrics`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from densemtl.data.sample import IGNORE_INDEX


class PerImageSegmentationMetrics(Metric):
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.add_state("sum_miou", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_acc", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        ids = preds.argmax(1) if preds.dim() == 4 else preds
        c = self.num_classes
        for p, t in zip(ids, target):
            valid = t != IGNORE_INDEX
            if not bool(valid.any()):
                continue
            p, t = p[valid].long(), t[valid].long()
            confmat = torch.bincount(t * c + p, minlength=c * c).view(c, c).double()
            tp = confmat.diag()
            union = confmat.sum(0) + confmat.sum(1) - tp
            present = union > 0
            self.sum_miou += (tp[present] / union[present]).mean()
            self.sum_acc += tp.sum() / confmat.sum()
            self.images += 1

    def compute(self) -> dict[str, Tensor]:
        n = self.images.clamp_min(1)
        nan = torch.tensor(float("nan"))
        if self.images == 0:
            return {"miou_per_image": nan, "pixel_acc_per_image": nan}
        return {
            "miou_per_image": (self.sum_miou / n).float(),
            "pixel_acc_per_image": (self.sum_acc / n).float(),
        }


class PerImageDepthMetrics(Metric):
    full_state_update = False

    def __init__(self, channels: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.add_state("sum_abs", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_rel", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        for p, t in zip(preds, target):
            valid = t > 0
            if not bool(valid.any()):
                continue
            p, t = p[valid].double(), t[valid].double()
            err = (p - t).abs()
            self.sum_abs += err.mean()
            self.sum_rel += (err / t).mean()
            self.images += 1

    def compute(self) -> dict[str, Tensor]:
        if self.images == 0:
            nan = torch.tensor(float("nan"))
            return {"abs_err_per_image": nan, "abs_rel_per_image": nan}
        return {
            "abs_err_per_image": (self.sum_abs / self.images).float(),
            "abs_rel_per_image": (self.sum_rel / self.images).float(),
        }
