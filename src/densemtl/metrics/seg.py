"""Semantic-segmentation metrics: mIoU and pixel accuracy from a dataset-level confusion matrix.

Conventions (ignore label, absent classes, where peers differ) in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric

from densemtl.data.sample import IGNORE_INDEX

SEMSEG_METRICS = ("miou", "pixel_acc")
#: :class:`SegmentationMetrics` ``absent_policy`` values.
ABSENT_POLICIES = ("nan", "zero", "propagate")


def _as_class_ids(preds: Tensor, target: Tensor) -> Tensor:
    ids = preds.argmax(dim=1) if preds.dim() == target.dim() + 1 else preds.long()
    if ids.shape != target.shape:
        raise ValueError(
            f"semseg predictions must be logits [B, C, H, W] or class ids [B, H, W] matching the target "
            f"{tuple(target.shape)}, got {tuple(preds.shape)}"
        )
    return ids


def _bad_ids(ids: Tensor) -> list[int]:
    return torch.unique(ids).tolist()[:10]


class SegmentationMetrics(Metric):
    """mIoU and pixel accuracy from a dataset-level confusion matrix.

    One ``C x C`` confusion matrix (rows = ground truth, columns = prediction) is accumulated over
    the whole evaluation set with ``bincount(C * g + p)`` on pixels whose label is not
    ``ignore_index`` (as mtan / LibMTL / MTL-PyTorch do, not per-image averages).
    ``IoU_c = CM_cc / (rowsum_c + colsum_c - CM_cc)``, ``pixel_acc = trace(CM) / sum(CM)``.

    Args:
        num_classes: number of classes ``C``.
        ignore_index: label value excluded from every count.
        absent_policy: what ``IoU_c`` is for a class absent from both prediction and ground truth
            (empty union): ``"nan"`` skips it in the mean (nanmean; DenseTorch, torchmetrics),
            ``"zero"`` counts it as 0 (MTL-PyTorch / InvPT), ``"propagate"`` takes the plain mean,
            NaN when any class is absent (mtan / LibMTL). Identical on full NYUv2 test sets.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    names = SEMSEG_METRICS

    confmat: Tensor

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        absent_policy: Literal["nan", "zero", "propagate"] = "nan",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if absent_policy not in ABSENT_POLICIES:
            raise ValueError(f"absent_policy must be one of {ABSENT_POLICIES}, got {absent_policy!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.absent_policy = absent_policy
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch: ``preds`` logits [B, C, H, W] (argmax taken) or ids [B, H, W]; ``target`` [B, H, W].

        Raises:
            ValueError: a label (other than ``ignore_index``) or a predicted id is outside ``0..C-1``.
        """
        ids = _as_class_ids(preds, target)
        target = target.long()
        valid = target != self.ignore_index
        g, p = target[valid], ids[valid]
        num = self.num_classes
        bad_g = (g < 0) | (g >= num)
        if bad_g.any():
            raise ValueError(
                f"label ids {_bad_ids(g[bad_g])} are outside 0..{num - 1} "
                f"and are not the ignore index {self.ignore_index}"
            )
        bad_p = (p < 0) | (p >= num)
        if bad_p.any():
            raise ValueError(f"predicted class ids {_bad_ids(p[bad_p])} are outside 0..{num - 1}")
        self.confmat += torch.bincount(g * num + p, minlength=num * num).reshape(num, num)

    def _per_class(self, confmat: Tensor) -> Tensor:
        cm = confmat.double()
        tp = cm.diagonal()
        union = cm.sum(0) + cm.sum(1) - tp
        iou = tp / union  # 0/0 = NaN for a class absent from both prediction and ground truth
        if self.absent_policy == "zero":
            iou = torch.nan_to_num(iou, nan=0.0)
        return iou

    def compute_per_class(self) -> Tensor:
        """IoU of every class (float64 [C]); an absent class is 0 under ``absent_policy="zero"``, else NaN.

        Synchronises the confusion matrix across DDP ranks like :meth:`compute` (call it on every rank).
        """
        if self._is_synced:
            return self._per_class(self.confmat)
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, process_group=self.process_group):
            return self._per_class(self.confmat)

    def compute(self) -> dict[str, Tensor]:
        """``miou`` (mean IoU under ``absent_policy``) and ``pixel_acc`` (NaN if nothing was counted)."""
        total = self.confmat.sum()
        if total == 0:
            return {"miou": torch.tensor(math.nan), "pixel_acc": torch.tensor(math.nan)}
        iou = self._per_class(self.confmat)
        miou = iou.nanmean() if self.absent_policy == "nan" else iou.mean()
        acc = self.confmat.diagonal().sum().double() / total
        return {"miou": miou.float(), "pixel_acc": acc.float()}
