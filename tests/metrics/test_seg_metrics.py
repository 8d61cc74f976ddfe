"""Hand-computed checks of densemtl.metrics.seg (expected values are worked out here, not by the code)."""

from __future__ import annotations

import math

import pytest
import torch

from densemtl.metrics import SegmentationMetrics

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


def test_absent_policy_propagate_gives_nan_like_mtan_and_libmtl() -> None:
    # class 2 never occurs: plain mean over classes is NaN (mtan / LibMTL), nanmean skips it
    target = torch.tensor([[[0, 0], [1, 1]]])
    preds = torch.tensor([[[0, 1], [1, 1]]])
    values = {}
    for policy in ("nan", "zero", "propagate"):
        metric = SegmentationMetrics(3, absent_policy=policy)
        metric.update(preds, target)
        values[policy] = metric.compute()
    # IoU class 0 = 1/2, class 1 = 2/3
    assert float(values["nan"]["miou"]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert float(values["zero"]["miou"]) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert math.isnan(float(values["propagate"]["miou"]))
    assert float(values["propagate"]["pixel_acc"]) == pytest.approx(3 / 4)
    full = SegmentationMetrics(2, absent_policy="propagate")
    full.update(preds, target)
    assert float(full.compute()["miou"]) == pytest.approx((1 / 2 + 2 / 3) / 2)
