"""SUN RGB-D: bit-rotated depth, the 8 m cap, 37 classes, both supported layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.sunrgbd import decode_sunrgbd_depth, encode_sunrgbd_depth
from densemtl.errors import DataError

H, W = 4, 6
SUN_DEPTH = Path(
    "rgbd_misc/isl-org+Open3D@Acidburn0zzz-fork/examples/TestData/RGBD/other_formats/SUN_depth.png"
)


def _stored(mm: int) -> int:
    """SUN RGB-D's storage of ``mm`` millimetres, written out by hand: rotate left by 3 bits."""
    return ((mm << 3) | (mm >> 13)) & 0xFFFF


def test_bit_rotation_and_cap() -> None:
    stored = np.array([0, _stored(1234), _stored(7999), _stored(9000), _stored(65535)], dtype=np.uint16)
    assert decode_sunrgbd_depth(stored, max_depth=None).tolist() == pytest.approx(
        [0.0, 1.234, 7.999, 9.0, 65.535]
    )
    assert decode_sunrgbd_depth(stored).tolist() == pytest.approx(
        [0.0, 1.234, 7.999, 8.0, 8.0]
    )  # toolbox cap
    assert encode_sunrgbd_depth(np.array([1.234])).tolist() == [_stored(1234)]


def test_real_sun_depth_decodes_to_indoor_metres(shared_dir: Path) -> None:
    path = shared_dir / "data" / "real" / SUN_DEPTH
    if not path.is_file():
        pytest.skip("SUN RGB-D sample absent")
    raw = np.asarray(Image.open(path))
    depth = decode_sunrgbd_depth(raw, max_depth=None)
    valid = depth[depth > 0]
    assert 0.5 < np.median(valid) < 6.0 and valid.max() < 10.0  # a room, in metres
    assert np.median(raw[raw > 0].astype(np.float64) / 1000.0) > 10.0  # read without un-rotating: nonsense


def _folder_layout(root: Path, split: str = "train") -> None:
    base = root / split
    for sub in ("rgb", "depth", "labels_37", "intrinsics"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for stem in ("000001", "000002"):
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(base / "rgb" / f"{stem}.jpg")
        Image.fromarray(np.full((H, W), _stored(2500), np.uint16)).save(base / "depth" / f"{stem}.png")
        labels = np.full((H, W), 37, np.uint8)
        labels[0] = 0
        Image.fromarray(labels).save(base / "labels_37" / f"{stem}.png")
        (base / "intrinsics" / f"{stem}.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")


def test_split_folder_layout(tmp_path: Path) -> None:
    _folder_layout(tmp_path)
    ds = build_dataset("sunrgbd", root=tmp_path, split="train")
    assert ds.ids == ["000001", "000002"] and ds.tasks == ("semseg", "depth") and ds.num_classes == 37
    sample = ds[0]
    assert torch.allclose(sample["depth"], torch.full((1, H, W), 2.5))
    assert (
        (sample["semseg"][0] == 255).all()
        and (sample["semseg"][1:] == 36).all()
        and ds.class_names[36] == "bag"
    )
    assert sample["meta"]["intrinsics"].tolist() == [529.5, 529.5, 365.0, 265.0]


def test_list_layout_with_official_frame_folders(tmp_path: Path) -> None:
    frame = tmp_path / "SUNRGBD" / "kv1" / "NYUdata" / "NYU0001"
    (frame / "image").mkdir(parents=True)
    (frame / "depth_bfx").mkdir()
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(frame / "image" / "NYU0001.jpg")
    Image.fromarray(np.full((H, W), _stored(1000), np.uint16)).save(frame / "depth_bfx" / "NYU0001.png")
    (frame / "intrinsics.txt").write_text("518.857901 0 284.582449\n0 519.469611 208.736166\n0 0 1\n")
    (tmp_path / "test.txt").write_text(
        "SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg SUNRGBD/kv1/NYUdata/NYU0001/depth_bfx/NYU0001.png\n"
    )
    ds = build_dataset("sunrgbd", root=tmp_path, split="test")
    assert ds.ids == ["NYU0001"] and ds.tasks == ("depth",)
    sample = ds[0]
    assert torch.allclose(sample["depth"], torch.full((1, H, W), 1.0)) and "semseg" not in sample
    assert sample["meta"]["intrinsics"][0] == pytest.approx(518.857901)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    _folder_layout(tmp_path)
    base = tmp_path / "train"
    (base / "depth" / "000002.png").unlink()
    with pytest.raises(DataError, match="depth file of sample 000002 is missing") as err:
        build_dataset("sunrgbd", root=tmp_path, split="train")
    assert str(err.value).startswith(str(base / "depth" / "000002.png"))
    ds = build_dataset("sunrgbd", root=tmp_path, split="train", strict=False)
    assert ds.ids == ["000001"] and len(ds.problems) == 1
    Image.fromarray(np.full((H, W), 38, np.uint8)).save(base / "labels_37" / "000001.png")
    with pytest.raises(DataError, match=r"label ids \[38\] are outside the SUN RGB-D ids 0\.\.37") as err:
        ds[0]
    assert str(err.value).startswith(str(base / "labels_37" / "000001.png"))
    Image.fromarray(np.full((H + 1, W), 5, np.uint8)).save(base / "labels_37" / "000001.png")
    with pytest.raises(DataError, match="size 6x5 does not match image 6x4") as err:
        ds[0]
    assert str(err.value).startswith(str(base / "labels_37" / "000001.png")) and "\n" not in str(err.value)
    Image.fromarray(np.full((H, W), 5, np.uint8)).save(
        base / "depth" / "000001.png"
    )  # 8-bit: not a depth PNG
    with pytest.raises(DataError, match="16-bit") as err:
        ds[0]
    assert str(err.value).startswith(str(base / "depth" / "000001.png"))
    with pytest.raises(DataError, match=r"neither test\.txt nor test/ found"):
        build_dataset("sunrgbd", root=tmp_path, split="test")
