"""Hand-computed checks of densemtl.metrics.depth (expected values are worked out here, not by the code)."""

from __future__ import annotations

import math

import pytest
import torch

from densemtl.metrics import DepthMetrics, eigen_crop_mask

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


# ----------------------------------------------------------------------------- peers' conventions
def _degenerate() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4x3 map, g = 1..12 m; p = g + 0.5 except two rows predicted at -0.5 m."""
    g = torch.arange(1.0, 13.0).view(1, 1, 4, 3)
    p = g + 0.5
    p[0, 0, 1:3] = -0.5
    return p, g


@pytest.mark.parametrize(
    ("clamp", "to_pred"),
    [
        ("logs", lambda p: p),  # raw prediction in the linear errors (mtan / LibMTL)
        ("all", lambda p: max(p, 1e-9)),  # MTL-PyTorch / InvPT: clamp before every metric
        ("abs", abs),  # DenseTorch: |p|
    ],
)
def test_prediction_clamp_conventions(clamp: str, to_pred) -> None:
    p, g = _degenerate()
    pairs = [(to_pred(float(a)), float(b)) for a, b in zip(p.flatten(), g.flatten())]
    rmse = math.sqrt(sum((a - b) ** 2 for a, b in pairs) / len(pairs))
    abs_err = sum(abs(a - b) for a, b in pairs) / len(pairs)
    log_p = [math.log(max(a, 1e-9)) for a, _ in pairs]
    rmse_log = math.sqrt(sum((lp - math.log(b)) ** 2 for lp, (_, b) in zip(log_p, pairs)) / len(pairs))
    metric = DepthMetrics(clamp=clamp)
    metric.update(p, g)
    out = metric.compute()
    assert float(out["rmse"]) == pytest.approx(rmse, rel=1e-6)
    assert float(out["abs_err"]) == pytest.approx(abs_err, rel=1e-6)
    assert float(out["rmse_log"]) == pytest.approx(rmse_log, rel=1e-6)


def test_prediction_clamp_conventions_differ_only_on_non_positive_predictions() -> None:
    p, g = _degenerate()
    values = {}
    for clamp in ("logs", "all", "abs"):
        metric = DepthMetrics(clamp=clamp)
        metric.update(p, g)
        values[clamp] = float(metric.compute()["rmse"])
        positive = DepthMetrics(clamp=clamp)
        positive.update(g + 0.5, g)
        assert float(positive.compute()["rmse"]) == pytest.approx(0.5)
    assert values["logs"] > values["all"] > values["abs"]
    with pytest.raises(ValueError, match="clamp"):
        DepthMetrics(clamp="relu")


def test_per_batch_averaging_is_the_mean_of_batch_means() -> None:
    # batch 1: 3 valid pixels, each off by 1; batch 2: 1 valid pixel, off by 3
    g1, p1 = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]]), torch.tensor([[[2.0, 3.0], [4.0, 9.0]]])
    g2, p2 = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]), torch.tensor([[[5.0, 1.0], [1.0, 1.0]]])
    batch = DepthMetrics(per_batch=True)
    pooled = DepthMetrics()
    for p, g in ((p1, g1), (p2, g2)):
        batch.update(p, g)
        pooled.update(p, g)
    assert float(batch.compute()["abs_err"]) == pytest.approx((1.0 + 3.0) / 2)
    assert float(pooled.compute()["abs_err"]) == pytest.approx((3 * 1.0 + 3.0) / 4)
    assert float(batch.compute()["rmse"]) == pytest.approx((1.0 + 3.0) / 2)
    with pytest.raises(ValueError, match="exclude"):
        DepthMetrics(per_batch=True, per_image=True)
