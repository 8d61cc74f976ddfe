"""Tiny example datasets written in the *official* on-disk formats of the real-dataset loaders.

``write_example(name, root)`` writes a few procedurally generated frames in exactly the layout
and encodings the loader for ``name`` expects (an HDF5 ``.mat`` with MATLAB's transposed arrays
for ``nyuv2``, bit-rotated depth PNGs for ``sunrgbd``, disparity PNGs + camera JSON for
``cityscapes``, ...) and returns the keyword arguments that open it with
:func:`densemtl.data.datasets.build_dataset`. It serves as executable documentation of the layouts,
and for ``densemtl data check`` demos and loader-speed measurements without the real data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from densemtl.data import io

#: dataset -> (stored (H, W), training (H, W)) used by the loader-speed measurement
EXAMPLE_SIZES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "nyuv2": ((480, 640), (480, 640)),
    "nyuv2_list": ((480, 640), (480, 640)),
    "nyud_mt": ((480, 640), (480, 640)),
    "nyuv2_mtan": ((288, 384), (288, 384)),
    "cityscapes": ((1024, 2048), (512, 1024)),
    "cityscapes_mtan": ((128, 256), (128, 256)),
    "sunrgbd": ((530, 730), (480, 640)),
    "kitti": ((375, 1242), (352, 1216)),
    "kitti_semantics": ((375, 1242), (352, 1216)),
    "scannet": ((480, 640), (480, 640)),
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _image(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth colour gradient with mild noise (compresses like a photo, unlike pure noise)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-60, 60, (3, 2))
    rgb = base + slope[:, 0] * (x / w)[..., None] + slope[:, 1] * (y / h)[..., None]
    rgb += rng.normal(0, 6, (h, w, 3))
    return rgb.clip(0, 255).astype(np.uint8)


def _blocks(
    rng: np.random.Generator, size: tuple[int, int], values: np.ndarray, block: int = 32
) -> np.ndarray:
    """Label map of square blocks, each holding a value drawn from ``values``."""
    h, w = size
    grid = rng.choice(values, ((h + block - 1) // block, (w + block - 1) // block))
    return np.kron(grid, np.ones((block, block), dtype=grid.dtype))[:h, :w]


def _depth(
    rng: np.random.Generator, size: tuple[int, int], near: float, far: float, holes: float = 0.05
) -> np.ndarray:
    """A slanted-plane depth map in metres with a fraction of invalid (0) pixels."""
    h, w = size
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    depth = near + (far - near) * (1 - y) * (0.7 + 0.3 * x) * rng.uniform(0.8, 1.0)
    depth[rng.random(size) < holes] = 0.0
    return depth.astype(np.float32)


def _normals(size: tuple[int, int]) -> np.ndarray:
    """Upper half a wall facing the camera, lower half a floor (OpenCV camera axes)."""
    h, w = size
    normals = np.zeros((h, w, 3), dtype=np.float32)
    normals[: h // 2] = (0.0, 0.0, -1.0)
    normals[h // 2 :] = (0.0, -0.9, -0.43589)
    return normals


def _eigen_normals(size: tuple[int, int]) -> np.ndarray:
    """:func:`_normals` in the stored axes of Eigen & Fergus' ``normals_gt`` (x right, y away, z up)."""
    opencv = _normals(size)
    return np.stack([opencv[..., 0], opencv[..., 2], -opencv[..., 1]], axis=-1)


def _png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values).astype(np.uint16)).save(path)


def _png8(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values).astype(np.uint8)).save(path)


def _npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def write_nyuv2(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    import h5py
    import scipy.io

    rng = _rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        images = f.create_dataset("images", (n, 3, w, h), dtype=np.uint8, chunks=(1, 3, w, h))
        depths = f.create_dataset("depths", (n, w, h), dtype=np.float32, chunks=(1, w, h))
        labels = f.create_dataset("labels", (n, w, h), dtype=np.uint16, chunks=(1, w, h))
        for i in range(n):
            images[i] = _image(rng, size).transpose(2, 1, 0)  # MATLAB column-major as seen by h5py
            depths[i] = _depth(rng, size, 0.7, 9.0, holes=0.0).T
            labels[i] = _blocks(rng, size, np.arange(0, 895, dtype=np.uint16)).T
    frames = np.arange(1, n + 1, dtype=np.uint16)
    scipy.io.savemat(
        root / "splits.mat",
        {"trainNdxs": frames[frames % 2 == 1][:, None], "testNdxs": frames[frames % 2 == 0][:, None]},
    )
    return {"root": root, "split": "train"}


def write_nyuv2_list(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    lines = []
    for i in range(n):
        stem = f"{i + 1:06d}"
        io.write_image(root / "images" / f"{stem}.png", _image(rng, size))
        labels = _blocks(rng, size, np.array([*range(40), 255]))
        _png8(root / "labels" / f"{stem}.png", labels)
        _png16(root / "depth" / f"{stem}.png", np.round(_depth(rng, size, 0.7, 9.0) * 5000))
        lines.append(f"images/{stem}.png\tlabels/{stem}.png\tdepth/{stem}.png")
    (root / "train.nyu").write_text("\n".join(lines) + "\n")
    return {"root": root, "split": "train"}


def write_nyud_mt(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    names = [f"img_{5001 + i}" for i in range(n)]
    for name in names:
        io.write_image(root / "images" / f"{name}.jpg", _image(rng, size))
        _png8(root / "segmentation" / f"{name}.png", _blocks(rng, size, np.arange(41)))
        _npy(root / "depth" / f"{name}.npy", _depth(rng, size, 0.7, 9.0))
        _npy(root / "normals" / f"{name}.npy", _eigen_normals(size))
    (root / "gt_sets").mkdir(parents=True, exist_ok=True)
    (root / "gt_sets" / "train.txt").write_text("\n".join(names) + "\n")
    return {"root": root, "split": "train"}


def write_nyuv2_mtan(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    for i in range(n):
        base = root / "train"
        _npy(base / "image" / f"{i}.npy", _image(rng, size).astype(np.float32) / 255.0)
        _npy(base / "label" / f"{i}.npy", _blocks(rng, size, np.arange(-1, 13)).astype(np.float32))
        _npy(base / "depth" / f"{i}.npy", _depth(rng, size, 0.7, 9.0)[..., None])
        _npy(base / "normal" / f"{i}.npy", _eigen_normals(size))
    return {"root": root, "split": "train"}


def write_cityscapes_mtan(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    for i in range(n):
        base = root / "train"
        _npy(base / "image" / f"{i}.npy", _image(rng, size).astype(np.float32) / 255.0)
        _npy(base / "label_7" / f"{i}.npy", _blocks(rng, size, np.arange(-1, 7)).astype(np.float32))
        _npy(base / "label_19" / f"{i}.npy", _blocks(rng, size, np.arange(-1, 19)).astype(np.float32))
        disparity = _depth(rng, size, 0.01, 0.45)
        _npy(base / "depth" / f"{i}.npy", disparity[..., None])
    return {"root": root, "split": "train"}


CITYSCAPES_CAMERA = {
    "extrinsic": {
        "baseline": 0.209313,
        "pitch": 0.038,
        "roll": 0.0,
        "x": 1.7,
        "y": 0.026,
        "yaw": -0.0195,
        "z": 1.212,
    },
    "intrinsic": {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137},
}


def write_cityscapes(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    for i in range(n):
        city, stem = "aachen", f"aachen_{i:06d}_000019"
        io.write_image(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", _image(rng, size))
        _png8(
            root / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png",
            _blocks(rng, size, np.arange(34), 64),
        )
        depth = _depth(rng, size, 3.0, 80.0)
        disparity = np.where(depth > 0, 0.209313 * 2262.52 / np.maximum(depth, 1e-6), 0.0)
        _png16(
            root / "disparity" / "train" / city / f"{stem}_disparity.png",
            np.where(depth > 0, np.round(disparity * 256 + 1), 0),
        )
        camera = root / "camera" / "train" / city / f"{stem}_camera.json"
        camera.parent.mkdir(parents=True, exist_ok=True)
        camera.write_text(json.dumps(CITYSCAPES_CAMERA))
    return {"root": root, "split": "train"}


def write_sunrgbd(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    from densemtl.data.sunrgbd import encode_sunrgbd_depth

    rng = _rng(seed)
    for i in range(n):
        stem, base = f"{i + 1:06d}", root / "train"
        io.write_image(base / "rgb" / f"{stem}.jpg", _image(rng, size))
        _png16(base / "depth" / f"{stem}.png", encode_sunrgbd_depth(_depth(rng, size, 0.5, 7.5)))
        _png8(base / "labels_37" / f"{stem}.png", _blocks(rng, size, np.arange(38)))
        (base / "intrinsics").mkdir(parents=True, exist_ok=True)
        (base / "intrinsics" / f"{stem}.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")
    return {"root": root, "split": "train"}


KITTI_CALIB = "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03\n"


def write_kitti(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    (root / "raw" / date).mkdir(parents=True, exist_ok=True)
    (root / "raw" / date / "calib_cam_to_cam.txt").write_text(KITTI_CALIB)
    for i in range(n):
        frame = f"{i + 5:010d}.png"
        io.write_image(root / "raw" / date / drive / "image_02" / "data" / frame, _image(rng, size))
        depth = _depth(rng, size, 5.0, 80.0, holes=0.84)  # projected LiDAR: ~16 % valid
        _png16(
            root / "train" / drive / "proj_depth" / "groundtruth" / "image_02" / frame, np.round(depth * 256)
        )
    return {"root": root, "split": "train"}


def write_kitti_semantics(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    for i in range(n):
        name = f"{i:06d}_10.png"
        io.write_image(root / "training" / "image_2" / name, _image(rng, size))
        _png8(root / "training" / "semantic" / name, _blocks(rng, size, np.arange(34), 64))
    return {"root": root, "split": "train"}


SCANNET_TSV = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
    "1\twall\twall\t8277\t1\t12\twall\twall\n"
    "2\tchair\tchair\t4646\t5\t4\tchair\tchair\n"
    "3\tbooks\tbook\t1678\t23\t2\tbooks\tbooks\n"
    "5\ttable\ttable\t1170\t7\t10\ttable\ttable\n"
    "13\tbed\tbed\t370\t4\t1\tbed\tbed\n"
    "40\tobject\tobject\t1\t40\t7\t\totherprop\n"
)


def write_scannet(root: Path, n: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = _rng(seed)
    scene = root / "scans" / "scene0000_00"
    color_size = (968, 1296)
    for i in range(n):
        io.write_image(scene / "color" / f"{i}.jpg", _image(rng, color_size))
        _png16(scene / "depth" / f"{i}.png", np.round(_depth(rng, size, 0.5, 6.0) * 1000))
        _png16(
            scene / "label-filt" / f"{i}.png", _blocks(rng, color_size, np.array([0, 1, 2, 3, 5, 13, 40]), 64)
        )
    (scene / "intrinsic").mkdir(parents=True, exist_ok=True)
    (scene / "intrinsic" / "intrinsic_depth.txt").write_text(
        "577.590698 0.000000 318.905426 0.000000\n0.000000 578.729797 242.683609 0.000000\n"
        "0.000000 0.000000 1.000000 0.000000\n0.000000 0.000000 0.000000 1.000000\n"
    )
    (root / "scannetv2-labels.combined.tsv").write_text(SCANNET_TSV)
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")
    return {"root": root, "split": "train", "size": size}


EXAMPLE_WRITERS: dict[str, Callable[[Path, int, tuple[int, int], int], dict[str, Any]]] = {
    "nyuv2": write_nyuv2,
    "nyuv2_list": write_nyuv2_list,
    "nyud_mt": write_nyud_mt,
    "nyuv2_mtan": write_nyuv2_mtan,
    "cityscapes": write_cityscapes,
    "cityscapes_mtan": write_cityscapes_mtan,
    "sunrgbd": write_sunrgbd,
    "kitti": write_kitti,
    "kitti_semantics": write_kitti_semantics,
    "scannet": write_scannet,
}


def write_example(
    name: str, root: str | Path, num_samples: int = 4, size: tuple[int, int] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Write an example of dataset ``name`` under ``root``; returns ``build_dataset`` kwargs.

    ``size`` = (height, width) of the stored frames (default: the dataset's official size;
    ScanNet colour frames are always 968x1296). The ``train`` split holds all samples (for
    ``nyuv2`` the odd-numbered frames, as ``splits.mat`` is written with the even ones as test).
    """
    if name not in EXAMPLE_WRITERS:
        raise KeyError(f"no example writer for {name!r}; known: {', '.join(sorted(EXAMPLE_WRITERS))}")
    size = size or EXAMPLE_SIZES[name][0]
    return EXAMPLE_WRITERS[name](Path(root), int(num_samples), (int(size[0]), int(size[1])), seed)
