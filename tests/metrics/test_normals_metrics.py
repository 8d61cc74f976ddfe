"""Hand-computed checks of densemtl.metrics.normals (expected values are worked out here, not by the code)."""

from __future__ import annotations

import math

import pytest
import torch

from densemtl.metrics import NormalsMetrics

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
