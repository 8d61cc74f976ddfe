"""Surface-normal losses on unit vectors [B, 3, H, W]."""

from __future__ import annotations

import torch
from torch import nn

from densemtl.losses import LOSSES


@LOSSES.register("cosine")
class CosineLoss(nn.Module):
    """Mean ``1 - <p, g>`` over valid pixels (equivalently the negative cosine of mtan, shifted)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not valid.any():
            return pred.sum() * 0.0
        cos = (pred * target).sum(1)
        return (1.0 - cos[valid]).mean()


@LOSSES.register("normals_l1")
class NormalsL1(nn.Module):
    """Mean L1 distance between unit vectors (Vandenhende et al.'s normals loss)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not valid.any():
            return pred.sum() * 0.0
        return (pred - target).abs().sum(1)[valid].mean()
