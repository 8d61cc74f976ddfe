"""SUN RGB-D: bit-rotated depth, the 8 m cap, 37 classes, both supported layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.sunrgbd import decode_sunrgbd_depth, encode_sunrgbd_depth
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
    with pytest.raises(DataError, match=r"depth file for 000002\.jpg is missing") as err:
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
    with pytest.raises(DataError, match=r"neither test\.txt, test/ nor .*SUNRGBD2Dseg\.mat found"):
        build_dataset("sunrgbd", root=tmp_path, split="test")


# -- the official release: SUNRGBDMeta.mat + allsplit.mat + SUNRGBD2Dseg.mat (MATLAB v7.3) ---------

MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
)
RELEASE = "/n/fs/sun3d/data/SUNRGBD/"
FRAMES = (  # (frame folder, image name, depth name, split) in SUNRGBDMeta order
    ("kv1/NYUdata/NYU0001", "NYU0001.jpg", "NYU0001.png", "test"),
    (
        "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize",
        "0000103.jpg",
        "0000103.png",
        "train",
    ),
    ("kv1/NYUdata/NYU0002", "NYU0002.jpg", "NYU0002.png", "train"),
)


def _seglabels(n: int) -> list[np.ndarray]:
    """Frame i's 37-class labels [H, W]: column 0 void, then 1..5, and i + 37 - n in the last row."""
    labels = []
    for i in range(n):
        frame = np.tile(np.arange(W, dtype=np.uint8), (H, 1))  # 0 = void, 1..5
        frame[-1] = 37 - i
        labels.append(frame)
    return labels


def _write_seg_mat(path: Path, labels: list[np.ndarray], column_major: bool = True) -> None:
    """SUNRGBD2Dseg.mat as MATLAB v7.3 writes it: an HDF5 file behind a 512-byte text header, the
    struct SUNRGBD2Dseg as a group whose field seglabel is an (N, 1) dataset of object references
    into #refs#, each label map stored column-major, i.e. (W, H) in h5py's view."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        group = f.create_group("SUNRGBD2Dseg")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        seglabel = group.create_dataset("seglabel", (len(labels), 1), dtype=h5py.ref_dtype)
        for i, frame in enumerate(labels):
            data = refs.create_dataset(f"l{i}", data=frame.T if column_major else frame)
            data.attrs["MATLAB_class"] = np.bytes_("uint8")
            seglabel[i, 0] = data.ref
    with open(path, "r+b") as f:  # MATLAB's header in the user block
        f.write(MATLAB_HEADER.ljust(512, b" "))


def _toolbox_layout(root: Path) -> list[np.ndarray]:
    import scipy.io

    for folder, image, depth, _ in FRAMES:
        base = root / "SUNRGBD" / folder
        (base / "image").mkdir(parents=True)
        (base / "depth").mkdir()
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(base / "image" / image)
        Image.fromarray(np.full((H, W), _stored(1500), np.uint16)).save(base / "depth" / depth)
        (base / "intrinsics.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")
    meta = np.zeros((1, len(FRAMES)), dtype=[("rgbpath", object), ("depthpath", object), ("rgbname", object)])
    for i, (folder, image, depth, _) in enumerate(FRAMES):
        meta[0, i] = (f"{RELEASE}{folder}/image/{image}", f"{RELEASE}{folder}/depth/{depth}", image)
    toolbox = root / "SUNRGBDtoolbox"
    (toolbox / "Metadata").mkdir(parents=True)
    (toolbox / "traintestSUNRGBD").mkdir()
    scipy.io.savemat(toolbox / "Metadata" / "SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
    split = {
        s: np.array([RELEASE + f for f, _, _, t in FRAMES if t == s], dtype=object) for s in ("train", "test")
    }
    scipy.io.savemat(
        toolbox / "traintestSUNRGBD" / "allsplit.mat", {"alltrain": split["train"], "alltest": split["test"]}
    )
    labels = _seglabels(len(FRAMES))
    _write_seg_mat(toolbox / "Metadata" / "SUNRGBD2Dseg.mat", labels)
    return labels


def test_toolbox_layout_reads_sunrgbd2dseg(tmp_path: Path) -> None:
    labels = _toolbox_layout(tmp_path)
    train = build_dataset("sunrgbd", root=tmp_path, split="train")
    assert train.layout == "toolbox" and train.tasks == ("semseg", "depth")
    assert train.ids == [FRAMES[1][0].rsplit("/", 1)[-1], "NYU0002"]  # SUNRGBDMeta order, alltrain only
    sample = train[1]  # frame 3 of the release, label map 2 of SUNRGBD2Dseg
    expected = torch.from_numpy(labels[2].astype(np.int64) - 1)
    expected[expected < 0] = 255  # 0 = void -> ignore, 1..37 -> 0..36
    assert torch.equal(sample["semseg"], expected)
    assert sample["semseg"][0].tolist() == [255, 0, 1, 2, 3, 4] and (sample["semseg"][-1] == 34).all()
    assert torch.allclose(sample["depth"], torch.full((1, H, W), 1.5))
    assert sample["meta"]["intrinsics"].tolist() == [529.5, 529.5, 365.0, 265.0]
    test = build_dataset("sunrgbd", root=tmp_path, split="val")  # val = test
    assert test.ids == ["NYU0001"] and (test[0]["semseg"][-1] == 36).all()
    assert len(build_dataset("sunrgbd", root=tmp_path, split="all")) == 3


def test_toolbox_layout_bad_files_name_the_file(tmp_path: Path) -> None:
    _toolbox_layout(tmp_path)
    seg = tmp_path / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat"
    seg.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5" + bytes(200))
    with pytest.raises(DataError, match=r"not a MATLAB v7\.3 \(HDF5\) file") as err:
        build_dataset("sunrgbd", root=tmp_path, split="train", layout="toolbox")
    assert str(err.value).startswith(f"{seg}: ") and "\n" not in str(err.value)
    import h5py

    with h5py.File(seg, "w") as f:  # an HDF5 file without the struct
        f.create_dataset("seglabel", data=np.zeros((3, 1)))
    with pytest.raises(DataError, match="expected the struct 'SUNRGBD2Dseg' with a field 'seglabel'") as err:
        build_dataset("sunrgbd", root=tmp_path, split="train")
    assert str(err.value).startswith(f"{seg}: ")
    _write_seg_mat(seg, _seglabels(2))  # one label map short of SUNRGBDMeta's 3 frames
    with pytest.raises(DataError, match=r"2 label maps, but SUNRGBDMeta\.mat lists 3 frames") as err:
        build_dataset("sunrgbd", root=tmp_path, split="train")
    assert str(err.value).startswith(f"{seg}: ")
    bad = _seglabels(3)
    bad[2][0, 0] = 38  # not one of the 37 classes
    _write_seg_mat(seg, bad)
    ds = build_dataset("sunrgbd", root=tmp_path, split="train")
    with pytest.raises(DataError, match=r"label ids \[38\] are outside the SUN RGB-D ids 0\.\.37") as err:
        ds[1]
    assert str(err.value).startswith(f"{seg}:SUNRGBD2Dseg.seglabel[2]: ") and "\n" not in str(err.value)
    other = tmp_path / "other"
    _toolbox_layout(other)
    seg = other / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat"
    _write_seg_mat(seg, _seglabels(3), column_major=False)  # label maps not transposed: wrong size
    with pytest.raises(DataError, match="size 4x6 does not match image 6x4") as err:
        build_dataset("sunrgbd", root=other, split="test")[0]
    assert str(err.value).startswith(f"{seg}:SUNRGBD2Dseg.seglabel[0]: ")
