"""ScanNet exported frames: label map (tsv) to NYU-40 / ScanNet-20, resizing, scene splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.scannet import SCANNET20_CLASS_NAMES, read_scannet_label_map
from densemtl.errors import DataError

META = Path("scannet/open-mmlab+mmdetection3d/data/scannet/meta_data")
TSV = "id\traw_category\tcategory\tcount\tnyu40id\tnyu40class\n1\twall\twall\t1\t1\twall\n2\tchair\tchair\t1\t5\tchair\n" \
      "300\tlamp\tlamp\t1\t35\tlamp\n1000\tmystery\tmystery\t1\t0\t\n"  # fmt: skip


def _real(shared_dir: Path, rel: Path) -> Path:
    path = shared_dir / "data" / "real" / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def test_real_label_map_and_splits(shared_dir: Path) -> None:
    meta = _real(shared_dir, META)
    lut40 = read_scannet_label_map(meta / "scannetv2-labels.combined.tsv", 40)
    lut20 = read_scannet_label_map(meta / "scannetv2-labels.combined.tsv", 20)
    assert lut40[0] == 255 and lut40[1] == 0 and lut40[2] == 4  # wall -> wall, chair -> chair (nyu40 5)
    assert lut20[1] == 0 and lut20[2] == SCANNET20_CLASS_NAMES.index("chair")
    assert (lut40[lut40 >= 0] < 40).sum() > 500  # hundreds of raw categories map into NYU-40
    scenes = {s: len((meta / f"scannetv2_{s}.txt").read_text().split()) for s in ("train", "val", "test")}
    assert scenes == {"train": 1201, "val": 312, "test": 100}


def _scene(root: Path, frames: int = 3) -> Path:
    scene = root / "scans" / "scene0000_00"
    for sub in ("color", "depth", "label-filt", "intrinsic"):
        (scene / sub).mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        Image.fromarray(np.full((968, 1296, 3), 120, np.uint8)).save(scene / "color" / f"{i}.jpg")
        Image.fromarray(np.full((480, 640), 1500, np.uint16)).save(scene / "depth" / f"{i}.png")
        labels = np.zeros((968, 1296), np.uint16)
        labels[:484] = 1  # wall
        labels[484:, :648] = 300  # lamp, an id above 255
        labels[484:, 648:] = 2  # chair
        Image.fromarray(labels).save(scene / "label-filt" / f"{i}.png")
    (scene / "intrinsic" / "intrinsic_depth.txt").write_text(
        "577.6 0 318.9 0\n0 578.7 242.7 0\n0 0 1 0\n0 0 0 1\n"
    )
    (root / "scannetv2-labels.combined.tsv").write_text(TSV)
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")
    return scene


def test_frames_are_resized_and_mapped(tmp_path: Path) -> None:
    _scene(tmp_path)
    ds = build_dataset("scannet", root=tmp_path, split="train")
    assert ds.ids == ["scene0000_00_0", "scene0000_00_1", "scene0000_00_2"] and ds.tasks == (
        "semseg",
        "depth",
    )
    sample = ds[0]
    assert sample["image"].shape == (3, 480, 640) and sample["semseg"].shape == (480, 640)
    assert torch.allclose(sample["depth"], torch.full((1, 480, 640), 1.5))
    assert sample["semseg"][0, 0] == 0 and sample["semseg"][-1, 0] == 34 and sample["semseg"][-1, -1] == 4
    assert set(sample["semseg"].unique().tolist()) == {0, 4, 34}  # nearest: no invented ids
    assert sample["meta"]["intrinsics"].tolist() == pytest.approx([577.6, 578.7, 318.9, 242.7])
    s20 = build_dataset("scannet", root=tmp_path, split="train", num_classes=20)[0]["semseg"]
    assert set(s20.unique().tolist()) == {0, 4, 255}  # lamp is not a benchmark class
    assert build_dataset("scannet", root=tmp_path, split="train", frame_skip=2).ids == [
        "scene0000_00_0",
        "scene0000_00_2",
    ]


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    scene = _scene(tmp_path, frames=2)
    (scene / "depth" / "1.png").unlink()
    with pytest.raises(DataError, match=r"depth file for .* is missing") as err:
        build_dataset("scannet", root=tmp_path, split="train")
    assert str(err.value).startswith(str(scene / "depth" / "1.png"))
    ds = build_dataset("scannet", root=tmp_path, split="train", strict=False)
    assert len(ds) == 1
    Image.fromarray(np.full((968, 1296), 77, np.uint16)).save(scene / "label-filt" / "0.png")
    with pytest.raises(DataError, match=r"label ids \[77\] are outside the ScanNet ids") as err:
        ds[0]
    assert str(err.value).startswith(str(scene / "label-filt" / "0.png"))
    with pytest.raises(DataError, match="label map not found") as err:
        build_dataset("scannet", root=tmp_path, split="train", label_map=tmp_path / "none.tsv", strict=False)
    assert str(tmp_path / "none.tsv") in str(err.value)
    with pytest.raises(DataError, match="scene split file not found"):
        build_dataset("scannet", root=tmp_path, split="val")
