"""Acceptance: fusing ground-truth depth, labels and poses (the oracle) rebuilds the scene.

F-score >= 0.95 at 5 cm and semantic accuracy >= 0.95, on this test's own analytic box room
(independent of the synthetic renderer) and on a rendered trajectory of ``densemtl data render
--trajectory`` (skipped where the renderer is absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fusion_scene import CLASSES, render, write_folder

from densemtl.fusion import fuse, open_sequence


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(render(num_frames=24, height=48, width=64), tmp_path_factory.mktemp("room") / "traj")


@pytest.mark.parametrize("mode", ["bayes", "counts"])
def test_oracle_rebuilds_the_box_room(room: Path, mode: str) -> None:
    result = fuse(open_sequence(room), None, voxel_size=0.04, fusion=mode, progress=False)
    m = result.metrics
    assert m is not None
    assert m["fscore"] >= 0.95, m
    assert m["semantic_accuracy"] >= 0.95, m
    assert m["accuracy"] < 0.02 and m["completeness"] < 0.03
    assert set(m["iou"]) == set(CLASSES)
    assert not result.poses_estimated and result.frames == 24
    assert result.mesh.classes.min() >= 0  # every vertex got class evidence


def test_oracle_on_a_rendered_trajectory(tmp_path: Path) -> None:
    trajectory = pytest.importorskip("densemtl.data.synthetic.trajectory")
    root = trajectory.render_trajectories(
        tmp_path / "traj",
        1,
        frames=12,
        height=48,
        width=64,
        seed=0,
        surface_spacing=0.02,
        workers=1,
        progress=False,
    )
    sequence = open_sequence(root / "traj_0000")
    assert sequence.has_poses and sequence.surface is not None and len(sequence) == 12
    result = fuse(sequence, None, voxel_size=0.04, progress=False)
    m = result.metrics
    assert m["fscore"] >= 0.95, m
    assert m["semantic_accuracy"] >= 0.95, m
    assert np.isfinite(result.timing["integrate_fps"])
