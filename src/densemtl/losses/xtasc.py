"""XTasC-Net losses (the authors' ``module.py``: ``XTaskLoss``; methods.md §3.2).

* :class:`XTasCDepthLoss` (``xtasc_depth``): the direct depth loss, a per-image masked mean then a
  batch mean, with ``kind`` = ``l1`` (default), ``mse``, ``log_l1`` (``log(1 + |e|)``) or
  ``smooth_l1`` (beta 1).
* functions for the ``xtsc`` consistency terms: :func:`masked_l1`, :func:`masked_ssim`,
  :func:`consistency_ce` (hard pseudo-label CE with label smoothing, mean over *all* pixels:
  masked pixels give 0 but stay in the denominator) and :func:`consistency_kl`.

SSIM and KL come in two variants (``VARIANTS``; methods.md §3.2 lists the differences):

* ``authors``: what the authors' ``module.py`` computes, quirks included (SSIM of the masked maps
  without padding, normalised by the mask sum over the full frame; KL on a ``.view(N, H*W, C)`` of
  NCHW logits, which mixes channels and pixels, with smoothing ``eps / (C - 2)``).
* ``corrected`` (default): SSIM of the unmasked maps (reflection-padded, one value per pixel) and
  its masked mean; KL per pixel over the class axis with smoothing ``eps / (C - 1)``. Both mask
  pixels without ground truth. The default keeps the consistency term a mean of per-pixel
  quantities, so its scale does not depend on the mask's size or on the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.losses import LOSSES

_KINDS = ("l1", "mse", "log_l1", "smooth_l1")
VARIANTS = ("authors", "corrected")


def _per_pixel(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    e = pred - target
    if kind == "l1":
        return e.abs()
    if kind == "mse":
        return e.square()
    if kind == "log_l1":
        return torch.log1p(e.abs())
    return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)


def per_image_masked_mean(err: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``mean_b [ sum_px err * m / sum_px m ]``; images without a valid pixel contribute 0."""
    m = valid.reshape(err.shape[0], -1).to(err.dtype)
    e = err.reshape(err.shape[0], -1)
    return ((e * m).sum(1) / m.sum(1).clamp_min(1.0)).mean()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return per_image_masked_mean((pred - target).abs(), valid)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2, pad: bool = True
) -> torch.Tensor:
    """SSIM with 3x3 average pooling (Godard et al. 2017, monodepth's ``SSIM``).

    ``pad=True`` reflection-pads by one pixel (an ``H x W`` map); ``pad=False`` is the authors'
    valid pooling (an ``(H-2) x (W-2)`` map).
    """
    if pad:
        x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sx = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sy = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sxy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sx + sy + c2)
    return num / den


def masked_ssim(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, variant: str = "corrected"
) -> torch.Tensor:
    """``clamp((1 - SSIM) / 2, 0, 1)`` reduced over the valid pixels.

    ``corrected``: SSIM of the unmasked maps (reflection-padded), per-image masked mean, batch mean.
    ``authors``: SSIM of ``pred * m`` and ``target * m`` without padding, the sum of the
    ``(H-2) x (W-2)`` map over the batch divided by ``sum(m)`` over ``H x W`` (masked pixels enter
    the windows as zeros; no mask still gives ``(H-2)(W-2) / (HW)`` of the mean).
    """
    _check_variant(variant)
    if variant == "corrected":
        dissim = ((1 - ssim_map(pred, target)) / 2).clamp(0, 1)
        return per_image_masked_mean(dissim, valid)
    m = valid.reshape(pred.shape[0], 1, *pred.shape[-2:]).to(pred.dtype)
    dissim = ((1 - ssim_map(pred * m, target * m, pad=False)) / 2).clamp(0, 1)
    return dissim.sum() / m.sum()


def smoothed_one_hot(
    labels: torch.Tensor, classes: int, eps: float, others: int | None = None
) -> torch.Tensor:
    """[B, H, W] ids -> [B, C, H, W]: true class ``1 - eps``, others ``eps / others``.

    ``others`` defaults to ``C - 1`` (a distribution); the authors' KL divides by ``C - 2``.
    """
    one_hot = F.one_hot(labels.clamp(0, classes - 1), classes).permute(0, 3, 1, 2).float()
    if eps <= 0:
        return one_hot
    return one_hot * (1 - eps) + (1 - one_hot) * (eps / (others or classes - 1))


def consistency_ce(
    logits: torch.Tensor, pseudo: torch.Tensor, valid: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Label-smoothed CE of ``logits`` to hard ``pseudo`` labels, ``sum(ce * m) / (B*H*W)``."""
    target = smoothed_one_hot(pseudo, logits.shape[1], label_smoothing)
    ce = -(target * F.log_softmax(logits, dim=1)).sum(1)
    return (ce * valid.to(ce.dtype)).sum() / ce.numel()


def consistency_kl(
    logits: torch.Tensor,
    pseudo: torch.Tensor,
    valid: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    variant: str = "corrected",
) -> torch.Tensor:
    """``KL(smoothed one-hot || softmax(logits))`` summed over the valid pixels, divided by ``B``
    (``KLDivLoss(reduction="batchmean")``).

    ``corrected``: softmax over the class axis, smoothing ``eps / (C - 1)``.
    ``authors``: the logits reshaped NCHW -> ``.view(B, H*W, C)`` (memory order kept, so row ``i``
    holds ``C`` consecutive values of the flattened ``C x H x W`` block, not pixel ``i``'s classes),
    softmax over that last axis, smoothing ``eps / (C - 2)`` (the target sums to more than 1 when
    ``eps > 0``). Bit-compatible with the authors' code, quirks included: for reproduction only.
    """
    _check_variant(variant)
    b, c, h, w = logits.shape
    others = c - 2 if variant == "authors" else c - 1
    target = smoothed_one_hot(pseudo, c, label_smoothing, others).permute(0, 2, 3, 1).reshape(b, h * w, c)
    if variant == "authors":
        log_p = F.log_softmax(logits.reshape(b, h * w, c), dim=2)
    else:
        log_p = F.log_softmax(logits, dim=1).permute(0, 2, 3, 1).reshape(b, h * w, c)
    kl = F.kl_div(log_p, target, reduction="none").sum(2)
    if valid is not None:
        kl = kl * valid.reshape(b, h * w).to(kl.dtype)
    return kl.sum() / b


@LOSSES.register("xtasc_depth")
class XTasCDepthLoss(nn.Module):
    """The authors' direct depth loss: per-image masked mean, then the batch mean.

    Args:
        kind: ``l1`` (default, ``--lp L1``), ``mse``, ``log_l1`` (``log(1+|e|)``), ``smooth_l1``.
        use_mask: False reproduces the authors' NYU setting (no mask: every pixel counts).
    """

    def __init__(self, kind: str = "l1", use_mask: bool = True) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"xtasc_depth kind must be one of {_KINDS}, got {kind!r}")
        self.kind, self.use_mask = kind, use_mask

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not self.use_mask:
            valid = torch.ones_like(valid)
        return per_image_masked_mean(_per_pixel(pred, target, self.kind), valid)


@LOSSES.register("xtasc_depth_consistency")
class XTasCDepthConsistency(nn.Module):
    """The ``xtsc`` depth term: s2d(seg) against the detached direct depth (``l1`` or ``ssim``).

    ``variant``: SSIM's ``corrected`` (default) or ``authors`` reduction (:func:`masked_ssim`).
    """

    def __init__(self, kind: str = "l1", variant: str = "corrected") -> None:
        super().__init__()
        if kind not in ("l1", "ssim"):
            raise ValueError(f"xtasc_depth_consistency kind must be l1 or ssim, got {kind!r}")
        _check_variant(variant)
        self.kind, self.variant = kind, variant

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.kind == "ssim":
            return masked_ssim(pred, target, valid, self.variant)
        return masked_l1(pred, target, valid)


@LOSSES.register("xtasc_seg_consistency")
class XTasCSegConsistency(nn.Module):
    """The ``xtsc`` segmentation term: d2s(depth) against the argmax of the detached direct logits.

    ``kind="ce"``: :func:`consistency_ce`; ``"kl"``: :func:`consistency_kl` with ``variant``
    ``corrected`` (default) or ``authors``. Both masked by ``valid``.
    """

    def __init__(self, kind: str = "ce", label_smoothing: float = 0.0, variant: str = "corrected") -> None:
        super().__init__()
        if kind not in ("ce", "kl"):
            raise ValueError(f"xtasc_seg_consistency kind must be ce or kl, got {kind!r}")
        _check_variant(variant)
        self.kind, self.label_smoothing, self.variant = kind, float(label_smoothing), variant

    def forward(self, logits: torch.Tensor, target_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        pseudo = target_logits.argmax(1)
        if self.kind == "kl":
            return consistency_kl(logits, pseudo, valid, self.label_smoothing, self.variant)
        return consistency_ce(logits, pseudo, valid, self.label_smoothing)
