"""Sequence readers on tiny fixtures written here in each real on-disk format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fusion_scene import render, write_folder
from PIL import Image
from scipy.spatial.transform import Rotation

from densemtl.errors import DataError
from densemtl.fusion.sequences import (
    FolderSequence,
    ScanNetSequence,
    TumSequence,
    VideoSequence,
    detect_format,
    open_sequence,
)

H, W = 24, 32


def _png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def _rgb(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def _pose(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random 4x4 camera-to-world and its TUM ``tx ty tz qx qy qz qw``."""
    rng = np.random.default_rng(seed)
    rotation = Rotation.from_rotvec(rng.normal(0, 0.3, 3))
    t = rng.normal(0, 1, 3)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation.as_matrix(), t
    return pose, np.concatenate([t, rotation.as_quat()])


def write_tum(root: Path, n: int = 3) -> dict:
    """A TUM RGB-D folder: rgb.txt / depth.txt / groundtruth.txt with TUM's comment headers."""
    root.mkdir(parents=True)
    t0 = 1305031102.175304
    rgb_lines = ["# color images", "# file: 'rgbd_dataset_freiburg1_xyz.bag'", "# timestamp filename"]
    depth_lines = ["# depth maps", "# file: 'rgbd_dataset_freiburg1_xyz.bag'", "# timestamp filename"]
    gt_lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    depths, poses = [], []
    for i in range(n):
        t = t0 + 0.1 * i
        _rgb(root / "rgb" / f"{t:.6f}.png", i)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        raw = np.random.default_rng(10 + i).integers(2500, 20000, (H, W))
        _png16(root / "depth" / f"{t + 0.012:.6f}.png", raw)
        depth_lines.append(f"{t + 0.012:.6f} depth/{t + 0.012:.6f}.png")
        pose, row = _pose(i)
        gt_lines.append(" ".join([f"{t - 0.004:.4f}", *(f"{v:.9f}" for v in row)]))
        depths.append(raw / 5000.0)
        poses.append(pose)
    t = t0 + 0.1 * n  # an RGB image without a depth image within 0.02 s: dropped
    _rgb(root / "rgb" / f"{t:.6f}.png", 99)
    rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return {"depths": depths, "poses": poses}


def test_tum_associates_by_timestamp(tmp_path: Path) -> None:
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    truth = write_tum(root)
    sequence = open_sequence(root)
    assert isinstance(sequence, TumSequence) and len(sequence) == 3 and sequence.has_poses
    frames = list(sequence)
    for frame, depth, pose in zip(frames, truth["depths"], truth["poses"]):
        np.testing.assert_allclose(frame.depth, depth, rtol=1e-6)
        np.testing.assert_allclose(frame.pose, pose, atol=1e-6)
        assert frame.rgb.shape == (H, W, 3) and frame.labels is None
    # freiburg1's published intrinsics at 640x480, scaled to 32x24
    np.testing.assert_allclose(frames[0].intrinsics[0], [517.3 / 20, 0, 318.6 / 20])


def test_tum_errors_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "tum"
    write_tum(root)
    with open(root / "groundtruth.txt", "a") as handle:
        handle.write("1305031103.0 1.0 2.0\n")
    with pytest.raises(DataError, match=r"groundtruth\.txt: line 6"):
        TumSequence(root)
    (root / "depth.txt").unlink()
    with pytest.raises(DataError, match=r"depth\.txt: file not found"):
        TumSequence(root)


def write_scannet(root: Path) -> dict:
    """An exported ScanNet scene (SensReader): colour at a larger size than depth, 4x4 text files."""
    k_depth = np.array([[28.9, 0, 15.9, 0], [0, 28.9, 12.1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    (root / "intrinsic").mkdir(parents=True)
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", k_depth, fmt="%f")
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", k_depth * [[2], [2], [1], [1]], fmt="%f")
    poses = {}
    for i in (0, 1, 2, 10):
        _rgb(root / "color" / f"{i}.jpg", i, (2 * H, 2 * W))
        _png16(root / "depth" / f"{i}.png", np.full((H, W), 1000 + i))
        pose, _ = _pose(i)
        if i == 2:
            pose = np.full((4, 4), -np.inf)  # ScanNet's mark of a lost frame
        (root / "pose").mkdir(exist_ok=True)
        np.savetxt(root / "pose" / f"{i}.txt", pose, fmt="%f")
        poses[str(i)] = pose
    return {"k": k_depth[:3, :3], "poses": poses}


def test_scannet_scene(tmp_path: Path) -> None:
    truth = write_scannet(tmp_path / "scene0000_00")
    sequence = open_sequence(tmp_path / "scene0000_00")
    assert isinstance(sequence, ScanNetSequence) and sequence.has_poses
    frames = list(sequence)
    assert [f.id for f in frames] == ["0", "1", "2", "10"]  # numeric order
    for frame in frames:
        assert frame.rgb.shape == (H, W, 3)  # colour resized to the depth resolution
        np.testing.assert_allclose(frame.depth, (1000 + int(frame.id)) / 1000.0)
        np.testing.assert_allclose(frame.intrinsics, truth["k"])
    assert frames[2].pose is None
    np.testing.assert_allclose(frames[3].pose, truth["poses"]["10"], atol=1e-6)


def test_scannet_bad_pose_file_is_named(tmp_path: Path) -> None:
    write_scannet(tmp_path / "scene")
    (tmp_path / "scene" / "pose" / "1.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match=r"pose/1\.txt: expected a 4x4 matrix"):
        list(ScanNetSequence(tmp_path / "scene"))


def write_video(path: Path, n: int = 5, fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            rgb = np.full((H, W, 3), 40 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


def test_video_with_a_tum_pose_file(tmp_path: Path) -> None:
    write_video(tmp_path / "walk.mp4")
    poses, lines = [], ["# timestamp tx ty tz qx qy qz qw (frame times)"]
    for i in range(5):
        pose, row = _pose(i)
        poses.append(pose)
        lines.append(" ".join([f"{i / 10:.3f}", *(f"{v:.9f}" for v in row)]))
    (tmp_path / "walk.txt").write_text("\n".join(lines) + "\n")
    sequence = open_sequence(tmp_path / "walk.mp4", poses=tmp_path / "walk.txt")
    assert isinstance(sequence, VideoSequence) and sequence.has_poses and len(sequence) == 5
    frames = list(sequence)
    assert len(frames) == 5 and frames[0].depth is None
    for frame, pose in zip(frames, poses):
        np.testing.assert_allclose(frame.pose, pose, atol=1e-6)
    assert abs(int(frames[3].rgb.mean()) - 120) <= 3
    np.testing.assert_allclose(frames[0].intrinsics[0], [W, 0, (W - 1) / 2])
    without = open_sequence(tmp_path / "walk.mp4", intrinsics=(30.0, 30.0, 16.0, 12.0))
    assert not without.has_poses and next(iter(without)).pose is None
    with pytest.raises(DataError, match=r"missing\.txt: file not found"):
        VideoSequence(tmp_path / "walk.mp4", poses=tmp_path / "missing.txt")


def test_folder_trajectory_reads_frames_poses_and_surface(tmp_path: Path) -> None:
    scene = render(num_frames=3, height=H, width=W, spacing=0.1)
    root = write_folder(scene, tmp_path / "traj")
    sequence = open_sequence(root)
    assert isinstance(sequence, FolderSequence) and sequence.has_poses and len(sequence) == 3
    frames = list(sequence)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.rgb, scene.rgb[i])
        np.testing.assert_array_equal(frame.labels, scene.labels[i])
        np.testing.assert_allclose(frame.depth, scene.depth[i], atol=6e-4)  # uint16 millimetres
        np.testing.assert_allclose(frame.pose, scene.poses[i], atol=1e-12)
        np.testing.assert_allclose(frame.intrinsics, scene.intrinsics, rtol=1e-6)
    np.testing.assert_array_equal(sequence.surface.labels, scene.point_labels)
    (root / "poses" / "000001.txt").unlink()
    with pytest.raises(DataError, match=r"poses/000001\.txt: pose of this frame is missing"):
        list(open_sequence(root))
    (root / "intrinsics.json").unlink()
    with pytest.raises(DataError, match=r"intrinsics\.json"):
        open_sequence(root)


def test_bad_surface_and_unknown_layouts(tmp_path: Path) -> None:
    root = write_folder(render(num_frames=1, height=H, width=W, spacing=0.2), tmp_path / "traj")
    np.savez(root / "surface.npz", points=np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"surface\.npz: needs a 'points' array"):
        open_sequence(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="unknown sequence layout"):
        detect_format(tmp_path / "empty")
    (tmp_path / "renders" / "traj_0000").mkdir(parents=True)
    with pytest.raises(DataError, match=r"holds 1 trajectories \(traj_0000, ...\): pass one"):
        open_sequence(tmp_path / "renders")
    with pytest.raises(DataError, match="sequence not found"):
        open_sequence(tmp_path / "nowhere")
