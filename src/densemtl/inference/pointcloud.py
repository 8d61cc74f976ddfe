"""Semantic point clouds (``.ply``) from predicted depth + segmentation + pinhole intrinsics.

What Nekrasov et al. (ICRA 2019) feed to SemanticFusion for 3D semantic mapping: every valid pixel
``(u, v)`` with depth ``d`` (metres) becomes the camera-frame point (OpenCV axes: x right, y down,
z forward) ``((u - cx) d / fx, (v - cy) d / fy, d)``, coloured by its class (or by the RGB image)
and carrying the class id as a ``label`` property. Written as binary little-endian PLY (``ascii=True``
for text), readable by MeshLab, CloudCompare and Open3D.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from densemtl.errors import DataError

__all__ = ["backproject", "read_ply", "semantic_pointcloud", "write_ply"]


def backproject(
    depth: np.ndarray, intrinsics: Sequence[float], stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points ``[N, 3]`` of the valid (finite, > 0) pixels, and their ``(v, u)`` indices."""
    fx, fy, cx, cy = (float(k) for k in intrinsics)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
    vs, us = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    d = depth[vs, us]
    valid = np.isfinite(d) & (d > 0)
    vs, us, d = vs[valid], us[valid], d[valid]
    points = np.stack([(us - cx) * d / fx, (vs - cy) * d / fy, d], axis=1).astype(np.float32)
    return points, np.stack([vs, us], axis=1)


def semantic_pointcloud(
    depth: np.ndarray,
    intrinsics: Sequence[float],
    labels: np.ndarray | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    rgb: np.ndarray | None = None,
    max_depth: float | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(points [N,3] float32, colours [N,3] uint8, labels [N] or None).

    Colours: the class's palette colour when ``labels`` and ``palette`` are given, else ``rgb``, else
    grey. Pixels with depth <= 0, non-finite, beyond ``max_depth`` or labelled 255 (ignore) are left out.
    """
    depth = np.asarray(depth, dtype=np.float32).copy()
    if max_depth is not None:
        depth[depth > max_depth] = 0
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != depth.shape:
            raise ValueError(f"labels {labels.shape} and depth {depth.shape} differ in size")
        depth[labels == 255] = 0
    points, idx = backproject(depth, intrinsics, stride)
    v, u = idx[:, 0], idx[:, 1]
    point_labels = labels[v, u].astype(np.int32) if labels is not None else None
    if point_labels is not None and palette is not None:
        pal = np.asarray(palette, dtype=np.uint8)
        colors = pal[np.clip(point_labels, 0, len(pal) - 1)]
    elif rgb is not None:
        colors = np.asarray(rgb, dtype=np.uint8)[v, u]
    else:
        colors = np.full((len(points), 3), 200, dtype=np.uint8)
    return points, colors, point_labels


def write_ply(
    path: str | Path,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    ascii: bool = False,
) -> Path:
    """Write a PLY point cloud (plyfile): float x, y, z; uchar red, green, blue; int label (when given)."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if labels is not None:
        fields += [("label", "<i4")]
    data = np.empty(len(points), dtype=fields)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is not None:
        c = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        data["red"], data["green"], data["blue"] = c[:, 0], c[:, 1], c[:, 2]
    if labels is not None:
        data["label"] = np.asarray(labels, dtype=np.int32).reshape(-1)
    vertex = PlyElement.describe(data, "vertex")
    PlyData([vertex], text=ascii, byte_order="<", comments=["densemtl semantic point cloud"]).write(str(path))
    return path


def read_ply(path: str | Path) -> np.ndarray:
    """The vertices of a PLY file (binary or ascii) as a numpy structured array (plyfile)."""
    from plyfile import PlyData, PlyParseError

    try:
        return np.asarray(PlyData.read(str(path))["vertex"].data)
    except (OSError, ValueError, KeyError, PlyParseError) as exc:
        raise DataError(path, f"not a readable PLY point cloud ({exc.__class__.__name__}: {exc})") from None
