"""Point-to-plane ICP recovers a known rigid motion between two ray-cast depth maps."""

from __future__ import annotations

import numpy as np
from fusion_scene import look_at, raycast
from scipy.spatial.transform import Rotation

from densemtl.fusion.odometry import FrameToFrameOdometry, icp, normal_map, vertex_map


def _k(height: int, width: int) -> np.ndarray:
    return np.array([[0.8 * width, 0, (width - 1) / 2], [0, 0.8 * width, (height - 1) / 2], [0, 0, 1.0]])


def _motion() -> np.ndarray:
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_euler("xyz", [1.5, -2.0, 1.0], degrees=True).as_matrix()
    motion[:3, 3] = [0.04, -0.02, 0.03]
    return motion


def test_icp_recovers_a_small_rigid_motion() -> None:
    height, width = 60, 80
    k = _k(height, width)
    first = look_at(np.array([1.6, 1.5, 1.3]), np.array([0.5, 0.3, 0.6]))  # a corner with a box
    second = first @ _motion()  # camera 2 in world = camera 1 moved by the motion (in its own frame)
    depth1, _ = raycast(first, k, height, width)
    depth2, _ = raycast(second, k, height, width)
    estimate, rmse, pairs = icp(depth2, depth1, k)
    truth = np.linalg.inv(first) @ second  # camera-2 points -> camera-1 frame
    assert pairs > 1000
    assert rmse < 0.005
    assert np.abs(estimate[:3, 3] - truth[:3, 3]).max() < 0.005
    angle = Rotation.from_matrix(estimate[:3, :3] @ truth[:3, :3].T).magnitude()
    assert np.degrees(angle) < 0.2
    identity_error = np.abs(truth[:3, 3]).max()
    assert identity_error > 0.02  # the motion was not trivially small


def test_odometry_chains_poses_from_the_first_frame() -> None:
    height, width = 48, 64
    k = _k(height, width)
    start = look_at(np.array([1.6, 1.5, 1.3]), np.array([0.5, 0.3, 0.6]))
    poses = [start, start @ _motion(), start @ _motion() @ _motion()]
    odometry = FrameToFrameOdometry(max_depth=6.0)
    estimated = [odometry(raycast(p, k, height, width)[0], k) for p in poses]
    np.testing.assert_allclose(estimated[0], np.eye(4))
    relative = np.linalg.inv(start) @ poses[2]
    assert np.abs(estimated[2][:3, 3] - relative[:3, 3]).max() < 0.01


def test_normals_face_the_camera() -> None:
    depth = np.full((10, 12), 2.0)
    normals = normal_map(vertex_map(depth, _k(10, 12)))
    np.testing.assert_allclose(normals[5, 6], [0, 0, -1], atol=1e-9)
    assert not normals[0].any()  # border: undefined


def _textured_wall(shift: float, height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A fronto-parallel wall 2 m away with a smooth texture, seen by a camera moved ``shift`` m along x."""
    k = _k(height, width)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (u - k[0, 2]) / k[0, 0] * 2.0 + shift, (v - k[1, 2]) / k[1, 1] * 2.0
    luma = 0.5 + 0.2 * np.sin(2 * np.pi * x / 0.5) + 0.2 * np.cos(2 * np.pi * y / 0.4)
    rgb = np.repeat((luma * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return np.full((height, width), 2.0), rgb


def test_the_photometric_term_sees_a_slide_along_a_plane() -> None:
    k = _k(48, 64)
    depth1, rgb1 = _textured_wall(0.0)
    depth2, rgb2 = _textured_wall(0.03)
    geometric, _, _ = icp(depth2, depth1, k)
    assert abs(geometric[0, 3]) < 1e-6  # point-to-plane alone: the slide is invisible
    joint, _, _ = icp(depth2, depth1, k, source_rgb=rgb2, target_rgb=rgb1)
    assert abs(joint[0, 3] - 0.03) < 0.003
