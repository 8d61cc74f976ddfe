"""KITTI: depth benchmark PNGs (uint16 / 256, sparse), the 6-class colour-coded labels, KITTI semantics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.kitti import KITTI6_PALETTE, decode_color_labels, read_calib_intrinsics
from densemtl.errors import DataError

H, W = 4, 6
DRSLEEP = Path("kitti/DrSleep+multi-task-refinenet")
CALIB = Path(
    "kitti/JarnoRalli+python_camera_library/test_data/kitti/2011_09_26_calib/2011_09_26/calib_cam_to_cam.txt"
)


def _real(shared_dir: Path, rel: Path) -> Path:
    path = shared_dir / "data" / "real" / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def test_palette_matches_cmap_kitti(shared_dir: Path) -> None:
    cmap = np.load(_real(shared_dir, DRSLEEP / "src" / "cmap_kitti.npy"))
    assert cmap.shape == (7, 3) and cmap.tolist() == [list(c) for c in KITTI6_PALETTE]


def test_real_colour_coded_labels_without_depth(shared_dir: Path, tmp_path: Path) -> None:
    examples = _real(shared_dir, DRSLEEP / "examples" / "ExpKITTI_joint")
    lst = tmp_path / "test.txt"
    lst.write_text("000099.png\tsegm_gt_000099.png\t-\n")
    ds = build_dataset("kitti", root=examples, split="test", list_file=lst)
    assert ds.tasks == ("semseg",)
    sample = ds[0]
    assert sample["image"].shape == (3, 370, 1226) and "depth" not in sample
    values = set(sample["semseg"].unique().tolist())
    assert values == {0, 1, 2, 3, 4, 5, 255}  # all six classes and void, no unknown colour
    sky_rows = torch.nonzero(sample["semseg"] == 0)[:, 0].float().mean()
    road_rows = torch.nonzero(sample["semseg"] == 2)[:, 0].float().mean()
    assert sky_rows < road_rows  # class 0 (sky) above class 2 (road): the inferred names hold


def test_calib_intrinsics(shared_dir: Path) -> None:
    fx, fy, cx, cy = read_calib_intrinsics(_real(shared_dir, CALIB), "image_02")
    assert (fx, fy, cx, cy) == pytest.approx((721.5377, 721.5377, 609.5593, 172.854))


def _benchmark(root: Path) -> Path:
    drive, date = "2011_09_26_drive_0001_sync", "2011_09_26"
    gt = root / "val" / drive / "proj_depth" / "groundtruth" / "image_02"
    raw = root / "raw" / date / drive / "image_02" / "data"
    gt.mkdir(parents=True)
    raw.mkdir(parents=True)
    (root / "raw" / date / "calib_cam_to_cam.txt").write_text(
        "P_rect_02: 7.2e+02 0 6.0e+02 4.4e+01 0 7.1e+02 1.7e+02 2.1e-01 0 0 1 2.7e-03\n"
    )
    depth = np.zeros((H, W), np.uint16)
    depth[2, 3] = 256 * 20 + 128  # 20.5 m
    depth[3, 0] = 65535  # 255.996 m
    for frame in ("0000000005.png", "0000000006.png"):
        Image.fromarray(np.full((H, W, 3), 50, np.uint8)).save(raw / frame)
        Image.fromarray(depth).save(gt / frame)
    return gt


def test_depth_benchmark_layout(tmp_path: Path) -> None:
    _benchmark(tmp_path)
    ds = build_dataset("kitti", root=tmp_path, split="val")
    assert ds.tasks == ("depth",) and ds.ids[0] == "2011_09_26_drive_0001_sync_image_02_0000000005"
    sample = ds[0]
    depth = sample["depth"][0]
    assert depth[2, 3] == pytest.approx(20.5) and depth[3, 0] == pytest.approx(65535 / 256)
    assert (depth > 0).sum() == 2  # sparse: everything else invalid
    assert sample["meta"]["intrinsics"].tolist() == pytest.approx([720.0, 710.0, 600.0, 170.0])


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    gt = _benchmark(tmp_path)
    missing = (
        tmp_path
        / "raw"
        / "2011_09_26"
        / "2011_09_26_drive_0001_sync"
        / "image_02"
        / "data"
        / "0000000006.png"
    )
    missing.unlink()
    with pytest.raises(DataError, match="raw image for depth map") as err:
        build_dataset("kitti", root=tmp_path, split="val")
    assert str(err.value).startswith(str(missing))
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "frame.png")
    labels = np.zeros((H, W, 3), np.uint8)
    labels[0, 0] = (1, 2, 3)  # not a palette colour (e.g. a JPEG-compressed label)
    Image.fromarray(labels).save(tmp_path / "segm.png")
    (gt / "0000000005.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "mixed.txt").write_text(
        "frame.png\tsegm.png\tval/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png\n"
    )
    ds = build_dataset("kitti", root=tmp_path, split="mixed", tasks=["semseg"])
    with pytest.raises(
        DataError, match=r"1 pixels have colours outside the palette, e\.g\. \[\(1, 2, 3\)\]"
    ) as err:
        ds[0]
    assert str(err.value).startswith(str(tmp_path / "segm.png"))
    ds = build_dataset("kitti", root=tmp_path, split="mixed", tasks=["depth"])
    with pytest.raises(DataError, match="cannot decode image") as err:
        ds[0]
    assert str(err.value).startswith(str(gt / "0000000005.png")) and "\n" not in str(err.value)


def test_decode_color_labels_palette_and_void() -> None:
    rgb = np.array([[[128, 128, 128], [64, 0, 128], [0, 0, 0]]], np.uint8)
    assert decode_color_labels(rgb, KITTI6_PALETTE, "x.png").tolist() == [[0, 5, 255]]


def test_kitti_semantics(tmp_path: Path) -> None:
    for split in ("training", "testing"):
        (tmp_path / split / "image_2").mkdir(parents=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / split / "image_2" / "000000_10.png")
    (tmp_path / "training" / "semantic").mkdir()
    Image.fromarray(np.array([[7, 26, 23, 0, 9, 33]] * H, np.uint8)).save(
        tmp_path / "training" / "semantic" / "000000_10.png"
    )
    train = build_dataset("kitti_semantics", root=tmp_path, split="train")
    assert train[0]["semseg"][0].tolist() == [0, 13, 10, 255, 255, 18]
    cats = build_dataset("kitti_semantics", root=tmp_path, split="train", num_classes=7)
    assert cats[0]["semseg"][0].tolist() == [0, 6, 4, 255, 255, 6]
    test = build_dataset("kitti_semantics", root=tmp_path, split="test")
    assert test.tasks == () and set(test[0]) == {"image", "meta"}


def _colour_coded(ids: np.ndarray) -> np.ndarray:
    """Ids 0..5 / 255 as multi-task-refinenet's colour-coded segm_gt PNG (KITTI6_PALETTE, void last)."""
    palette = np.array(KITTI6_PALETTE, np.uint8)
    return palette[np.where(ids == 255, len(KITTI6_PALETTE) - 1, ids)]


def _examples_folder(root: Path) -> np.ndarray:
    """The authors' examples naming: <id>.png, segm_gt_<id>.png, depth_gt_<id>.png (uint16 / 256)."""
    root.mkdir(parents=True, exist_ok=True)
    ids = np.array([[0, 1, 2, 3, 4, 5]] * H)
    ids[0, 0] = 255
    depth = np.zeros((H, W), np.uint16)
    depth[1, 2] = 256 * 12 + 64  # 12.25 m; the rest is invalid (sparse LiDAR)
    for stem in ("000001", "000002", "000003"):
        Image.fromarray(np.full((H, W, 3), 70, np.uint8)).save(root / f"{stem}.png")
    Image.fromarray(_colour_coded(ids)).save(root / "segm_gt_000001.png")
    Image.fromarray(depth).save(root / "depth_gt_000001.png")
    Image.fromarray(depth).save(root / "depth_gt_000002.png")  # depth only: no segmentation
    Image.fromarray(_colour_coded(ids)).save(root / "segm_gt_000003.png")  # segmentation only
    return ids


def test_examples_folder_layout_with_asymmetric_labels(tmp_path: Path) -> None:
    ids = _examples_folder(tmp_path / "test")
    ds = build_dataset("kitti", root=tmp_path, split="test")  # root/<split>/ holds the files
    assert ds.layout == "folder" and ds.ids == ["000001", "000002", "000003"]
    assert ds.tasks == ("semseg", "depth")
    both, depth_only, segm_only = ds[0], ds[1], ds[2]
    assert both["semseg"].tolist() == ids.tolist()
    assert both["depth"][0, 1, 2] == pytest.approx(12.25) and (both["depth"] > 0).sum() == 1
    assert "semseg" not in depth_only and depth_only["depth"][0, 1, 2] == pytest.approx(12.25)
    assert "depth" not in segm_only and segm_only["semseg"].tolist() == ids.tolist()
    flat = build_dataset("kitti", root=tmp_path / "test", split=None)  # the folder itself
    assert flat.ids == ds.ids
    assert build_dataset("kitti", root=tmp_path, split="test", tasks=["depth"])[2].keys() == {"image", "meta"}


def test_examples_folder_bad_inputs_name_the_file(tmp_path: Path) -> None:
    _examples_folder(tmp_path)
    labels = np.asarray(Image.open(tmp_path / "segm_gt_000003.png")).copy()
    labels[2, 4] = (10, 20, 30)  # not a KITTI-6 colour (e.g. a JPEG-saved label)
    Image.fromarray(labels).save(tmp_path / "segm_gt_000003.png")
    ds = build_dataset("kitti", root=tmp_path, split=None)
    with pytest.raises(
        DataError, match=r"1 pixels have colours outside the palette, e\.g\. \[\(10, 20, 30\)\]"
    ) as err:
        ds[2]
    assert str(err.value).startswith(f"{tmp_path / 'segm_gt_000003.png'}: ") and "\n" not in str(err.value)
    (tmp_path / "000002.png").unlink()  # depth_gt_000002.png loses its image
    with pytest.raises(DataError, match="depth file has no image") as err:
        build_dataset("kitti", root=tmp_path, split=None)
    assert str(err.value).startswith(str(tmp_path / "depth_gt_000002.png"))
    ds = build_dataset("kitti", root=tmp_path, split=None, strict=False)
    assert ds.ids == ["000001", "000003"] and len(ds.problems) == 1


def test_real_examples_folder(shared_dir: Path) -> None:
    examples = _real(shared_dir, DRSLEEP / "examples" / "ExpKITTI_joint")
    ds = build_dataset("kitti", root=examples, split=None)  # no list file: the folder as shipped
    assert ds.layout == "folder" and ds.ids == ["000099"] and ds.tasks == ("semseg",)
    sample = ds[0]
    assert sample["image"].shape == (3, 370, 1226) and "depth" not in sample
    assert set(sample["semseg"].unique().tolist()) == {0, 1, 2, 3, 4, 5, 255}
    assert sample["meta"]["path"] == str(examples / "000099.png")
