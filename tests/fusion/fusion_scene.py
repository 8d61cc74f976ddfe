"""A tiny analytic RGB-D-semantic trajectory: a box room with boxes, ray-cast in numpy.

Independent of ``densemtl.data.synthetic`` on purpose, so the fusion code is tested against
geometry computed here from first principles: exact z-depth, labels, known camera-to-world poses
(OpenCV camera axes) and the GT surface sampled on every visible plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densemtl.data.datasets.folder import write_metadata, write_sample

CLASSES = ["wall", "floor", "ceiling", "box", "crate"]
COLORS = [[200, 200, 190], [120, 80, 40], [240, 240, 240], [30, 120, 200], [220, 40, 40]]
ROOM = np.array([4.0, 3.6, 2.5])
# (lower corner, upper corner, class) of boxes standing on the floor
BOXES = [
    (np.array([0.5, 0.4, 0.0]), np.array([1.3, 1.0, 0.7]), 3),
    (np.array([2.6, 2.4, 0.0]), np.array([3.5, 3.2, 0.5]), 4),
    (np.array([3.0, 0.3, 0.0]), np.array([3.6, 0.9, 1.1]), 3),
]


@dataclass
class Scene:
    rgb: list[np.ndarray]
    depth: list[np.ndarray]
    labels: list[np.ndarray]
    poses: list[np.ndarray]
    intrinsics: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    point_labels: np.ndarray


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes: x right, y down, z forward) looking from eye to target."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


def raycast(pose: np.ndarray, k: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """z-depth and class of every pixel centre (rays have camera z = 1, so t is the z-depth)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    d = rays_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        exits = np.where(d > 0, (ROOM - o) / d, np.where(d < 0, -o / d, np.inf))
    axis = exits.argmin(-1)
    t = exits.min(-1)
    hit_z_up = (axis == 2) & (d[..., 2] > 0)
    labels = np.where(axis < 2, 0, np.where(hit_z_up, 2, 1))
    for lower, upper, cls in BOXES:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lower - o) / d, (upper - o) / d
        near = np.nanmax(np.minimum(t1, t2), -1)
        far = np.nanmin(np.maximum(t1, t2), -1)
        hit = (near <= far) & (near > 0) & (near < t)
        t = np.where(hit, near, t)
        labels = np.where(hit, cls, labels)
    return t.astype(np.float32), labels.astype(np.int64)


def _grid(a: float, b: float, spacing: float) -> np.ndarray:
    return np.arange(a + spacing / 2, b, spacing)


def _plane(axis: int, value: float, lo: np.ndarray, hi: np.ndarray, spacing: float) -> np.ndarray:
    others = [i for i in range(3) if i != axis]
    g1, g2 = np.meshgrid(
        _grid(lo[others[0]], hi[others[0]], spacing), _grid(lo[others[1]], hi[others[1]], spacing)
    )
    points = np.zeros((g1.size, 3))
    points[:, axis] = value
    points[:, others[0]], points[:, others[1]] = g1.ravel(), g2.ravel()
    return points


def surface(spacing: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GT surface samples (points, normals, labels) of the room's inside and the boxes' visible faces."""
    points, normals, labels = [], [], []

    def add(p: np.ndarray, normal: list[float], cls: int) -> None:
        points.append(p)
        normals.append(np.tile(normal, (len(p), 1)))
        labels.append(np.full(len(p), cls))

    zero = np.zeros(3)
    floor = _plane(2, 0.0, zero, ROOM, spacing)
    covered = np.zeros(len(floor), bool)
    for lower, upper, _ in BOXES:  # the floor under a box is not a surface
        covered |= np.all((floor[:, :2] >= lower[:2]) & (floor[:, :2] <= upper[:2]), 1)
    add(floor[~covered], [0, 0, 1], 1)
    add(_plane(2, ROOM[2], zero, ROOM, spacing), [0, 0, -1], 2)
    for axis in (0, 1):
        for value, sign in ((0.0, 1.0), (ROOM[axis], -1.0)):
            normal = [0.0, 0.0, 0.0]
            normal[axis] = sign
            add(_plane(axis, value, zero, ROOM, spacing), normal, 0)
    for lower, upper, cls in BOXES:
        add(_plane(2, upper[2], lower, upper, spacing), [0, 0, 1], cls)
        for axis in (0, 1):
            for value, sign in ((lower[axis], -1.0), (upper[axis], 1.0)):
                normal = [0.0, 0.0, 0.0]
                normal[axis] = sign
                add(_plane(axis, value, lower, upper, spacing), normal, cls)
    return np.concatenate(points), np.concatenate(normals), np.concatenate(labels)


def render(
    num_frames: int = 24, height: int = 48, width: int = 64, spacing: float = 0.02, arc: float = 2 * np.pi
) -> Scene:
    """A camera circling the room centre at 1.4 m, looking outwards, alternately down and up.

    ``arc`` < 2 pi: a slow pan over that yaw range at a fixed downward pitch (small motion per
    frame, for odometry)."""
    k = np.array([[0.8 * width, 0, (width - 1) / 2], [0, 0.8 * width, (height - 1) / 2], [0, 0, 1.0]])
    centre = ROOM / 2
    rgb, depth, labels, poses = [], [], [], []
    palette = np.array(COLORS, dtype=np.uint8)
    for i in range(num_frames):
        full = arc >= 2 * np.pi
        angle = arc * i / (num_frames if full else max(num_frames - 1, 1)) - (0 if full else 2.4)
        eye = np.array([centre[0] + 0.3 * np.cos(angle), centre[1] + 0.3 * np.sin(angle), 1.4])
        pitch = (-0.35 if i % 2 == 0 else 0.25) if full else -0.3
        target = eye + np.array([np.cos(angle), np.sin(angle), pitch])
        pose = look_at(eye, target)
        d, lab = raycast(pose, k, height, width)
        rgb.append(palette[lab])
        depth.append(d)
        labels.append(lab)
        poses.append(pose)
    points, normals, point_labels = surface(spacing)
    return Scene(
        rgb, depth, labels, poses, k, points.astype(np.float32), normals.astype(np.float32), point_labels
    )


def write_folder(scene: Scene, root: Path) -> Path:
    """The scene in the folder format with ``poses/`` and ``surface.npz`` (a rendered trajectory)."""
    ids = [f"{i:06d}" for i in range(len(scene.rgb))]
    k = scene.intrinsics
    write_metadata(
        root, CLASSES, COLORS, {"fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2]}, {"test": ids}
    )
    (root / "poses").mkdir(parents=True, exist_ok=True)
    for i, sample_id in enumerate(ids):
        write_sample(root, sample_id, scene.rgb[i], depth=scene.depth[i], semantic=scene.labels[i])
        np.savetxt(root / "poses" / f"{sample_id}.txt", scene.poses[i])
    np.savez(root / "surface.npz", points=scene.points, normals=scene.normals, labels=scene.point_labels)
    return root
