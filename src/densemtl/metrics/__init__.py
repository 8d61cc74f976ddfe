"""Dataset-level metrics for semantic segmentation, depth, surface normals and disparity, and Δ_MTL.

Every metric is a :class:`torchmetrics.Metric` whose states are *sums* (``dist_reduce_fx="sum"``),
so under DDP the states of all ranks are added before :meth:`compute` and the result equals a
single-process run over the whole evaluation set (no ``cat`` states, no per-rank averaging).
The conventions (valid masks, averaging, where peers differ) are documented in ``docs/metrics.md``.

Metric names (the keys of :meth:`MultiTaskMetrics.compute` and of ``densemtl evaluate``'s JSON):

* semseg: ``miou``, ``pixel_acc``
* depth: ``abs_err``, ``abs_rel``, ``sq_rel``, ``rmse``, ``rmse_log``, ``log10``, ``silog``,
  ``delta1``, ``delta2``, ``delta3``
* normals: ``normal_mean``, ``normal_median``, ``normal_rmse``, ``normal_11_25``, ``normal_22_5``,
  ``normal_30``
* disparity: ``disp_abs_err``, ``disp_abs_rel``, ``disp_rmse`` and, through the camera, the depth
  names prefixed ``cam_`` (``cam_abs_err`` .. ``cam_delta3``)

One module per task (``seg``, ``depth``, ``normals``, ``disparity``), ``multitask`` for
:class:`MultiTaskMetrics` and Δ_MTL, ``xtasc`` for XTasC-Net's per-image conventions.

Example::

    metrics = MultiTaskMetrics({"semseg": 13, "depth": 1})
    metrics.update(model(batch["image"]), batch)   # counts only samples with batch["has_gt"][task]
    metrics.compute()                              # {"miou": 0.41, "pixel_acc": 0.66, "abs_err": ...}
"""

from __future__ import annotations

from densemtl.metrics.depth import DepthMetrics, eigen_crop_mask
from densemtl.metrics.disparity import DisparityMetrics
from densemtl.metrics.multitask import (
    HIGHER_IS_BETTER,
    METRIC_TASK,
    PRIMARY_METRIC,
    MultiTaskMetrics,
    delta_mtl,
)
from densemtl.metrics.normals import NormalsMetrics, normal_angles
from densemtl.metrics.seg import SegmentationMetrics

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_TASK",
    "PRIMARY_METRIC",
    "DepthMetrics",
    "DisparityMetrics",
    "MultiTaskMetrics",
    "NormalsMetrics",
    "SegmentationMetrics",
    "delta_mtl",
    "eigen_crop_mask",
    "normal_angles",
]
