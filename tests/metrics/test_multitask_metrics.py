"""densemtl.metrics.multitask: has_gt counting, Δ_MTL worked examples, the metric-name tables."""

from __future__ import annotations

import math

import pytest
import torch

from densemtl.data.sample import collate
from densemtl.metrics import (
    HIGHER_IS_BETTER,
    METRIC_TASK,
    DepthMetrics,
    DisparityMetrics,
    MultiTaskMetrics,
    NormalsMetrics,
    SegmentationMetrics,
    delta_mtl,
)

# ----------------------------------------------------------------------------- multi-task + has_gt


def _sample(label: int, depth: float | None, pseudo: set[str] | None = None) -> dict:
    sample = {
        "image": torch.zeros(3, 2, 2),
        "semseg": torch.full((2, 2), label, dtype=torch.long),
        "meta": {"id": str(label), "pseudo": pseudo or set()},
    }
    if depth is not None:
        sample["depth"] = torch.full((1, 2, 2), depth)
    return sample


def test_multitask_counts_only_samples_with_ground_truth() -> None:
    # sample 1's semseg is a pseudo-label and its (wrong) prediction must not count;
    # sample 1 has no depth label at all.
    batch = collate([_sample(0, 2.0), _sample(1, None, pseudo={"semseg"})], tasks=("semseg", "depth"))
    assert batch["has_gt"]["semseg"].tolist() == [True, False]
    outputs = {
        "semseg": torch.nn.functional.one_hot(torch.zeros(2, 2, 2, dtype=torch.long), 2)
        .permute(0, 3, 1, 2)
        .float(),
        "depth": torch.tensor([3.0, 100.0]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2),
    }
    metrics = MultiTaskMetrics({"semseg": 2, "depth": 1})
    metrics.update(outputs, batch)
    out = metrics.compute()
    assert isinstance(out["miou"], float)
    assert out["miou"] == 1.0 and out["pixel_acc"] == 1.0  # counting sample 1 would give 0.5 / 0.5
    assert out["abs_err"] == pytest.approx(1.0)  # counting sample 1 would add errors of 100
    assert set(out) == {
        "miou",
        "pixel_acc",
        "abs_err",
        "abs_rel",
        "sq_rel",
        "rmse",
        "rmse_log",
        "log10",
        "silog",
    } | {
        "delta1",
        "delta2",
        "delta3",
    }


def test_multitask_skips_task_without_any_ground_truth_in_batch() -> None:
    batch = collate([_sample(0, None)], tasks=("semseg", "depth"))
    metrics = MultiTaskMetrics({"semseg": 2, "depth": 1}, options={"semseg": {"absent_policy": "zero"}})
    metrics.update({"semseg": torch.zeros(1, 2, 2, dtype=torch.long)}, batch)  # no depth output needed
    out = metrics.compute()
    assert math.isnan(out["rmse"]) and out["pixel_acc"] == 1.0
    assert out["miou"] == pytest.approx(0.5)  # zero policy: absent class 1 counts as 0
    metrics.reset()
    assert int(metrics.metrics["semseg"].confmat.sum()) == 0


def test_multitask_unknown_task() -> None:
    with pytest.raises(ValueError, match="edges"):
        MultiTaskMetrics({"edges": 1})


# ----------------------------------------------------------------------------- Δ_MTL


# peers-and-metrics.md §3.4: CAGrad single-task baseline and an illustrative MTL result, with
# mtan-style names mapped to densemtl's.
MTAN_NAMES = {
    "mIoU": "miou",
    "PixAcc": "pixel_acc",
    "AbsErr": "abs_err",
    "RelErr": "abs_rel",
    "Mean": "normal_mean",
    "Median": "normal_median",
    "<11.25": "normal_11_25",
    "<22.5": "normal_22_5",
    "<30": "normal_30",
}
STL = {
    "mIoU": 0.3830,
    "PixAcc": 0.6376,
    "AbsErr": 0.6754,
    "RelErr": 0.2780,
    "Mean": 25.01,
    "Median": 19.21,
    "<11.25": 0.3014,
    "<22.5": 0.5720,
    "<30": 0.6915,
}
MTL = {
    "mIoU": 0.40,
    "PixAcc": 0.65,
    "AbsErr": 0.55,
    "RelErr": 0.22,
    "Mean": 24.0,
    "Median": 18.0,
    "<11.25": 0.31,
    "<22.5": 0.59,
    "<30": 0.70,
}


def test_delta_mtl_worked_example() -> None:
    base = {MTAN_NAMES[k]: v for k, v in STL.items()}
    res = {MTAN_NAMES[k]: v for k, v in MTL.items()}
    one_per_task = delta_mtl(res, base, mode="maninis", primary={"depth": "abs_err"})
    assert round(100 * one_per_task, 2) == 9.01
    assert round(100 * delta_mtl(res, base, mode="task_mean"), 2) == 8.81
    assert round(100 * delta_mtl(res, base, mode="metric_mean"), 2) == 7.04
    # hand check of the one-per-task value
    hand = ((0.40 - 0.383) / 0.383 - (0.55 - 0.6754) / 0.6754 - (24.0 - 25.01) / 25.01) / 3
    assert one_per_task == pytest.approx(hand)


def test_delta_mtl_default_primary_and_errors() -> None:
    base = {"miou": 0.5, "rmse": 0.5, "abs_err": 9.0}
    res = {"miou": 0.6, "rmse": 0.6, "abs_err": 1.0}
    assert delta_mtl(res, base) == pytest.approx((0.2 - 0.2) / 2)  # rmse is the default depth metric
    assert delta_mtl(res, base, mode="metric_mean", metrics=["rmse"]) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="mode"):
        delta_mtl(res, base, mode="median")
    with pytest.raises(ValueError, match="share no metric"):
        delta_mtl({"miou": 1.0}, {"rmse": 1.0})
    with pytest.raises(ValueError, match="is 0"):
        delta_mtl({"miou": 1.0}, {"miou": 0.0})


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_direction_table_covers_every_metric() -> None:
    names = set()
    for metric in (SegmentationMetrics(2), DepthMetrics(), NormalsMetrics(), DisparityMetrics()):
        names |= set(metric.compute())
    assert names == set(HIGHER_IS_BETTER) == set(METRIC_TASK)
