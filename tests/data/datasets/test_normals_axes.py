"""The normals of nyud_mt and nyuv2_mtan come out in OpenCV camera axes (x right, y down, z forward).

Both formats store the NYU normals of Eigen & Fergus (``normals_gt``: x right, y away from the
camera, z up; see ``EIGEN_NORMALS_AXES``). These tests fail if any axis were taken as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.base import EIGEN_NORMALS_AXES, apply_normals_axes
from densemtl.data.datasets.nyuv2 import NYU_INTRINSICS

H, W = 4, 6
# (x right, y away from the camera, z up), as normals_gt stores them -> OpenCV (x right, y down, z forward)
PLANES = {
    "floor": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "wall facing the camera": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
    "left wall": ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
}
THREE = Path("nyuv2/DrSleep+multi-task-refinenet/examples/ExpNYUD_three")
EIGEN_WINDOW = (slice(44, 471), slice(40, 601))  # normals_gt's valid window (rows 44-470, cols 40-600)
MTAN_SIZE = (288, 384)


def _plane_normals() -> np.ndarray:
    stored = np.zeros((H, W, 3), np.float32)
    for row, (eigen, _) in enumerate(PLANES.values()):
        stored[row] = eigen
    return stored  # the last row stays all-zero: invalid


def _expected_planes(normals: torch.Tensor) -> None:
    for row, (name, (_, opencv)) in enumerate(PLANES.items()):
        got = normals[:, row].T
        assert torch.allclose(got, torch.tensor(opencv).expand(W, 3), atol=0.01), name
    assert (normals[:, -1] == 0).all()


def _write_nyud_mt(root: Path, rgb: np.ndarray, depth: np.ndarray, normals: np.ndarray) -> None:
    for sub in ("images", "depth", "normals", "gt_sets"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(root / "images" / "img_5433.png")
    np.save(root / "depth" / "img_5433.npy", depth.astype(np.float32))
    np.save(root / "normals" / "img_5433.npy", normals.astype(np.float32))
    (root / "gt_sets" / "val.txt").write_text("img_5433\n")


def _write_mtan(root: Path, rgb: np.ndarray, depth: np.ndarray, normals: np.ndarray) -> None:
    for sub, array in (
        ("image", rgb.astype(np.float32) / 255.0),
        ("depth", depth[..., None].astype(np.float32)),
        ("normal", normals.astype(np.float32)),
    ):
        (root / "val" / sub).mkdir(parents=True, exist_ok=True)
        np.save(root / "val" / sub / "0.npy", array)


@pytest.mark.parametrize("fmt", ["nyud_mt npy", "nyud_mt png", "nyuv2_mtan"])
def test_known_planes_come_out_in_opencv_axes(tmp_path: Path, fmt: str) -> None:
    rgb, depth, stored = np.full((H, W, 3), 80, np.uint8), np.full((H, W), 2.0), _plane_normals()
    if fmt == "nyuv2_mtan":
        _write_mtan(tmp_path, rgb, depth, stored)
        ds = build_dataset("nyuv2_mtan", root=tmp_path, split="val")
    else:
        _write_nyud_mt(tmp_path, rgb, depth, stored)
        if fmt == "nyud_mt png":  # the ATRC/InvPT release: 8-bit PNG 2x/255 - 1
            (tmp_path / "normals" / "img_5433.npy").unlink()
            encoded = np.where(stored.any(-1, keepdims=True), np.round((stored + 1) * 127.5), 0)
            Image.fromarray(encoded.astype(np.uint8)).save(tmp_path / "normals" / "img_5433.png")
        ds = build_dataset("nyud_mt", root=tmp_path, split="val")
    _expected_planes(ds[0]["normals"])
    stored_axes = build_dataset(ds.name, root=tmp_path, split="val", normals_axes="x,y,z")[0]["normals"]
    with pytest.raises(AssertionError):  # the check does see a wrong axis convention
        _expected_planes(stored_axes)


def _normals_from_depth(depth: np.ndarray, intrinsics: tuple[float, ...], step: int) -> np.ndarray:
    """Camera-frame (OpenCV) normals of the back-projected depth, facing the camera; NaN where unknown."""
    fx, fy, cx, cy = intrinsics
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]].astype(np.float64)
    points = np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], axis=-1)
    k = step
    du = points[k:-k, 2 * k :] - points[k:-k, : -2 * k]
    dv = points[2 * k :, k:-k] - points[: -2 * k, k:-k]
    normals = np.cross(du, dv)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True) + 1e-12
    normals *= -np.sign((normals * points[k:-k, k:-k]).sum(-1, keepdims=True))  # n . ray < 0
    valid = (depth[2 * k :, k:-k] > 0) & (depth[: -2 * k, k:-k] > 0) & (depth[k:-k, 2 * k :] > 0)
    valid &= (depth[k:-k, : -2 * k] > 0) & (depth[k:-k, k:-k] > 0)
    out = np.full((*depth.shape, 3), np.nan)
    out[k:-k, k:-k] = np.where(valid[..., None], normals, np.nan)
    return out


def _median_angle(normals: torch.Tensor, reference: np.ndarray) -> float:
    ours = normals.permute(1, 2, 0).numpy().astype(np.float64)
    valid = (np.abs(ours).sum(-1) > 0) & np.isfinite(reference).all(-1)
    cos = np.clip((ours[valid] * reference[valid]).sum(-1), -1.0, 1.0)
    return float(np.median(np.degrees(np.arccos(cos))))


def test_real_normals_gt_agree_with_depth(shared_dir: Path, tmp_path: Path) -> None:
    """multi-task-refinenet's norm_gt_000433.png is normals_gt (its valid window and grey border):
    stored as NYUD_MT / mtan store it, the loaders' normals agree with the depth map's geometry."""
    folder = shared_dir / "data" / "real" / THREE
    if not (folder / "norm_gt_000433.png").is_file():
        pytest.skip(f"{folder} is absent")
    encoded = np.asarray(Image.open(folder / "norm_gt_000433.png")).astype(np.float32)
    stored = encoded * (2.0 / 255.0) - 1.0  # normals_gt's own axes, as the .npy files hold them
    grey = (np.abs(encoded - 127.5) <= 1).all(-1)
    outside = np.ones(grey.shape, bool)
    outside[EIGEN_WINDOW] = False
    assert grey[outside].all() and grey[EIGEN_WINDOW].mean() < 0.01  # normals_gt's fingerprint
    stored[grey] = 0.0  # invalid: all-zero, as in mtan's .npy
    rgb = np.asarray(Image.open(folder / "000433.png").convert("RGB"))
    depth = np.asarray(Image.open(folder / "depth_gt_000433.png")).astype(np.float32) / 5000.0

    # NYUD_MT: 480x640 with the Kinect intrinsics
    _write_nyud_mt(tmp_path / "nyud_mt", rgb, depth, stored)
    nyud = build_dataset("nyud_mt", root=tmp_path / "nyud_mt", split="val")
    reference = _normals_from_depth(depth, NYU_INTRINSICS, step=4)
    assert _median_angle(nyud[0]["normals"], reference) < 25.0
    for wrong in ("x,y,z", "x,z,y", "-x,-z,y", "x,-z,-y", "x,z,-y"):  # as stored, or one sign off
        flipped = torch.from_numpy(apply_normals_axes(stored, wrong)).permute(2, 0, 1)
        assert _median_angle(flipped, reference) > 30.0, wrong

    # mtan: normals_gt's valid window resized to 288x384 (nearest), intrinsics scaled alike
    rows, cols = EIGEN_WINDOW
    sy, sx = MTAN_SIZE[0] / (rows.stop - rows.start), MTAN_SIZE[1] / (cols.stop - cols.start)
    pick_r = np.minimum(((np.arange(MTAN_SIZE[0]) + 0.5) / sy).astype(int), rows.stop - rows.start - 1) + 44
    pick_c = np.minimum(((np.arange(MTAN_SIZE[1]) + 0.5) / sx).astype(int), cols.stop - cols.start - 1) + 40
    crop = np.ix_(pick_r, pick_c)
    _write_mtan(tmp_path / "mtan", rgb[crop], depth[crop], stored[crop])
    mtan = build_dataset("nyuv2_mtan", root=tmp_path / "mtan", split="val")
    fx, fy, cx, cy = NYU_INTRINSICS
    scaled = (fx * sx, fy * sy, (cx - 40 + 0.5) * sx - 0.5, (cy - 44 + 0.5) * sy - 0.5)
    normals = mtan[0]["normals"]
    assert _median_angle(normals, _normals_from_depth(depth[crop], scaled, step=2)) < 25.0
    floor = normals[:, 200:, 150:250]  # the floor in front of the camera points up (-y)
    assert (floor[1][floor.abs().sum(0) > 0] < -0.8).float().mean() > 0.5
    assert EIGEN_NORMALS_AXES == mtan.normals_axes == nyud.normals_axes == "x,-z,y"
