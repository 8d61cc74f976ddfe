"""Hand-computed checks of densemtl.metrics (expected values are worked out here, not by the code)."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from densemtl.data.sample import collate
from densemtl.metrics import (
    HIGHER_IS_BETTER,
    METRIC_TASK,
    DepthMetrics,
    MultiTaskMetrics,
    NormalsMetrics,
    SegmentationMetrics,
    delta_mtl,
    eigen_crop_mask,
)

# ----------------------------------------------------------------------------- segmentation


def _seg_case() -> tuple[torch.Tensor, torch.Tensor]:
    # 3 classes; class 2 appears in neither GT nor prediction on valid pixels. The ignored pixel
    # is predicted as class 2: if it were counted, class 2 would get a non-empty union (IoU 0).
    target = torch.tensor([[[0, 0, 1, 255]]])
    preds = torch.tensor([[[0, 1, 1, 2]]])
    return preds, target


def test_segmentation_absent_class_nan_policy_skips_it() -> None:
    preds, target = _seg_case()
    metric = SegmentationMetrics(3, absent_policy="nan")
    metric.update(preds, target)
    # CM rows=GT: [[1,1,0],[0,1,0],[0,0,0]] -> IoU0 = 1/(2+1-1), IoU1 = 1/(1+2-1), IoU2 = 0/0
    assert metric.confmat.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    iou = metric.compute_per_class()
    assert iou[:2].tolist() == pytest.approx([0.5, 0.5])
    assert math.isnan(iou[2])
    out = metric.compute()
    assert float(out["miou"]) == pytest.approx(0.5)
    assert float(out["pixel_acc"]) == pytest.approx(2 / 3)


def test_segmentation_absent_class_zero_policy_counts_zero() -> None:
    preds, target = _seg_case()
    metric = SegmentationMetrics(3, absent_policy="zero")
    metric.update(preds, target)
    assert metric.compute_per_class().tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert float(metric.compute()["miou"]) == pytest.approx(1 / 3)


def test_segmentation_class_predicted_but_not_in_gt_is_zero_under_both_policies() -> None:
    target = torch.tensor([[[0, 0, 1, 1]]])
    preds = torch.tensor([[[0, 2, 1, 1]]])  # a false positive of class 2
    for policy in ("nan", "zero"):
        metric = SegmentationMetrics(3, absent_policy=policy)
        metric.update(preds, target)
        # IoU0 = 1/2, IoU1 = 2/2, IoU2 = 0/1
        assert metric.compute_per_class().tolist() == pytest.approx([0.5, 1.0, 0.0])
        assert float(metric.compute()["miou"]) == pytest.approx(0.5)


def test_segmentation_accepts_logits() -> None:
    preds, target = _seg_case()
    logits = torch.nn.functional.one_hot(preds, 3).permute(0, 3, 1, 2).float() * 5.0
    a, b = SegmentationMetrics(3), SegmentationMetrics(3)
    a.update(logits, target)
    b.update(preds, target)
    assert torch.equal(a.confmat, b.confmat)


def test_segmentation_bad_label_ids_are_named() -> None:
    metric = SegmentationMetrics(3)
    with pytest.raises(ValueError, match=r"\[3, 7\]"):
        metric.update(torch.zeros(1, 1, 4, dtype=torch.long), torch.tensor([[[0, 7, 3, 255]]]))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        metric.update(torch.zeros(1, 1, 2, dtype=torch.long), torch.tensor([[[0, -1]]]))


def test_segmentation_empty_is_nan() -> None:
    metric = SegmentationMetrics(2, absent_policy="zero")
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    assert math.isnan(metric.compute()["miou"]) and math.isnan(metric.compute()["pixel_acc"])


# ----------------------------------------------------------------------------- depth
# Image A: 1 valid pixel (g=1, p=3). Image B: 4 valid pixels (g=2, p=[2,2,2,3]).
# Image C: 4 valid pixels, perfect. Image E: no valid pixel at all.
A_P, A_G = [3.0, 5.0, 5.0, 5.0], [1.0, 0.0, 0.0, 0.0]
B_P, B_G = [2.0, 2.0, 2.0, 3.0], [2.0, 2.0, 2.0, 2.0]
C_P, C_G = [4.0, 4.0, 4.0, 4.0], [4.0, 4.0, 4.0, 4.0]
E_P, E_G = [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]


def _depth(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 1, 1, 4)


def test_depth_pixel_pooled_hand_values() -> None:
    metric = DepthMetrics()
    metric.update(_depth(A_P, B_P), _depth(A_G, B_G))
    out = {k: float(v) for k, v in metric.compute().items()}
    ln3, ln15 = math.log(3.0), math.log(1.5)
    assert out["abs_err"] == pytest.approx((2 + 1) / 5)
    assert out["abs_rel"] == pytest.approx((2 / 1 + 1 / 2) / 5)
    assert out["sq_rel"] == pytest.approx((4 / 1 + 1 / 2) / 5)
    assert out["rmse"] == pytest.approx(math.sqrt((4 + 1) / 5))
    assert out["rmse_log"] == pytest.approx(math.sqrt((ln3**2 + ln15**2) / 5))
    assert out["log10"] == pytest.approx((math.log10(3) + math.log10(1.5)) / 5)
    mean_d, mean_d2 = (ln3 + ln15) / 5, (ln3**2 + ln15**2) / 5
    assert out["silog"] == pytest.approx(100 * math.sqrt(mean_d2 - mean_d**2), rel=1e-5)
    # ratios: A 3 (fails all), B 1,1,1,1.5 (fails only 1.25)
    assert out["delta1"] == pytest.approx(3 / 5)
    assert out["delta2"] == pytest.approx(4 / 5)
    assert out["delta3"] == pytest.approx(4 / 5)


def test_depth_per_image_differs_and_matches_hand_values() -> None:
    metric = DepthMetrics(per_image=True)
    metric.update(_depth(A_P, B_P), _depth(A_G, B_G))
    out = {k: float(v) for k, v in metric.compute().items()}
    ln15 = math.log(1.5)
    assert out["abs_err"] == pytest.approx((2 + 0.25) / 2)  # pooled would be 0.6
    assert out["abs_rel"] == pytest.approx((2 + 0.5 / 4) / 2)
    assert out["rmse"] == pytest.approx((2 + math.sqrt(1 / 4)) / 2)  # mean of per-image RMSEs
    assert out["delta1"] == pytest.approx((0 + 3 / 4) / 2)
    silog_b = 100 * math.sqrt(ln15**2 / 4 - (ln15 / 4) ** 2)  # A has one pixel: variance 0
    assert out["silog"] == pytest.approx(silog_b / 2, rel=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_depth_image_without_valid_pixels_contributes_nothing(per_image: bool) -> None:
    ref, with_empty = DepthMetrics(per_image=per_image), DepthMetrics(per_image=per_image)
    ref.update(_depth(A_P, B_P), _depth(A_G, B_G))
    with_empty.update(_depth(A_P, E_P, B_P), _depth(A_G, E_G, B_G))
    with_empty.update(_depth(E_P), _depth(E_G))
    for name, value in ref.compute().items():
        assert float(with_empty.compute()[name]) == pytest.approx(float(value)), name
    assert int(with_empty.count) == (2 if per_image else 5)


def test_depth_smaller_last_batch() -> None:
    pooled, per_image = DepthMetrics(), DepthMetrics(per_image=True)
    for metric in (pooled, per_image):
        metric.update(_depth(A_P, B_P), _depth(A_G, B_G))
        metric.update(_depth(C_P), _depth(C_G))  # last batch of 1
    abs_err = float(pooled.compute()["abs_err"])
    assert abs_err == pytest.approx(3 / 9)  # every valid pixel weighs the same
    assert abs_err != pytest.approx((3 / 5 + 0) / 2)  # mtan's mean of per-batch means
    assert float(per_image.compute()["abs_err"]) == pytest.approx((2 + 0.25 + 0) / 3)


def test_depth_range_is_strict() -> None:
    metric = DepthMetrics(min_depth=0.5, max_depth=10.0)
    preds = _depth([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    target = _depth([0.25, 1.0, 5.0, 20.0], [0.5, 10.0, 0.0, 3.0])
    metric.update(preds, target)
    # valid g: 1, 5, 3 (0.25, 0.5, 10, 20, 0 excluded) -> errors 0, 4, 2
    assert int(metric.count) == 3
    assert float(metric.compute()["abs_err"]) == pytest.approx(2.0)


def test_eigen_crop_mask_bounds() -> None:
    mask = eigen_crop_mask(480, 640)
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (45, 471, 41, 601)
    assert int(mask.sum()) == (471 - 45) * (601 - 41)
    half = eigen_crop_mask(240, 320)  # 22.5:235.5, 20.5:300.5 rounded half up
    assert int(half.sum()) == (236 - 23) * (301 - 21) and bool(half[23, 21]) and not bool(half[22, 21])


def test_depth_eigen_crop() -> None:
    target = torch.ones(1, 1, 480, 640)
    preds = torch.full((1, 1, 480, 640), 3.0)
    preds[..., 45:471, 41:601] = 1.0  # perfect inside the crop, error 2 outside
    cropped, full = DepthMetrics(eigen_crop=True), DepthMetrics()
    cropped.update(preds, target)
    full.update(preds, target)
    assert float(cropped.compute()["abs_err"]) == 0.0
    outside = 480 * 640 - 426 * 560
    assert float(full.compute()["abs_err"]) == pytest.approx(2 * outside / (480 * 640))


def test_depth_nonpositive_predictions_are_clamped_for_logs() -> None:
    metric = DepthMetrics()
    metric.update(_depth([-1.0, 0.0, 1.0, 1.0]), _depth([1.0, 1.0, 1.0, 1.0]))
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["abs_err"] == pytest.approx((2 + 1) / 4)  # linear errors use the raw prediction
    assert out["rmse_log"] == pytest.approx(math.sqrt(2 * math.log(1e-9) ** 2 / 4))
    assert out["delta3"] == pytest.approx(0.5)
    assert all(math.isfinite(v) for v in out.values())


def test_depth_empty_is_nan() -> None:
    metric = DepthMetrics()
    metric.update(_depth(E_P), _depth(E_G))
    assert all(math.isnan(float(v)) for v in metric.compute().values())


# ----------------------------------------------------------------------------- normals


def _normals_at(angles_deg: list[float], scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions at the given angles from g = (0, 0, -1), as [1, 3, 1, N]; scaled (not unit)."""
    theta = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    p = torch.stack([theta.sin(), torch.zeros_like(theta), -theta.cos()]) * scale
    g = torch.zeros_like(p)
    g[2] = -1.0
    return p[None, :, None].float(), g[None, :, None].float()


def test_normals_hand_values_and_invalid_pixels() -> None:
    p, g = _normals_at([5.0, 10.0, 20.0, 24.0, 40.0, 90.0], scale=3.0)
    g[..., -1] = 0.0  # last pixel invalid: its 90° error must not count
    metric = NormalsMetrics()
    metric.update(p, g)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["normal_mean"] == pytest.approx(99 / 5, abs=1e-4)
    assert out["normal_median"] == pytest.approx(20.0, abs=0.006)
    assert out["normal_rmse"] == pytest.approx(math.sqrt((25 + 100 + 400 + 576 + 1600) / 5), abs=1e-4)
    assert out["normal_11_25"] == pytest.approx(2 / 5)
    assert out["normal_22_5"] == pytest.approx(3 / 5)
    assert out["normal_30"] == pytest.approx(4 / 5)


def test_normals_global_median_even_count_across_batches() -> None:
    metric = NormalsMetrics()
    for angles in ([5.0, 10.0, 20.0], [25.0, 35.0, 40.0]):
        metric.update(*_normals_at(angles))
    # global median of 6 values = (20 + 25) / 2 (numpy.median convention for even counts)
    assert float(metric.compute()["normal_median"]) == pytest.approx(22.5, abs=0.006)
    metric.update(*_normals_at([1.0]))
    # 7 values 1,5,10,20,25,35,40 -> 20 (mtan-style mean of per-batch medians: (10+35+1)/3)
    assert float(metric.compute()["normal_median"]) == pytest.approx(20.0, abs=0.006)


def test_normals_tiny_angle_is_accurate() -> None:
    # acos(<p,g>) in float32 gives 0 here (cos 1e-3° rounds to 1); 2*atan2 keeps the angle.
    metric = NormalsMetrics()
    metric.update(*_normals_at([1e-3]))
    assert float(metric.compute()["normal_mean"]) == pytest.approx(1e-3, rel=1e-2)


# ----------------------------------------------------------------------------- DDP-style merge


def _halves() -> list[tuple[type, dict, tuple[torch.Tensor, torch.Tensor]]]:
    gen = torch.Generator().manual_seed(0)
    seg_t = torch.randint(0, 4, (6, 5, 7), generator=gen)
    seg_t[0, 0] = 255
    seg_p = torch.randn(6, 4, 5, 7, generator=gen)
    dep_g = torch.rand(6, 1, 5, 7, generator=gen) * 5
    dep_g[dep_g < 1] = 0  # unequal valid counts per image
    dep_p = torch.rand(6, 1, 5, 7, generator=gen) * 5 + 0.1
    nor_g = torch.randn(6, 3, 5, 7, generator=gen)
    nor_g[:, :, 0] = 0
    nor_p = torch.randn(6, 3, 5, 7, generator=gen)
    return [
        (SegmentationMetrics, {"num_classes": 4}, (seg_p, seg_t)),
        (DepthMetrics, {}, (dep_p, dep_g)),
        (DepthMetrics, {"per_image": True, "max_depth": 4.0}, (dep_p, dep_g)),
        (NormalsMetrics, {}, (nor_p, nor_g)),
    ]


@pytest.mark.parametrize("case", range(4))
def test_ddp_style_merge_equals_single_process(case: int) -> None:
    cls, kwargs, (preds, target) = _halves()[case]
    whole, rank0, rank1 = cls(**kwargs), cls(**kwargs), cls(**kwargs)
    whole.update(preds[:4], target[:4])
    whole.update(preds[4:], target[4:])  # smaller last batch
    rank0.update(preds[:3], target[:3])
    rank1.update(preds[3:], target[3:])
    assert all(fx is dim_zero_sum for fx in rank0._reductions.values())  # states reduce by "sum"
    rank0.merge_state(rank1)  # = what DDP's all-reduce(sum) does to every state
    for name, value in whole.compute().items():
        assert float(rank0.compute()[name]) == pytest.approx(float(value), rel=1e-6, nan_ok=True), name


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
    for metric in (SegmentationMetrics(2), DepthMetrics(), NormalsMetrics()):
        names |= set(metric.compute())
    assert names == set(HIGHER_IS_BETTER) == set(METRIC_TASK)
