from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.data import IGNORE_INDEX, collate
from densemtl.data.datasets.folder import (
    LABEL_DIRS,
    FolderDataset,
    write_labels,
    write_metadata,
    write_sample,
)
from densemtl.errors import DataError
from densemtl.tasks import get_task


def _random_sample(rng: np.random.Generator, h: int = 10, w: int = 14) -> dict[str, np.ndarray]:
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    depth = rng.uniform(0.5, 9.0, (h, w)).astype(np.float32)
    depth[0, 0] = 0.0  # invalid pixel
    semantic = rng.integers(0, 5, (h, w))
    semantic[1, 1] = 255
    return {
        "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "depth": depth,
        "semantic": semantic,
        "normals": normals,
    }


def _write(root: Path, samples: dict[str, dict], names=("a", "b", "c", "d", "e")) -> None:
    for sample_id, arrays in samples.items():
        write_sample(root, sample_id, **arrays)
    write_metadata(
        root, list(names), intrinsics={"fx": 5, "fy": 6, "cx": 7, "cy": 4}, splits={"train": list(samples)}
    )


def test_round_trip_preserves_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = _random_sample(rng)
    _write(tmp_path, {"s0": arrays})
    sample = FolderDataset(tmp_path, "train")[0]
    assert sample["image"].shape == (3, 10, 14) and sample["image"].dtype == torch.float32
    np.testing.assert_array_equal(
        (sample["image"] * 255).round().byte().permute(1, 2, 0).numpy(), arrays["rgb"]
    )
    np.testing.assert_array_equal(sample["semseg"].numpy(), arrays["semantic"])
    # uint16 millimetres: at most half a millimetre of rounding
    np.testing.assert_allclose(sample["depth"][0].numpy(), arrays["depth"], atol=5e-4)
    assert sample["depth"][0, 0, 0] == 0
    # 8-bit normals: within ~0.01 after re-normalisation
    np.testing.assert_allclose(sample["normals"].permute(1, 2, 0).numpy(), arrays["normals"], atol=0.012)
    assert sample["meta"]["id"] == "s0"
    torch.testing.assert_close(sample["meta"]["intrinsics"], torch.tensor([5.0, 6.0, 7.0, 4.0]))


def test_missing_labels_are_absent_and_collate_fills_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    full = _random_sample(rng)
    rgb_only = {"rgb": full["rgb"], "semantic": full["semantic"]}
    _write(tmp_path, {"full": full, "partial": rgb_only})
    dataset = FolderDataset(tmp_path, "train")
    assert dataset.tasks == ("semseg", "depth", "normals")
    partial = dataset[1]
    assert "depth" not in partial and "normals" not in partial and "semseg" in partial
    batch = collate([dataset[0], partial], dataset.tasks)
    assert batch["has_gt"]["depth"].tolist() == [True, False]
    assert batch["depth"][1].abs().sum() == 0 and batch["normals"][1].abs().sum() == 0


def test_pseudo_labels_are_marked_and_not_ground_truth(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arrays = _random_sample(rng)
    _write(tmp_path, {"x": {"rgb": arrays["rgb"], "depth": arrays["depth"]}})
    from densemtl.data.io import write_label_png

    write_label_png(tmp_path / "pseudo" / "semseg" / "x.png", arrays["semantic"])
    dataset = FolderDataset(tmp_path, "train", tasks=["semseg", "depth"])
    sample = dataset[0]
    assert sample["meta"]["pseudo"] == {"semseg"}
    batch = collate([sample], dataset.tasks)
    assert batch["has_gt"]["semseg"].tolist() == [False]
    assert (batch["semseg"][0] != IGNORE_INDEX).any()  # the loss can still use it
    assert "semseg" not in FolderDataset(tmp_path, "train", tasks=["semseg"], use_pseudo=False)[0]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda r: (r / "rgb" / "s0.png").write_bytes(b"not a png"), "cannot decode image"),
        (lambda r: (r / "rgb" / "s0.png").unlink(), "image listed in the split is missing"),
        (lambda r: (r / "classes.json").write_text("{bad json"), "invalid JSON"),
        (lambda r: (r / "splits" / "train.txt").unlink(), "split file not found"),
        (lambda r: (r / "depth" / "s0.png").write_bytes((r / "rgb" / "s0.png").read_bytes()), "16-bit"),
    ],
    ids=["corrupt-image", "missing-image", "bad-classes-json", "missing-split", "rgb-as-depth"],
)
def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path: Path, corrupt, message: str) -> None:
    _write(tmp_path, {"s0": _random_sample(np.random.default_rng(3))})
    corrupt(tmp_path)
    with pytest.raises(DataError) as info:
        FolderDataset(tmp_path, "train")[0]
    text = str(info.value)
    assert message in text and "\n" not in text
    assert str(tmp_path) in text


def test_label_out_of_range_names_file_and_ids(tmp_path: Path) -> None:
    arrays = _random_sample(np.random.default_rng(4))
    arrays["semantic"][2, 2] = 7  # 5 classes: ids 0..4
    _write(tmp_path, {"s0": arrays})
    with pytest.raises(DataError, match=r"semantic/s0\.png: label ids \[7\] out of range for 5 classes"):
        FolderDataset(tmp_path, "train")[0]


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    arrays = _random_sample(np.random.default_rng(5))
    _write(tmp_path, {"s0": arrays})
    write_sample(tmp_path, "s0", arrays["rgb"][:, :-2])
    with pytest.raises(DataError, match=r"semantic/s0\.png: size 14x10 does not match image 12x10"):
        FolderDataset(tmp_path, "train")[0]


def test_nan_depth_npy_is_rejected(tmp_path: Path) -> None:
    arrays = _random_sample(np.random.default_rng(6))
    _write(tmp_path, {"s0": {"rgb": arrays["rgb"]}})
    depth = arrays["depth"].copy()
    depth[3, 3] = np.nan
    (tmp_path / "depth").mkdir(exist_ok=True)
    np.save(tmp_path / "depth" / "s0.npy", depth)
    with pytest.raises(DataError, match=r"s0\.npy: depth holds 1 NaN/inf values"):
        FolderDataset(tmp_path, "train", tasks=["depth"])[0]


def test_writer_rejects_nan_depth(tmp_path: Path) -> None:
    depth = np.ones((4, 4), dtype=np.float32)
    depth[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        write_sample(tmp_path, "x", np.zeros((4, 4, 3), np.uint8), depth=depth)


def test_classes_json_layout(tmp_path: Path) -> None:
    write_metadata(tmp_path, ["x", "y"], splits={"test": ["1"]})
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert classes["names"] == ["x", "y"] and classes["ignore_index"] == 255
    assert len(classes["colors"]) == 2 and classes["colors"][0] != classes["colors"][1]
    assert (tmp_path / "splits" / "test.txt").read_text() == "1\n"


def test_every_task_reads_back_what_write_labels_wrote(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays = _random_sample(rng)
    labels = {"semseg": arrays["semantic"], "depth": arrays["depth"], "normals": arrays["normals"]}
    write_labels(tmp_path, "s0", labels)
    for name, array in labels.items():
        task = get_task(name)
        assert LABEL_DIRS[name] == task.folder
        back = task.read(tmp_path / task.folder / f"s0{task.suffixes[0]}")
        np.testing.assert_allclose(back, array, atol=0.012)


def test_dataset_ignore_index_becomes_the_contract_ignore_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    arrays = _random_sample(rng)
    arrays["semantic"][0, :3] = 9
    arrays["semantic"][arrays["semantic"] == 255] = 9
    _write(tmp_path, {"s0": arrays})
    classes = json.loads((tmp_path / "classes.json").read_text())
    (tmp_path / "classes.json").write_text(json.dumps({**classes, "ignore_index": 9}))
    semseg = FolderDataset(tmp_path, "train")[0]["semseg"]
    assert (semseg[0, :3] == IGNORE_INDEX).all() and semseg.dtype == torch.int64
