"""densemtl.metrics.disparity against values worked out here from the formulas (not by the code)."""

from __future__ import annotations

import math

import pytest
import torch

from densemtl.data.sample import collate
from densemtl.metrics import HIGHER_IS_BETTER, METRIC_TASK, DisparityMetrics, MultiTaskMetrics
from densemtl.metrics.xtasc import PerImageDepthMetrics

# Image A (camera: baseline 0.5 m, fx 200 px -> baseline * fx = 100): valid g = 2, 4, 5 with
# p = 1, 4, 10; g = 0 is invalid (its prediction 3 must not count).
# Image B (no camera): g = 1 everywhere, p = 2 everywhere.
A_GT, A_PRED = [[2.0, 4.0], [0.0, 5.0]], [[1.0, 4.0], [3.0, 10.0]]
B_GT, B_PRED = [[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]


def _maps(*rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows).unsqueeze(1)  # [B, 1, 2, 2]


def _camera(baseline: float | None, fx: float) -> dict:
    meta: dict = {"intrinsics": torch.tensor([fx, fx, 0.5, 0.5])}
    if baseline is not None:
        meta["baseline"] = baseline
    return meta


def test_pooled_disparity_and_camera_depth_hand_values() -> None:
    metric = DisparityMetrics()
    metric.update(_maps(A_PRED, B_PRED), _maps(A_GT, B_GT), torch.tensor([100.0, math.nan]))
    out = {k: float(v) for k, v in metric.compute().items()}
    # disparity, 7 valid pixels: |e| = 1, 0, 5 (A) and 1, 1, 1, 1 (B)
    assert out["disp_abs_err"] == pytest.approx((1 + 0 + 5 + 4) / 7)
    assert out["disp_abs_rel"] == pytest.approx((1 / 2 + 0 / 4 + 5 / 5 + 4 * 1.0) / 7)
    assert out["disp_rmse"] == pytest.approx(math.sqrt((1 + 0 + 25 + 4) / 7))
    # depth = 100 / d, image A only: g = 50, 25, 20 m, p = 100, 25, 10 m
    assert out["cam_abs_err"] == pytest.approx((50 + 0 + 10) / 3)
    assert out["cam_abs_rel"] == pytest.approx((50 / 50 + 0 + 10 / 20) / 3)
    assert out["cam_rmse"] == pytest.approx(math.sqrt((50**2 + 0 + 10**2) / 3), rel=1e-6)
    assert out["cam_delta1"] == pytest.approx(1 / 3)  # ratios 2, 1, 2
    assert out["cam_delta2"] == pytest.approx(1 / 3)  # 1.5625 < 2
    assert out["cam_rmse_log"] == pytest.approx(math.sqrt(2 * math.log(2) ** 2 / 3), rel=1e-6)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # the camera part saw nothing
def test_per_image_matches_xtasc_convention() -> None:
    metric = DisparityMetrics(per_image=True)
    preds, target = _maps(A_PRED, B_PRED), _maps(A_GT, B_GT)
    metric.update(preds, target)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["disp_abs_err"] == pytest.approx((6 / 3 + 1.0) / 2)
    assert out["disp_abs_rel"] == pytest.approx((1.5 / 3 + 1.0) / 2)
    assert out["disp_rmse"] == pytest.approx((math.sqrt(26 / 3) + 1.0) / 2)
    assert math.isnan(out["cam_rmse"])  # no camera given
    authors = PerImageDepthMetrics()
    authors.update(preds, target)
    reference = authors.compute()
    assert out["disp_abs_err"] == pytest.approx(float(reference["abs_err_per_image"]))
    assert out["disp_abs_rel"] == pytest.approx(float(reference["abs_rel_per_image"]))


def test_nonpositive_prediction_counts_as_far_not_inf() -> None:
    metric = DisparityMetrics(eps=0.5)
    metric.update(_maps([[-1.0]]), _maps([[4.0]]), torch.tensor([100.0]))
    out = metric.compute()
    assert float(out["disp_abs_err"]) == pytest.approx(5.0)
    assert float(out["cam_abs_err"]) == pytest.approx(100 / 0.5 - 100 / 4)  # prediction clamped to eps


def test_camera_depth_range_and_switch() -> None:
    capped = DisparityMetrics(max_depth=30.0)  # keeps g = 25, 20 m of image A
    capped.update(_maps(A_PRED), _maps(A_GT), torch.tensor([100.0]))
    assert float(capped.compute()["cam_abs_err"]) == pytest.approx((0 + 10) / 2)
    plain = DisparityMetrics(camera_depth=False)
    plain.update(_maps(A_PRED), _maps(A_GT), torch.tensor([100.0]))
    assert set(plain.compute()) == {"disp_abs_err", "disp_abs_rel", "disp_rmse"} == set(plain.names)


def test_multitask_takes_the_camera_from_meta_for_the_kept_samples() -> None:
    samples = [
        {"image": torch.zeros(3, 2, 2), "disparity": _maps(A_GT)[0], "meta": _camera(0.5, 200.0)},
        {"image": torch.zeros(3, 2, 2), "disparity": _maps(B_GT)[0], "meta": _camera(None, 200.0)},
        {"image": torch.zeros(3, 2, 2), "meta": _camera(2.0, 1000.0)},  # no label: must not count
    ]
    batch = collate(samples, tasks=("disparity",))
    assert batch["has_gt"]["disparity"].tolist() == [True, True, False]
    metrics = MultiTaskMetrics({"disparity": 1})
    metrics.update({"disparity": _maps(A_PRED, B_PRED, [[9.0, 9.0], [9.0, 9.0]])}, batch)
    out = metrics.compute()
    assert out["disp_abs_err"] == pytest.approx(10 / 7)
    assert out["cam_abs_err"] == pytest.approx(20.0)  # image A only, with its own camera


def test_ddp_style_merge_equals_single_process() -> None:
    gen = torch.Generator().manual_seed(0)
    g = torch.rand(6, 1, 5, 7, generator=gen) * 50
    g[g < 10] = 0
    p = torch.rand(6, 1, 5, 7, generator=gen) * 50 + 1
    bf = torch.tensor([100.0, math.nan, 80.0, 120.0, math.nan, 90.0])
    whole, rank0, rank1 = DisparityMetrics(), DisparityMetrics(), DisparityMetrics()
    whole.update(p[:4], g[:4], bf[:4])
    whole.update(p[4:], g[4:], bf[4:])
    rank0.update(p[:3], g[:3], bf[:3])
    rank1.update(p[3:], g[3:], bf[3:])
    rank0.merge_state(rank1)
    for name, value in whole.compute().items():
        assert float(rank0.compute()[name]) == pytest.approx(float(value), rel=1e-6), name
    rank0.reset()
    assert int(rank0.disparity.count) == 0 and int(rank0.depth.count) == 0


def test_names_have_a_direction_and_a_task() -> None:
    names = DisparityMetrics().names
    assert all(METRIC_TASK[name] == "disparity" for name in names)
    assert not HIGHER_IS_BETTER["disp_abs_err"] and HIGHER_IS_BETTER["cam_delta1"]
