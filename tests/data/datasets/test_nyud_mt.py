"""NYUD_MT (Multi-Task-Learning-PyTorch) and ATRC/InvPT NYUDv2 folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.errors import DataError

H, W = 4, 6


def _nyud(root: Path, names: list[str], normals_png: bool = False) -> None:
    for sub in ("images", "segmentation", "depth", "normals", "gt_sets"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.full((H, W, 3), 60, np.uint8)).save(root / "images" / f"{name}.jpg")
        seg = np.full((H, W), 40, np.uint8)
        seg[0] = 0
        seg[1] = 1
        Image.fromarray(seg).save(root / "segmentation" / f"{name}.png")
        np.save(root / "depth" / f"{name}.npy", np.full((H, W), 3.25, np.float32))
        normals = np.zeros((H, W, 3), np.float32)
        # a wall facing the camera in normals_gt's axes (y away from the camera); not unit: it is
        # re-normalised; row 0 all-zero = invalid
        normals[1:] = (0.0, -2.0, 0.0)
        if normals_png:
            valid = (normals != 0).any(-1, keepdims=True)  # PNG: 2 * x / 255 - 1, (0, 0, 0) = invalid
            encoded = np.where(valid, (normals / 2 + 1) * 127.5, 0).round().astype(np.uint8)
            Image.fromarray(encoded).save(root / "normals" / f"{name}.png")
        else:
            np.save(root / "normals" / f"{name}.npy", normals)
    (root / "gt_sets" / "train.txt").write_text("\n".join(names) + "\n")
    (root / "gt_sets" / "val.txt").write_text(names[0] + "\n")


@pytest.mark.parametrize("normals_png", [False, True])
def test_nyud_mt_folders(tmp_path: Path, normals_png: bool) -> None:
    _nyud(tmp_path, ["img_5001", "img_5002"], normals_png)
    ds = build_dataset("nyud_mt", root=tmp_path, split="train")
    assert ds.ids == ["img_5001", "img_5002"] and ds.tasks == ("semseg", "depth", "normals")
    sample = ds[0]
    assert sample["semseg"][0].tolist() == [255] * W and sample["semseg"][1].tolist() == [0] * W
    assert (sample["semseg"][2:] == 39).all()
    assert torch.allclose(sample["depth"], torch.full((1, H, W), 3.25))
    assert (sample["normals"][:, 0] == 0).all()
    assert torch.allclose(
        sample["normals"][:, 1:], torch.tensor([0.0, 0.0, -1.0]).view(3, 1, 1).expand(3, H - 1, W), atol=0.01
    )
    assert build_dataset("nyud_mt", root=tmp_path, split="test").ids == ["img_5001"]  # val = official test
    assert build_dataset("nyud_mt", root=tmp_path, split="train", num_classes=13)[0]["semseg"][2, 0] == 6


def test_nyud_mt_bad_inputs(tmp_path: Path) -> None:
    _nyud(tmp_path, ["a", "b"])
    (tmp_path / "segmentation" / "b.png").unlink()
    with pytest.raises(DataError, match=r"semseg file for b\.jpg is missing") as err:
        build_dataset("nyud_mt", root=tmp_path, split="train")
    assert str(err.value).startswith(str(tmp_path / "segmentation" / "b.png"))
    ds = build_dataset("nyud_mt", root=tmp_path, split="train", strict=False)
    Image.fromarray(np.full((H, W), 41, np.uint8)).save(tmp_path / "segmentation" / "a.png")
    with pytest.raises(DataError, match=r"label ids \[41\] are outside NYUD_MT ids 0\.\.40") as err:
        ds[0]
    assert str(err.value).startswith(str(tmp_path / "segmentation" / "a.png"))
    (tmp_path / "gt_sets" / "train.txt").unlink()
    with pytest.raises(DataError, match="split file not found") as err:
        build_dataset("nyud_mt", root=tmp_path, split="train")
    assert str(tmp_path / "gt_sets" / "train.txt") in str(err.value)
