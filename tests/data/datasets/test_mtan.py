"""mtan's preprocessed .npy sets: NYUv2-13 and Cityscapes (scaled inverse depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.data.datasets import build_dataset
from densemtl.errors import DataError
from fixtures.real_formats import write_example

H, W = 4, 6


def _mtan(root: Path, split: str, n: int, folders: dict[str, np.ndarray]) -> None:
    for name, array in folders.items():
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            np.save(root / split / name / f"{i}.npy", array)


def test_mtan_cityscapes_inverse_depth_and_labels(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    label = np.full((H, W), 3.0, np.float32)
    label[0] = -1.0
    inverse = np.full((H, W, 1), 0.2, np.float32)
    _mtan(tmp_path, "train", 12, {"image": image, "label_7": label, "label_19": label + 10, "depth": inverse})
    ds = build_dataset("cityscapes_mtan", root=tmp_path, split="train")
    assert ds.ids[:3] == ["train_0", "train_1", "train_2"] and ds.ids[-1] == "train_11"  # numeric order
    sample = ds[0]
    assert torch.allclose(sample["image"], torch.from_numpy(image).permute(2, 0, 1))
    assert (sample["semseg"][0] == 255).all() and (sample["semseg"][1:] == 3).all()
    assert sample["meta"]["target"] == "inverse_depth" and torch.allclose(
        sample["depth"], torch.full((1, H, W), 0.2)
    )
    assert set(ds[0]["semseg"].unique().tolist()) == {3, 255}
    assert (
        build_dataset("cityscapes_mtan", root=tmp_path, split="train", num_classes=19)[0]["semseg"][1, 0]
        == 13
    )
    (tmp_path / "train" / "label_7").rename(tmp_path / "train" / "label")  # LibMTL's name
    assert build_dataset("cityscapes_mtan", root=tmp_path, split="train").tasks == ("semseg", "depth")


def test_mtan_nyuv2_and_bad_inputs(tmp_path: Path) -> None:
    image = np.full((H, W, 3), 0.5, np.float32)
    normals = np.zeros((H, W, 3), np.float32)
    normals[..., 1] = -1  # facing the camera in normals_gt's axes (y away from the camera)
    _mtan(tmp_path, "val", 2, {"image": image, "label": np.full((H, W), 12.0, np.float32),
                               "depth": np.full((H, W, 1), 2.0, np.float32), "normal": normals})  # fmt: skip
    ds = build_dataset("nyuv2_mtan", root=tmp_path, split="test")  # test = mtan's val folder
    assert ds.tasks == ("semseg", "depth", "normals") and ds.class_names[12] == "window"
    sample = ds[1]
    assert (sample["semseg"] == 12).all() and torch.allclose(sample["normals"][2], torch.full((H, W), -1.0))
    np.save(tmp_path / "val" / "label" / "1.npy", np.full((H, W), 13.0, np.float32))
    with pytest.raises(DataError, match=r"label ids \[13\] outside the 13 classes") as err:
        ds[1]
    assert str(err.value).startswith(str(tmp_path / "val" / "label" / "1.npy"))
    bad_depth = np.full((H, W, 1), np.nan, np.float32)
    np.save(tmp_path / "val" / "depth" / "0.npy", bad_depth)
    with pytest.raises(DataError, match="NaN") as err:
        ds[0]
    assert str(err.value).startswith(str(tmp_path / "val" / "depth" / "0.npy"))
    (tmp_path / "val" / "image" / "1.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read \.npy") as err:
        ds[1]
    assert str(tmp_path / "val" / "image" / "1.npy") in str(err.value)


def test_mtan_cityscapes_disparity_task(tmp_path: Path) -> None:
    kwargs = write_example("cityscapes_mtan", tmp_path, num_samples=2, size=(8, 16))
    stored = np.load(tmp_path / "train" / "depth" / "1.npy")[..., 0]
    ds = build_dataset("cityscapes_mtan", **kwargs, tasks=["semseg", "disparity"])
    sample = ds[1]
    assert ds.tasks == ("semseg", "disparity") and "depth" not in sample
    assert torch.equal(sample["disparity"][0], torch.from_numpy(stored))  # stored units, no flag
    assert "target" not in sample["meta"] and "baseline" not in sample["meta"]
    legacy = build_dataset("cityscapes_mtan", **kwargs)[1]  # default: depth key + inverse_depth flag
    assert legacy["meta"]["target"] == "inverse_depth" and torch.equal(legacy["depth"], sample["disparity"])
    with pytest.raises(DataError, match="'disparity' is not available"):
        build_dataset("nyuv2_mtan", root=tmp_path, split="train", tasks=["disparity"])
