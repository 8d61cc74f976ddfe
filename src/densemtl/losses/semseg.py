"""Segmentation losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.data.sample import IGNORE_INDEX
from densemtl.losses import LOSSES


@LOSSES.register("cross_entropy")
class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy averaged over labelled pixels (ignore index 255).

    Args:
        class_weights: optional per-class weights (e.g. inverse median frequency,
            Eigen & Fergus ICCV 2015); the mean is then weighted as in ``F.cross_entropy``.
        label_smoothing: as in ``F.cross_entropy``.
    """

    def __init__(self, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = target.masked_fill(~valid, IGNORE_INDEX)
        if not valid.any():
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits, target, weight=self.class_weights, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )
