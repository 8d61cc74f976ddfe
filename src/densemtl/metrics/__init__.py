"""Dataset-level metrics for semantic segmentation, depth and surface normals, and Δ_MTL.

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

Example::

    metrics = MultiTaskMetrics({"semseg": 13, "depth": 1})
    metrics.update(model(batch["image"]), batch)   # counts only samples with batch["has_gt"][task]
    metrics.compute()                              # {"miou": 0.41, "pixel_acc": 0.66, "abs_err": ...}
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from densemtl.data.sample import IGNORE_INDEX

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_TASK",
    "PRIMARY_METRIC",
    "TASK_METRICS",
    "DepthMetrics",
    "MultiTaskMetrics",
    "NormalsMetrics",
    "SegmentationMetrics",
    "delta_mtl",
    "eigen_crop_mask",
    "normal_angles",
]

SEMSEG_METRICS = ("miou", "pixel_acc")
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
NORMALS_METRICS = ("normal_mean", "normal_median", "normal_rmse", "normal_11_25", "normal_22_5", "normal_30")

#: Direction of every metric name: True if a larger value is better (sign of its term in Δ_MTL).
HIGHER_IS_BETTER: dict[str, bool] = {
    "miou": True,
    "pixel_acc": True,
    "abs_err": False,
    "abs_rel": False,
    "sq_rel": False,
    "rmse": False,
    "rmse_log": False,
    "log10": False,
    "silog": False,
    "delta1": True,
    "delta2": True,
    "delta3": True,
    "normal_mean": False,
    "normal_median": False,
    "normal_rmse": False,
    "normal_11_25": True,
    "normal_22_5": True,
    "normal_30": True,
}

#: The task each metric name belongs to (groups metrics for Δ_MTL's ``task_mean`` mode).
METRIC_TASK: dict[str, str] = {
    **dict.fromkeys(SEMSEG_METRICS, "semseg"),
    **dict.fromkeys(DEPTH_METRICS, "depth"),
    **dict.fromkeys(NORMALS_METRICS, "normals"),
}

#: One metric per task for Maninis et al.'s Δ_m (as in Vandenhende et al.'s MTL-PyTorch).
PRIMARY_METRIC: dict[str, str] = {"semseg": "miou", "depth": "rmse", "normals": "normal_mean"}

# Eigen et al. (NIPS 2014) evaluation crop on 480 x 640 NYUv2 frames: rows 45:471, cols 41:601.
_EIGEN_CROP = (45 / 480, 471 / 480, 41 / 640, 601 / 640)


def _float_state() -> Tensor:
    return torch.tensor(0.0, dtype=torch.float64)


def _count_state() -> Tensor:
    return torch.tensor(0, dtype=torch.long)


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
            ``"zero"`` counts it as 0 (MTL-PyTorch / InvPT). Identical on full NYUv2 test sets.
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
        absent_policy: Literal["nan", "zero"] = "nan",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if absent_policy not in ("nan", "zero"):
            raise ValueError(f"absent_policy must be 'nan' or 'zero', got {absent_policy!r}")
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
        """IoU of every class (float64 [C]); an absent class is NaN or 0 according to ``absent_policy``.

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
    ``eigen_crop``, inside the Eigen crop. Predictions are clamped to ``eps`` only where a log or a
    ratio ``g/p`` is taken (``rmse_log``, ``log10``, ``silog``, ``delta_k``); the linear errors use
    the raw prediction, as mtan / LibMTL do.

    Averaging: by default pixels are pooled over the whole dataset (every valid pixel weighs the
    same; MTL-PyTorch, InvPT, LibMTL); ``per_image=True`` computes each metric per image and
    averages over images (MDE-Toolbox, mmseg), e.g. ``rmse`` is then the mean of per-image RMSEs.
    Images with no valid pixel contribute nothing in either mode. Sums are kept in float64.

    Args:
        min_depth: exclude ground truth ``<= min_depth`` metres (None: only ``g > 0``).
        max_depth: exclude ground truth ``>= max_depth`` metres (None: no cap).
        eigen_crop: evaluate only inside the Eigen crop (rows 45:471, cols 41:601 of 480 x 640,
            scaled proportionally, bounds rounded half up, for other sizes).
        per_image: per-image averaging instead of pixel pooling.
        eps: lower clamp of predictions before logs and ratios (MTL-PyTorch / InvPT use 1e-9).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.eigen_crop = eigen_crop
        self.per_image = per_image
        self.eps = eps
        for name in DEPTH_METRICS if per_image else self._POOLED:
            self.add_state(f"sum_{name}", _float_state(), dist_reduce_fx="sum")
        self.add_state("count", _count_state(), dist_reduce_fx="sum")  # valid pixels, or images

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
        if not self.per_image:
            for name, value in terms.items():
                setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + (value * w).sum())
            self.count += valid.sum()
            return
        n = w.flatten(1).sum(1)
        keep = n > 0
        n = n[keep]
        mean = {name: (value * w).flatten(1).sum(1)[keep] / n for name, value in terms.items()}
        per_image = _depth_from_means(mean)
        for name in DEPTH_METRICS:
            setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + per_image[name].sum())
        self.count += keep.sum()

    def compute(self) -> dict[str, Tensor]:
        """The ten depth metrics (NaN when no valid pixel / image was seen)."""
        if self.count == 0:
            return {name: torch.tensor(math.nan) for name in DEPTH_METRICS}
        n = self.count.double()
        if self.per_image:
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
        self.add_state("sum_angle", _float_state(), dist_reduce_fx="sum")
        self.add_state("sum_angle_sq", _float_state(), dist_reduce_fx="sum")
        for name in ("count", "count_11_25", "count_22_5", "count_30"):
            self.add_state(name, _count_state(), dist_reduce_fx="sum")
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


def _semseg_metric(channels: int, per_image: bool = False, **options: Any) -> Metric:
    if per_image:  # XTasC-Net authors' convention: mIoU per image, then averaged (keys *_per_image)
        from densemtl.metrics.xtasc import PerImageSegmentationMetrics

        return PerImageSegmentationMetrics(channels, **options)
    return SegmentationMetrics(num_classes=channels, **options)


def _depth_metric(channels: int, **options: Any) -> Metric:
    return DepthMetrics(**options)


def _normals_metric(channels: int, **options: Any) -> Metric:
    return NormalsMetrics(**options)


#: task -> factory(channels, **options) building its metric. A new task adds one line here.
TASK_METRICS: dict[str, Callable[..., Metric]] = {
    "semseg": _semseg_metric,
    "depth": _depth_metric,
    "normals": _normals_metric,
}


class MultiTaskMetrics(nn.Module):
    """One metric per task, updated only on samples that carry ground truth for that task.

    An ``nn.Module`` (metrics in an ``nn.ModuleDict``) so it follows the LightningModule to its
    device; each task metric syncs its own sum-states under DDP.

    Args:
        tasks: ``{task: output channels}`` as given to the model (semseg channels = classes).
        options: per-task keyword arguments for the metric, e.g.
            ``{"semseg": {"absent_policy": "zero"}, "depth": {"max_depth": 10.0}}``.
    """

    def __init__(
        self, tasks: Mapping[str, int], options: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__()
        options = options or {}
        unknown = sorted(set(tasks) - set(TASK_METRICS))
        if unknown:
            raise ValueError(f"no metric for task(s) {unknown}; known: {sorted(TASK_METRICS)}")
        self.metrics = nn.ModuleDict(
            {
                task: TASK_METRICS[task](channels, **dict(options.get(task, {})))
                for task, channels in tasks.items()
            }
        )

    def update(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        """Update each task's metric on the samples with ``batch["has_gt"][task]`` True.

        Pseudo-labelled or unlabelled samples (``has_gt`` False) never count. A batch without a
        ``has_gt`` entry for a task (not built by :func:`~densemtl.data.sample.collate`) counts all.
        """
        has_gt = batch.get("has_gt", {})
        for task, metric in self.metrics.items():
            keep = has_gt.get(task)
            if keep is not None and not bool(keep.any()):
                continue  # outputs[task] may be absent when no sample of the batch has this label
            preds, target = outputs[task].detach(), batch[task]
            if keep is not None and not bool(keep.all()):
                keep = keep.to(dtype=torch.bool)
                preds, target = preds[keep.to(preds.device)], target[keep.to(target.device)]
            metric.update(preds, target)

    def compute(self) -> dict[str, float]:
        """One flat ``{metric name: float}`` over all tasks (names are unique; NaN for a task never updated)."""
        result: dict[str, float] = {}
        for metric in self.metrics.values():
            # Always compute (it all-reduces the states: every DDP rank must take part, even one
            # that saw no labelled sample); a never-updated metric gives NaN, without the warning.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*was called before the ``update`` method")
                values = metric.compute()
            result.update({name: float(value) for name, value in values.items()})
        return result

    def reset(self) -> None:
        """Reset every task metric (start of an evaluation epoch)."""
        for metric in self.metrics.values():
            metric.reset()


def delta_mtl(
    results: Mapping[str, float],
    baselines: Mapping[str, float],
    mode: Literal["maninis", "task_mean", "metric_mean"] = "maninis",
    primary: Mapping[str, str] | None = None,
    metrics: Iterable[str] | None = None,
) -> float:
    """Relative multi-task performance Δ_MTL of ``results`` over ``baselines``, as a fraction.

    Each metric contributes ``s_k (M_k - B_k) / B_k`` with ``s_k = +1`` if higher is better and
    ``-1`` otherwise (Maninis, Radosavovic & Kokkinos, CVPR 2019, "Attentive Single-Tasking of
    Multiple Tasks", Eq. 4; Vandenhende et al., TPAMI 2021). Multiply by 100 for percent.

    Modes (see docs/metrics.md):

    * ``"maninis"`` (default): one metric per task (``primary``, default semseg ``miou``, depth
      ``rmse``, normals ``normal_mean``), averaged over tasks (MTL-PyTorch, auto-lambda).
    * ``"task_mean"``: every shared metric, averaged within its task, then over tasks (LibMTL).
    * ``"metric_mean"``: every shared metric, one flat mean (Nash-MTL / CAGrad).

    Args:
        results: flat ``{metric name: value}`` of the multi-task model.
        baselines: same names for the baseline (usually the single-task models).
        mode: averaging scheme above.
        primary: per-task metric for ``"maninis"`` (overrides entries of :data:`PRIMARY_METRIC`).
        metrics: restrict the multi-metric modes to these names (default: every name present in
            both dicts and known to :data:`HIGHER_IS_BETTER`).

    Raises:
        ValueError: unknown mode, no metric shared by both dicts, or a zero baseline.
    """
    if mode == "maninis":
        chosen = {**PRIMARY_METRIC, **(primary or {})}
        names = [name for name in chosen.values() if name in results and name in baselines]
    elif mode in ("task_mean", "metric_mean"):
        wanted = list(metrics) if metrics is not None else list(HIGHER_IS_BETTER)
        names = [name for name in wanted if name in results and name in baselines]
    else:
        raise ValueError(f"unknown delta_mtl mode {mode!r}; use 'maninis', 'task_mean' or 'metric_mean'")
    unknown = [name for name in names if name not in HIGHER_IS_BETTER]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}: no direction in HIGHER_IS_BETTER")
    if not names:
        raise ValueError("results and baselines share no metric to compare")

    def gain(name: str) -> float:
        base = float(baselines[name])
        if base == 0.0:
            raise ValueError(f"baseline {name} is 0: relative change undefined")
        sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
        return sign * (float(results[name]) - base) / base

    if mode == "task_mean":
        per_task: dict[str, list[float]] = {}
        for name in names:
            per_task.setdefault(METRIC_TASK[name], []).append(gain(name))
        return sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)
    return sum(gain(name) for name in names) / len(names)
