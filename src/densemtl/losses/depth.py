"""Depth losses on metric depth (metres) over valid pixels."""

from __future__ import annotations

import torch
from torch import nn

from densemtl.losses import LOSSES

_EPS = 1e-6


def _select(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    mask = valid.unsqueeze(1) if pred.dim() == 4 else valid
    return pred[mask], target[mask]


@LOSSES.register("l1")
class MaskedL1(nn.Module):
    """Mean absolute error over valid pixels (mtan, Vandenhende et al.)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p, g = _select(pred, target, valid)
        return (p - g).abs().mean() if p.numel() else pred.sum() * 0.0


@LOSSES.register("log_l1")
class LogL1(nn.Module):
    """Mean |log p - log g|: a relative error, the natural loss for abs rel and delta metrics."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p, g = _select(pred, target, valid)
        if not p.numel():
            return pred.sum() * 0.0
        return (p.clamp_min(_EPS).log() - g.log()).abs().mean()


@LOSSES.register("berhu")
class BerHu(nn.Module):
    """Reverse Huber loss (Laina et al., 3DV 2016, Eq. 2) as DenseTorch implements it.

    ``c = threshold * max|e|`` over the batch's valid pixels; |e| <= c is L1, above it
    ``(e^2 + c^2) / (2c)``.
    """

    def __init__(self, threshold: float = 0.2) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p, g = _select(pred, target, valid)
        if not p.numel():
            return pred.sum() * 0.0
        err = (p - g).abs()
        c = (self.threshold * err.max()).detach().clamp_min(_EPS)
        return torch.where(err <= c, err, (err**2 + c**2) / (2 * c)).mean()


@LOSSES.register("silog")
class ScaleInvariantLog(nn.Module):
    """Scale-invariant log loss (Eigen et al., NeurIPS 2014, Eq. 4), in the BTS form
    ``scale * sqrt(mean d^2 - lam * mean(d)^2)``, d = log p - log g, pooled over the batch."""

    def __init__(self, lam: float = 0.85, scale: float = 10.0) -> None:
        super().__init__()
        self.lam, self.scale = lam, scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p, g = _select(pred, target, valid)
        if not p.numel():
            return pred.sum() * 0.0
        d = p.clamp_min(_EPS).log() - g.log()
        return self.scale * torch.sqrt((d**2).mean() - self.lam * d.mean() ** 2 + _EPS)
