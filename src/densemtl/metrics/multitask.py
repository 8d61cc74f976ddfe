"""One metric per task (:class:`MultiTaskMetrics`), the metric-name tables and Δ_MTL.

Each task's metric is built by its :class:`~densemtl.tasks.base.Task` (``build_metric``). Metric
names (the keys of :meth:`MultiTaskMetrics.compute` and of ``densemtl evaluate``'s JSON) are
unique across tasks; :data:`HIGHER_IS_BETTER` gives each its direction and :data:`METRIC_TASK`
its task.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from densemtl.metrics.depth import DEPTH_METRICS
from densemtl.metrics.disparity import CAMERA_DEPTH_METRICS, DISPARITY_METRICS
from densemtl.metrics.normals import NORMALS_METRICS
from densemtl.metrics.seg import SEMSEG_METRICS
from densemtl.tasks import TASKS, get_task, task_names

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
    **dict.fromkeys(DISPARITY_METRICS, False),
}
HIGHER_IS_BETTER.update({f"cam_{name}": HIGHER_IS_BETTER[name] for name in DEPTH_METRICS})

#: The task each metric name belongs to (groups metrics for Δ_MTL's ``task_mean`` mode).
METRIC_TASK: dict[str, str] = {
    **dict.fromkeys(SEMSEG_METRICS, "semseg"),
    **dict.fromkeys(DEPTH_METRICS, "depth"),
    **dict.fromkeys(NORMALS_METRICS, "normals"),
    **dict.fromkeys(DISPARITY_METRICS + CAMERA_DEPTH_METRICS, "disparity"),
}

#: One metric per task for Maninis et al.'s Δ_m (as in Vandenhende et al.'s MTL-PyTorch).
PRIMARY_METRIC: dict[str, str] = {
    "semseg": "miou",
    "depth": "rmse",
    "normals": "normal_mean",
    "disparity": "disp_abs_err",  # XTasC-Net's headline "Abs"
}


class MultiTaskMetrics(nn.Module):
    """One metric per task, updated only on samples that carry ground truth for that task.

    An ``nn.Module`` (metrics in an ``nn.ModuleDict``) so it follows the LightningModule to its
    device; each task metric syncs its own sum-states under DDP. A metric that needs more than
    predictions and labels (the camera of :class:`~densemtl.metrics.disparity.DisparityMetrics`)
    has an ``inputs_from_batch(batch) -> {name: per-sample tensor}`` method; those tensors are
    passed to its ``update`` as keyword arguments, for the same samples.

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
        unknown = sorted(t for t in tasks if t not in TASKS)
        if unknown:
            raise ValueError(f"no metric for task(s) {unknown}; known: {list(task_names())}")
        self.metrics = nn.ModuleDict(
            {
                task: get_task(task).build_metric(channels, **dict(options.get(task, {})))
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
            inputs_from_batch = getattr(metric, "inputs_from_batch", None)
            extra = inputs_from_batch(batch) if inputs_from_batch is not None else {}
            if keep is not None and not bool(keep.all()):
                keep = keep.to(dtype=torch.bool)
                preds, target = preds[keep.to(preds.device)], target[keep.to(target.device)]
                extra = {name: value[keep.to(value.device)] for name, value in extra.items()}
            metric.update(preds, target, **extra)

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
