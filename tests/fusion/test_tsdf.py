"""TSDF volume: the running average of Curless & Levoy, the truncation band, class evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densemtl.errors import ConfigError
from densemtl.fusion.tsdf import TSDFVolume

K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])  # 12x16 frames


def _wall(distance: float) -> np.ndarray:
    return np.full((12, 16), distance, dtype=np.float32)


def _volume(**kwargs) -> TSDFVolume:
    # camera at the origin looking along +z (identity pose): a thin column of voxels on the axis
    return TSDFVolume((-0.1, -0.1, 0.5), (0.1, 0.1, 3.0), voxel_size=0.02, truncation=0.1, **kwargs)


def _zero_crossing(volume: TSDFVolume) -> float:
    i, j = volume.shape[0] // 2, volume.shape[1] // 2
    column = volume.tsdf[i, j].numpy()
    z = volume.lower[2].item() + volume.voxel_size * np.arange(len(column))
    k = int(np.nonzero((column[:-1] > 0) & (column[1:] <= 0))[0][0])
    return float(z[k] + (z[k + 1] - z[k]) * column[k] / (column[k] - column[k + 1]))


def test_one_frame_puts_the_zero_crossing_on_the_surface_and_leaves_the_back_unseen() -> None:
    volume = _volume()
    volume.integrate(_wall(2.0), K, np.eye(4))
    assert _zero_crossing(volume) == pytest.approx(2.0, abs=1e-4)
    i, j = volume.shape[0] // 2, volume.shape[1] // 2
    z = volume.lower[2].item() + volume.voxel_size * np.arange(volume.shape[2])
    weight = volume.weight[i, j].numpy()
    assert (weight[z < 2.0 - 1e-6] == 1).all()  # free space in front: observed, tsdf 1 far away
    assert (weight[z > 2.1 + 1e-6] == 0).all()  # beyond the truncation band: unseen
    assert volume.tsdf[i, j, 5].item() == 1.0


def test_running_average_of_two_frames() -> None:
    volume = _volume()
    volume.integrate(_wall(2.0), K, np.eye(4))
    volume.integrate(_wall(2.06), K, np.eye(4))
    assert _zero_crossing(volume) == pytest.approx(2.03, abs=1e-4)
    assert volume.weight.max().item() == 2.0


def test_max_depth_and_invalid_depth_are_not_fused() -> None:
    volume = _volume()
    depth = _wall(2.0)
    depth[:, :8] = 0.0
    volume.integrate(depth, K, np.eye(4), max_depth=1.5)
    assert volume.weight.sum().item() == 0.0


def test_pose_moves_the_surface() -> None:
    volume = _volume()
    pose = np.eye(4)
    pose[2, 3] = 0.5  # camera 0.5 m further along +z: the wall at 1.5 m is at world z = 2.0
    volume.integrate(_wall(1.5), K, pose)
    assert _zero_crossing(volume) == pytest.approx(2.0, abs=1e-4)


def test_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    depth = (2.0 + 0.2 * rng.random((12, 16))).astype(np.float32)
    labels = rng.integers(0, 3, (12, 16))
    big, small = _volume(num_classes=3), _volume(num_classes=3, chunk_size=37)
    for volume in (big, small):
        volume.integrate(depth, K, np.eye(4), labels)
    torch.testing.assert_close(big.tsdf, small.tsdf)
    torch.testing.assert_close(big.evidence, small.evidence)


def test_bayes_update_multiplies_and_renormalises() -> None:
    volume = _volume(num_classes=2, fusion="bayes")
    for p0 in (0.7, 0.4):
        probs = np.stack([np.full((12, 16), p0), np.full((12, 16), 1 - p0)]).astype(np.float32)
        volume.integrate(_wall(2.0), K, np.eye(4), probs)
    i, j = volume.shape[0] // 2, volume.shape[1] // 2
    k = round((2.0 - volume.lower[2].item()) / volume.voxel_size)
    expected = 0.7 * 0.4 / (0.7 * 0.4 + 0.3 * 0.6)
    assert volume.probabilities()[i, j, k, 0].item() == pytest.approx(expected, rel=1e-5)
    assert math.isclose(torch.logsumexp(volume.evidence[i, j, k], 0).item(), 0.0, abs_tol=1e-5)
    assert volume.voxel_classes()[i, j, k].item() == 0
    assert volume.voxel_classes()[i, j, 3].item() == -1  # free space far from the wall: no evidence


def test_counts_is_a_majority_vote_and_ignores_255() -> None:
    volume = _volume(num_classes=3, fusion="counts")
    for label in (1, 1, 2, 255):
        volume.integrate(_wall(2.0), K, np.eye(4), np.full((12, 16), label))
    i, j = volume.shape[0] // 2, volume.shape[1] // 2
    k = round((2.0 - volume.lower[2].item()) / volume.voxel_size)
    assert volume.evidence[i, j, k].tolist() == [0.0, 2.0, 1.0]
    assert volume.voxel_classes()[i, j, k].item() == 1


def test_bad_settings_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="--voxel-size"):
        TSDFVolume((0, 0, 0), (1, 1, 1), voxel_size=0)
    with pytest.raises(ConfigError, match="--fusion"):
        TSDFVolume((0, 0, 0), (1, 1, 1), voxel_size=0.1, fusion="vote")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="raise --voxel-size"):
        TSDFVolume((0, 0, 0), (10, 10, 10), voxel_size=0.01, max_voxels=1000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(1)
    depth = (2.0 + 0.2 * rng.random((12, 16))).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), (12, 16)).transpose(2, 0, 1).astype(np.float32)
    cpu, gpu = _volume(num_classes=3), _volume(num_classes=3, device="cuda")
    for volume in (cpu, gpu):
        volume.integrate(depth, K, np.eye(4), probs)
    torch.testing.assert_close(cpu.tsdf, gpu.tsdf.cpu(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cpu.evidence, gpu.evidence.cpu(), atol=1e-4, rtol=1e-4)
