"""Stereo-disparity metrics, and depth metrics through the camera (``depth = baseline * fx / disparity``).

The ``disparity`` task holds stereo disparity in pixels at the current image size (Cityscapes'
``disparity/*.png``, Cordts et al., CVPR 2016), 0 = invalid. :class:`DisparityMetrics` scores it

* in its own units, as XTasC-Net reports it (Nakano, Chen & Demachi, arXiv 2111.14122; the
  authors' ``module.py``, methods.md §3.4), over ``g > 0``: ``disp_abs_err = mean|p - g|``,
  ``disp_abs_rel = mean |p - g| / g``, and ``disp_rmse = sqrt(mean (p - g)²)``;
* in metres, for the samples whose meta carries the camera (``meta["baseline"]`` in metres and
  ``meta["intrinsics"]`` with fx in pixels at the current size): prediction and ground truth
  become ``z = baseline * fx / d`` (pinhole stereo; the Cityscapes ``camera/*.json`` values) and
  go through :class:`~densemtl.metrics.depth.DepthMetrics`, reported as ``cam_<depth name>``
  (``cam_abs_err`` .. ``cam_delta3``), so every metric name still belongs to one task.

Both parts reuse :class:`DepthMetrics` (the same formulas, sum states and averaging), so they
sync under DDP exactly like it; the wrapper itself keeps no state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.wrappers.abstract import WrapperMetric

from densemtl.metrics.depth import DEPTH_METRICS, DepthMetrics

#: disparity-space metric name -> the :class:`DepthMetrics` name it is computed as
_DISPARITY_FROM_DEPTH = {"disp_abs_err": "abs_err", "disp_abs_rel": "abs_rel", "disp_rmse": "rmse"}
DISPARITY_METRICS = tuple(_DISPARITY_FROM_DEPTH)
CAMERA_DEPTH_METRICS = tuple(f"cam_{name}" for name in DEPTH_METRICS)


def camera_baseline_fx(metas: Sequence[Mapping[str, Any]]) -> Tensor:
    """``baseline * fx`` (metres x pixels, float64 [B]) of each sample's meta; NaN without a camera."""
    values = []
    for meta in metas:
        baseline, intrinsics = meta.get("baseline"), meta.get("intrinsics")
        known = baseline is not None and intrinsics is not None
        values.append(float(baseline) * float(intrinsics[0]) if known else math.nan)
    return torch.tensor(values, dtype=torch.float64)


def depth_from_disparity(disparity: Tensor, baseline_fx: Tensor) -> Tensor:
    """``baseline_fx / disparity`` per sample (float64; ``baseline_fx`` [B] against [B, ...]).

    Disparity ``<= 0`` gives 0, so an invalid ground-truth pixel stays invalid.
    """
    bf = baseline_fx.to(disparity.device, torch.float64).view(-1, *([1] * (disparity.dim() - 1)))
    d = disparity.double()
    positive = d > 0
    return torch.where(positive, bf / torch.where(positive, d, 1.0), 0.0)


class DisparityMetrics(WrapperMetric):
    """Disparity errors, plus depth errors in metres when the camera is known (module docstring).

    Args:
        per_image: per-image averaging instead of pixel pooling, for both parts (XTasC-Net
            averages per image: ``disp_abs_err`` then equals its "Abs", ``disp_abs_rel`` its
            "Abs Rel" in the target's units).
        camera_depth: also report the ``cam_*`` depth metrics (needs ``baseline_fx`` in
            :meth:`update`; NaN for a set without any camera).
        min_depth, max_depth, eigen_crop: the valid range / crop of the ``cam_*`` depth metrics
            (see :class:`DepthMetrics`; applied to the ground-truth depth ``baseline * fx / g``).
        eps: smallest predicted disparity (pixels) used for the depth of a prediction, so a
            non-positive prediction counts as very far rather than dividing by zero.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(
        self,
        per_image: bool = False,
        camera_depth: bool = True,
        min_depth: float | None = None,
        max_depth: float | None = None,
        eigen_crop: bool = False,
        eps: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.disparity = DepthMetrics(per_image=per_image)
        self.depth = DepthMetrics(min_depth, max_depth, eigen_crop, per_image) if camera_depth else None
        self.eps = eps
        self.names = DISPARITY_METRICS + (CAMERA_DEPTH_METRICS if camera_depth else ())

    @staticmethod
    def inputs_from_batch(batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Per-sample extra inputs of :meth:`update` taken from a collated batch (its ``meta`` list)."""
        metas = batch.get("meta")
        return {"baseline_fx": camera_baseline_fx(metas)} if metas else {}

    def update(self, preds: Tensor, target: Tensor, baseline_fx: Tensor | None = None) -> None:
        """Add a batch of disparities [B, 1, H, W] or [B, H, W] (pixels, 0 = invalid ground truth).

        ``baseline_fx``: [B] ``baseline * fx`` per sample (NaN: no camera, no depth update).
        """
        self.disparity.update(preds, target)
        if self.depth is None or baseline_fx is None:
            return
        known = torch.isfinite(baseline_fx)
        if not bool(known.any()):
            return
        if not bool(known.all()):
            preds, target = preds[known.to(preds.device)], target[known.to(target.device)]
        bf = baseline_fx[known]
        self.depth.update(
            depth_from_disparity(preds.clamp(min=self.eps), bf), depth_from_disparity(target, bf)
        )

    def compute(self) -> dict[str, Tensor]:
        """The three disparity metrics, then the ``cam_*`` depth metrics (NaN where nothing was seen)."""
        disparity = self.disparity.compute()
        result = {name: disparity[source] for name, source in _DISPARITY_FROM_DEPTH.items()}
        if self.depth is not None:
            result.update({f"cam_{name}": value for name, value in self.depth.compute().items()})
        return result

    def reset(self) -> None:
        """Reset both parts."""
        super().reset()
        for part in (self.disparity, self.depth):
            if part is not None:
                part.reset()

    def merge_state(self, incoming_state: DisparityMetrics) -> None:  # type: ignore[override]
        """Add another instance's states (what DDP's all-reduce of the sum states does)."""
        self.disparity.merge_state(incoming_state.disparity)
        if self.depth is not None and incoming_state.depth is not None:
            self.depth.merge_state(incoming_state.depth)
