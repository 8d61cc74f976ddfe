"""Camera poses from depth (+ RGB) when a sequence has none: frame-to-frame point-to-plane ICP.

Point-to-plane ICP (Chen & Medioni 1992; linearised as in Low 2004) with projective data
association (Blais & Levine 1995, as KinectFusion, Newcombe et al. 2011): each point of the current
frame, moved by the current estimate into the previous camera, is paired with the previous frame's
vertex at the pixel it projects to; pairs farther apart than a distance gate are dropped. Each
Gauss-Newton step minimises ``sum_i ((T p_i - q_i) . n_i)^2`` over a small twist, solved as a 6x6
linear system in numpy; a coarse-to-fine schedule (every 4th, 2nd, then every pixel) widens the
basin of convergence. With RGB, a photometric term joins each step (:func:`icp`). Vectorised
numpy throughout; hand-written because no kept library offers
projective point-to-plane ICP on depth maps without Open3D (see docs/fusion.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation


def vertex_map(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-frame points ``[H, W, 3]`` (OpenCV axes) of a z-depth map; invalid pixels are 0."""
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    d = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float64)
    k = intrinsics
    return np.stack([(u - k[0, 2]) * d / k[0, 0], (v - k[1, 2]) * d / k[1, 1], d], axis=-1)


def normal_map(points: np.ndarray, max_step: float = 0.1) -> np.ndarray:
    """Unit normals ``[H, W, 3]`` from central differences, facing the camera; 0 where undefined."""
    dx = np.zeros_like(points)
    dy = np.zeros_like(points)
    dx[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dy[1:-1] = points[2:] - points[:-2]
    normals = np.cross(dx, dy)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    valid = points[..., 2] > 0
    valid[:, 1:-1] &= (points[:, 2:, 2] > 0) & (points[:, :-2, 2] > 0)
    valid[1:-1] &= (points[2:, :, 2] > 0) & (points[:-2, :, 2] > 0)
    valid[:, [0, -1]] = False
    valid[[0, -1]] = False
    # a depth edge is not a surface: skip normals across jumps
    valid &= (np.abs(dx[..., 2]) < max_step) & (np.abs(dy[..., 2]) < max_step) & (norm[..., 0] > 0)
    normals = np.where(valid[..., None], normals / np.maximum(norm, 1e-12), 0.0)
    facing = np.sum(normals * points, axis=-1, keepdims=True) > 0
    return np.where(facing, -normals, normals)


def _twist(x: np.ndarray) -> np.ndarray:
    step = np.eye(4)
    step[:3, :3] = Rotation.from_rotvec(x[:3]).as_matrix()
    step[:3, 3] = x[3:]
    return step


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> luma in [0, 1] (ITU-R BT.601 weights)."""
    return (np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0, image.shape[1] - 1.000001)
    v = np.clip(v, 0, image.shape[0] - 1.000001)
    u0, v0 = u.astype(np.int64), v.astype(np.int64)
    a, b = u - u0, v - v0
    top = image[v0, u0] * (1 - a) + image[v0, u0 + 1] * a
    bottom = image[v0 + 1, u0] * (1 - a) + image[v0 + 1, u0 + 1] * a
    return top * (1 - b) + bottom * b


def _photometric_terms(
    q: np.ndarray,
    source_values: np.ndarray,
    target_gray: np.ndarray,
    gradients: tuple[np.ndarray, np.ndarray],
    k: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``I_t(pi(q)) - I_s(p)`` and their Jacobian ``[q x g, g]`` w.r.t. the twist, with
    ``g = grad I_t . d pi / d q`` (Steinbruecker et al. 2011; Park et al. 2017)."""
    z = q[:, 2]
    u = k[0, 0] * q[:, 0] / z + k[0, 2]
    v = k[1, 1] * q[:, 1] / z + k[1, 2]
    residual = _bilinear(target_gray, u, v) - source_values
    gu, gv = (_bilinear(g, u, v) for g in gradients)
    g = np.stack(
        [gu * k[0, 0] / z, gv * k[1, 1] / z, -(gu * k[0, 0] * q[:, 0] + gv * k[1, 1] * q[:, 1]) / z**2],
        axis=1,
    )
    return residual, np.concatenate([np.cross(q, g), g], axis=1)


def icp(
    source_depth: np.ndarray,
    target_depth: np.ndarray,
    intrinsics: np.ndarray,
    initial: np.ndarray | None = None,
    strides: Sequence[int] = (4, 2, 1),
    iterations: Sequence[int] = (10, 6, 4),
    max_distances: Sequence[float] = (0.2, 0.1, 0.05),
    min_pairs: int = 50,
    source_rgb: np.ndarray | None = None,
    target_rgb: np.ndarray | None = None,
    photometric_weight: float = 0.5,
) -> tuple[np.ndarray, float, int]:
    """The rigid motion ``T`` (4x4) that maps source-camera points into the target camera.

    With both RGB images, each step also minimises the photometric error of the pairs, weighted by
    ``photometric_weight`` (metres per unit of [0, 1] luma): point-to-plane alone cannot see a slide
    along a plane or a wall-floor edge, the image texture can (RGB-D odometry as in Whelan et al.,
    Kintinuous, ICRA 2013).

    Returns ``(T, rmse of the point-to-plane residuals in metres, number of pairs)`` of the last
    step; ``T = initial`` (identity) when too few pairs are found.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    target = vertex_map(target_depth, k)
    target_normals = normal_map(target)
    source = vertex_map(source_depth, k)
    photometric = source_rgb is not None and target_rgb is not None and photometric_weight > 0
    if photometric:
        source_gray, target_gray = grayscale(source_rgb), grayscale(target_rgb)
        gradients = (np.gradient(target_gray, axis=1), np.gradient(target_gray, axis=0))
    height, width = target_depth.shape
    transform = np.eye(4) if initial is None else np.asarray(initial, dtype=np.float64).copy()
    rmse, pairs = float("nan"), 0
    for stride, steps, gate in zip(strides, iterations, max_distances):
        points = source[::stride, ::stride].reshape(-1, 3)
        has_depth = points[:, 2] > 0
        points = points[has_depth]
        values = source_gray[::stride, ::stride].reshape(-1)[has_depth] if photometric else None
        for _ in range(steps):
            q = points @ transform[:3, :3].T + transform[:3, 3]
            z = np.maximum(q[:, 2], 1e-6)
            u = np.round(k[0, 0] * q[:, 0] / z + k[0, 2]).astype(np.int64)
            v = np.round(k[1, 1] * q[:, 1] / z + k[1, 2]).astype(np.int64)
            ok = (q[:, 2] > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            m = target[v[ok], u[ok]]
            n = target_normals[v[ok], u[ok]]
            good = (np.abs(n).sum(1) > 0) & (np.linalg.norm(q[ok] - m, axis=1) < gate)
            q, m, n = q[ok][good], m[good], n[good]
            pairs = len(q)
            if pairs < min_pairs:
                break
            residual = np.sum((q - m) * n, axis=1)
            jacobian = np.concatenate([np.cross(q, n), n], axis=1)
            hessian, gradient = jacobian.T @ jacobian, jacobian.T @ residual
            if photometric:
                r_photo, j_photo = _photometric_terms(q, values[ok][good], target_gray, gradients, k)
                w2 = photometric_weight**2
                hessian = hessian + w2 * j_photo.T @ j_photo
                gradient = gradient + w2 * j_photo.T @ r_photo
            x = np.linalg.lstsq(hessian, -gradient, rcond=None)[0]
            transform = _twist(x) @ transform
            rmse = float(np.sqrt(np.mean(residual**2)))
            if np.linalg.norm(x) < 1e-7:
                break
    return transform, rmse, pairs


class FrameToFrameOdometry:
    """Chains frame-to-frame ICP into camera-to-world poses; the first frame is ``initial_pose``
    (default: the world origin).

    Example::

        odometry = FrameToFrameOdometry()
        poses = [odometry(depth, K) for depth in depths]
    """

    def __init__(self, max_depth: float | None = None, initial_pose: np.ndarray | None = None) -> None:
        self.max_depth = max_depth
        self.previous: np.ndarray | None = None
        self.previous_rgb: np.ndarray | None = None
        self.pose = np.eye(4) if initial_pose is None else np.asarray(initial_pose, dtype=np.float64).copy()
        self.last_motion = np.eye(4)
        self.rmse: list[float] = []

    def __call__(
        self, depth: np.ndarray, intrinsics: np.ndarray, rgb: np.ndarray | None = None
    ) -> np.ndarray:
        """The camera-to-world pose of this frame (``rgb``: adds the photometric term of :func:`icp`)."""
        depth = np.asarray(depth, dtype=np.float64)
        if self.max_depth is not None:
            depth = np.where(depth <= self.max_depth, depth, 0.0)
        if self.previous is not None:
            # constant-velocity initial guess: the previous step's motion
            motion, rmse, _ = icp(
                depth,
                self.previous,
                intrinsics,
                self.last_motion,
                source_rgb=rgb,
                target_rgb=self.previous_rgb,
            )
            self.pose = self.pose @ motion
            self.last_motion = motion
            self.rmse.append(rmse)
        self.previous, self.previous_rgb = depth, rgb
        return self.pose.copy()
