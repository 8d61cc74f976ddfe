"""Synthetic camera trajectories (``densemtl data render --trajectory``): the on-disk layout,
rigid / smooth / in-room poses, and consistency of depth + pose + semantics with ``surface.npz``
(back-projected pixels land on the ground-truth surface and carry its labels)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree

from densemtl.data.synthetic import CLASS_NAMES, DOOR, FLOOR, TABLE, WALL, Box, Decal, intrinsics_for
from densemtl.data.synthetic import scene_from_spec as spec
from densemtl.data.synthetic.geometry import _corners
from densemtl.data.synthetic.surface import sample_surface
from densemtl.data.synthetic.trajectory import (
    camera_to_world,
    random_trajectory,
    render_trajectories,
    trajectory_seed,
)
from densemtl.errors import ConfigError, DataError

H, W, FRAMES, SPACING = 64, 80, 10, 0.02


@pytest.fixture(scope="module")
def traj_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("traj") / "out"
    render_trajectories(
        root, 2, frames=FRAMES, height=H, width=W, seed=0, surface_spacing=SPACING, workers=1, progress=False
    )
    return root


def _poses(folder) -> np.ndarray:
    return np.stack([np.loadtxt(folder / "poses" / f"{f:06d}.txt") for f in range(FRAMES)])


def test_layout_is_the_folder_format_plus_poses_and_surface(traj_root) -> None:
    from densemtl.data.datasets.folder import FolderDataset

    manifest = json.loads((traj_root / "trajectories.json").read_text())
    assert manifest["complete"] and manifest["trajectories"] == ["traj_0000", "traj_0001"]
    ids = [f"{f:06d}" for f in range(FRAMES)]
    for tid in manifest["trajectories"]:
        folder = traj_root / tid
        for name, ext in (
            ("rgb", "png"),
            ("depth", "png"),
            ("semantic", "png"),
            ("normals", "png"),
            ("poses", "txt"),
        ):
            assert sorted(p.name for p in (folder / name).iterdir()) == [f"{i}.{ext}" for i in ids]
        assert (folder / "splits" / "test.txt").read_text().split() == ids
        assert json.loads((folder / "classes.json").read_text())["names"] == list(CLASS_NAMES)
        k = json.loads((folder / "intrinsics.json").read_text())
        assert (k["fx"], k["fy"], k["cx"], k["cy"]) == pytest.approx(intrinsics_for(H, W))
        pose_text = (folder / "poses" / "000000.txt").read_text().splitlines()
        assert len(pose_text) == 4 and all(len(line.split()) == 4 for line in pose_text)
        surface = np.load(folder / "surface.npz")
        n = len(surface["labels"])
        assert surface["points"].shape == (n, 3) and surface["normals"].shape == (n, 3) and n > 10_000
        assert surface["points"].dtype == np.float32 and np.issubdtype(surface["labels"].dtype, np.integer)
        np.testing.assert_allclose(np.linalg.norm(surface["normals"], axis=1), 1.0, atol=1e-5)
        ds = FolderDataset(folder, split="test")
        assert len(ds) == FRAMES and ds[0]["depth"].shape == (1, H, W)
    a, b = (np.load(traj_root / t / "surface.npz")["points"] for t in manifest["trajectories"])
    assert a.shape != b.shape or not np.array_equal(a, b)  # one room per trajectory


def test_poses_are_rigid_smooth_in_height_range_and_clear_of_obstacles(traj_root) -> None:
    for index in range(2):
        poses = _poses(traj_root / f"traj_{index:04d}")
        rot, t = poses[:, :3, :3], poses[:, :3, 3]
        np.testing.assert_allclose(poses[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (FRAMES, 1)))
        np.testing.assert_allclose(
            rot @ rot.transpose(0, 2, 1), np.tile(np.eye(3), (FRAMES, 1, 1)), atol=1e-7
        )
        np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-7)
        np.testing.assert_allclose(rot[:, 2, 0], 0.0, atol=1e-8)  # no roll: camera x stays horizontal
        assert ((t[:, 2] >= 1.0) & (t[:, 2] <= 1.8)).all()
        step = np.linalg.norm(np.diff(t, axis=0), axis=1)
        rel = np.einsum("nji,njk->nik", rot[:-1], rot[1:])
        angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        assert step.max() <= 0.08 and angle.max() <= 6.0
        assert step.sum() > 0.1 and angle.sum() > 0.5  # it does move and turn

        # the written poses are the trajectory's cameras; the camera stays in the room, clear of
        # walls and of every object's footprint
        traj = random_trajectory(trajectory_seed(0, index), FRAMES)
        np.testing.assert_allclose(poses, np.stack([camera_to_world(c) for c in traj.cameras]), atol=1e-8)
        width, depth, _ = traj.scene.room
        assert (t[:, 0] >= 0.4).all() and (t[:, 0] <= width - 0.4).all()
        assert (t[:, 1] >= 0.4).all() and (t[:, 1] <= depth - 0.4).all()
        for prim in traj.scene.objects:
            c = _corners(prim)
            gap = np.hypot(
                np.maximum(0, np.maximum(c[:, 0].min() - t[:, 0], t[:, 0] - c[:, 0].max())),
                np.maximum(0, np.maximum(c[:, 1].min() - t[:, 1], t[:, 1] - c[:, 1].max())),
            )
            assert gap.min() >= 0.4


def test_long_trajectory_stays_clear_and_smooth() -> None:
    traj = random_trajectory(trajectory_seed(3, 0), 300)
    pos = np.array([c.position for c in traj.cameras])
    width, depth, _ = traj.scene.room
    assert (pos[:, :2] >= 0.4).all() and (pos[:, 0] <= width - 0.4).all() and (pos[:, 1] <= depth - 0.4).all()
    assert ((pos[:, 2] >= 1.0) & (pos[:, 2] <= 1.8)).all()
    assert np.linalg.norm(np.diff(pos, axis=0), axis=1).max() <= 0.08
    yaw = np.unwrap([c.yaw for c in traj.cameras])
    assert np.abs(np.diff(yaw)).max() <= math.radians(5) and np.ptp(yaw) > math.radians(10)


def test_depth_and_pose_back_project_onto_the_surface_with_its_labels(traj_root) -> None:
    for tid in ("traj_0000", "traj_0001"):
        folder = traj_root / tid
        surface = np.load(folder / "surface.npz")
        tree = cKDTree(surface["points"])
        k = json.loads((folder / "intrinsics.json").read_text())
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        for f, pose in enumerate(_poses(folder)):
            depth = np.asarray(Image.open(folder / "depth" / f"{f:06d}.png")).astype(np.float64) / 1000.0
            semantic = np.asarray(Image.open(folder / "semantic" / f"{f:06d}.png")).reshape(-1)
            normals_png = np.asarray(Image.open(folder / "normals" / f"{f:06d}.png")).astype(np.float64)
            cam = (
                np.stack([(u - k["cx"]) / k["fx"], (v - k["cy"]) / k["fy"], np.ones_like(u)], -1)
                * depth[..., None]
            )
            world = cam.reshape(-1, 3) @ pose[:3, :3].T + pose[:3, 3]
            dist, nearest = tree.query(world)
            assert np.median(dist) < 0.015, (tid, f, np.median(dist))
            assert (surface["labels"][nearest] == semantic).mean() >= 0.95
            # camera-frame normals rotated by the pose match the surface normals
            n_world = (normals_png.reshape(-1, 3) / 127.5 - 1.0) @ pose[:3, :3].T
            assert ((n_world * surface["normals"][nearest]).sum(1) > 0.9).mean() >= 0.95


def test_surface_covers_every_surface_at_the_documented_density() -> None:
    room = (3.0, 4.0, 2.5)
    table = Box((1.5, 2.0, 0.4), (1.0, 0.6, 0.8), TABLE, yaw=0.3)
    overlap = Box((1.5, 2.0, 0.8), (0.4, 0.4, 0.4), TABLE)  # half sunk into the table
    door = Decal(2, 0.5, 1.4, 0.0, 2.0, DOOR)  # on the y = 0 wall
    scene = spec(room=room, objects=[table, overlap], decals=[door])
    spacing = 0.05
    points, normals, labels = sample_surface(scene, spacing)
    for axis, value in ((0, 0.0), (0, room[0]), (1, 0.0), (1, room[1]), (2, 0.0), (2, room[2])):
        on = np.abs(points[:, axis] - value) < 1e-5
        area = math.prod(room[a] for a in range(3) if a != axis)
        assert on.sum() >= area / spacing**2
        inward = np.zeros(3)
        inward[axis] = 1.0 if value == 0.0 else -1.0
        room_side = on & (labels != TABLE)  # the table's bottom face lies on the floor too
        np.testing.assert_allclose(normals[room_side], np.broadcast_to(inward, (int(room_side.sum()), 3)))
    on_door_wall = np.abs(points[:, 1]) < 1e-5
    in_door = on_door_wall & (points[:, 0] > 0.5) & (points[:, 0] < 1.4) & (points[:, 2] < 2.0)
    assert (labels[in_door] == DOOR).all() and (labels[on_door_wall & ~in_door] == WALL).all()
    assert (labels[(np.abs(points[:, 2]) < 1e-5) & (labels != TABLE)] == FLOOR).all()
    # the table: all six faces, area / spacing^2 points at least; nothing inside the other box
    is_table = labels == TABLE
    # table faces minus the top under the small box, plus the small box's top and upper sides
    area = 2 * (1.0 * 0.6 + 1.0 * 0.8 + 0.6 * 0.8) - 0.4 * 0.4 + 0.4 * 0.4 + 4 * 0.4 * 0.2
    assert is_table.sum() >= 0.95 * area / spacing**2
    rel = points[is_table] - np.asarray(overlap.center)
    assert not (np.abs(rel) < 0.2 - 1e-3).all(1).any()
    c, s = math.cos(0.3), math.sin(0.3)
    rel = points[is_table] - np.asarray(table.center)
    local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1)
    assert not (np.abs(local) < np.array([0.5, 0.3, 0.4]) - 1e-3).all(1).any()
    on_faces = (np.abs(np.abs(local) - [0.5, 0.3, 0.4]) < 1e-5).any(1)
    assert on_faces.mean() > 0.7  # the rest lies on the small box, above the table top


def test_cache_foreign_folders_and_bad_options(tmp_path) -> None:
    root = tmp_path / "t"
    kwargs = dict(frames=3, height=16, width=20, surface_spacing=0.1, workers=1, progress=False)
    render_trajectories(root, 1, **kwargs)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    render_trajectories(root, 1, **kwargs)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    render_trajectories(root, 1, **{**kwargs, "frames": 2})  # other parameters: re-rendered
    assert len(list((root / "traj_0000" / "poses").iterdir())) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match=r"trajectories\.json"):
        render_trajectories(foreign, 1, **kwargs)
    with pytest.raises(ConfigError, match="--frames"):
        render_trajectories(tmp_path / "x", 1, **{**kwargs, "frames": 1})
    with pytest.raises(ConfigError, match="--surface-spacing"):
        render_trajectories(tmp_path / "x", 1, **{**kwargs, "surface_spacing": 0.0})


def test_cli_renders_trajectories(tmp_path, capsys) -> None:
    import argparse

    from densemtl.data import synthetic_cli

    parser = argparse.ArgumentParser()
    synthetic_cli.add_arguments(parser)
    root = tmp_path / "cli"
    argv = ["--trajectory", "1", "--frames", "2", "--size", "16x20", "--root", str(root)]
    assert synthetic_cli.run(parser.parse_args([*argv, "--surface-spacing", "0.1", "--workers", "1"])) == 0
    assert "1 x 2 frames" in capsys.readouterr().out
    assert (root / "traj_0000" / "surface.npz").is_file()
    assert (root / "traj_0000" / "poses" / "000001.txt").is_file()
