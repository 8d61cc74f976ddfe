"""Cityscapes from its official folders: trainIds / categories, disparity -> depth, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.cityscapes import CITYSCAPES_CATEGORY_NAMES, disparity_to_depth
from densemtl.data.sample import collate
from densemtl.data.transforms import Resize
from densemtl.errors import DataError
from densemtl.metrics import MultiTaskMetrics
from fixtures.real_formats import write_example

PSEUDO = Path("cityscapes/open-mmlab+mmsegmentation/tests/data/pseudo_cityscapes_dataset")
CAMERA = {
    "extrinsic": {"baseline": 0.209313},
    "intrinsic": {"fx": 2262.52, "fy": 2265.30, "u0": 1096.98, "v0": 513.137},
}
H, W = 4, 6


def _write_frame(
    root: Path, stem: str, label_ids: np.ndarray, disparity: np.ndarray | None, split: str = "train"
) -> None:
    city = stem.split("_")[0]
    for sub in ("leftImg8bit", "gtFine", "disparity", "camera"):
        (root / sub / split / city).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 77, np.uint8)).save(
        root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
    )
    Image.fromarray(label_ids.astype(np.uint8)).save(
        root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
    )
    if disparity is not None:
        Image.fromarray(disparity.astype(np.uint16)).save(
            root / "disparity" / split / city / f"{stem}_disparity.png"
        )
    (root / "camera" / split / city / f"{stem}_camera.json").write_text(json.dumps(CAMERA))


LABEL_IDS = np.array(
    [[7, 8, 9, 26, 11, 0], [23, 24, 33, 29, 17, 21]] * 2
)  # road sidewalk parking car building unlabeled ...
DISPARITY = np.array(
    [[0, 1, 257, 25601, 513, 2]] * 4
)  # invalid, zero disparity, 1 px, 100 px, 2 px, 1/256 px


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    _write_frame(tmp_path, "aachen_000000_000019", LABEL_IDS, DISPARITY)
    _write_frame(tmp_path, "bremen_000001_000019", LABEL_IDS, DISPARITY)
    return tmp_path


def test_trainids_depth_and_intrinsics(cityscapes_root: Path) -> None:
    ds = build_dataset("cityscapes", root=cityscapes_root, split="train")
    assert ds.ids == ["aachen_000000_000019", "bremen_000001_000019"] and ds.num_classes == 19
    assert (
        ds.class_names[0] == "road"
        and ds.class_names[18] == "bicycle"
        and ds.class_colors[0] == [128, 64, 128]
    )
    sample = ds[0]
    assert sample["semseg"][0].tolist() == [0, 1, 255, 13, 2, 255]
    assert sample["semseg"][1].tolist() == [10, 11, 18, 255, 5, 8]  # caravan (29) is ignored in evaluation
    bf = 0.209313 * 2262.52
    expected = [0.0, 0.0, bf / 1.0, bf / 100.0, bf / 2.0, bf * 256.0]
    assert torch.allclose(sample["depth"][0, 0], torch.tensor(expected), rtol=1e-5)
    assert torch.allclose(sample["meta"]["intrinsics"], torch.tensor([2262.52, 2265.30, 1096.98, 513.137]))
    assert "target" not in sample["meta"]
    capped = build_dataset("cityscapes", root=cityscapes_root, split="train", max_depth=100.0)[0]["depth"][
        0, 0
    ]
    assert capped.tolist()[5] == 0.0 and capped[3] > 0


def test_categories_and_disparity_target(cityscapes_root: Path) -> None:
    ds = build_dataset(
        "cityscapes", root=cityscapes_root, split="train", num_classes=7, depth_target="disparity"
    )
    assert ds.class_names == list(CITYSCAPES_CATEGORY_NAMES)
    sample = ds[0]
    assert sample["semseg"][0].tolist() == [
        0,
        0,
        255,
        6,
        1,
        255,
    ]  # flat flat (parking ignored) vehicle construction void
    assert sample["semseg"][1].tolist() == [4, 5, 6, 255, 2, 3]
    assert torch.allclose(sample["depth"][0, 0], torch.tensor([0.0, 0.0, 1.0, 100.0, 2.0, 1 / 256]))
    assert sample["meta"]["target"] == "disparity"


def test_disparity_to_depth_formula() -> None:
    depth = disparity_to_depth(np.array([0, 1, 2, 257]), baseline=0.2, fx=2000.0)
    assert np.allclose(depth, [0.0, 0.0, 0.2 * 2000 * 256, 0.2 * 2000])


def test_matches_the_official_train_ids(shared_dir: Path) -> None:
    root = shared_dir / "data" / "real" / PSEUDO
    if not root.is_dir():
        pytest.skip("Cityscapes sample absent")
    ds = build_dataset("cityscapes", root=root, split="val")
    assert ds.tasks == ("semseg",)  # no disparity folder in the sample
    (sample,) = list(ds)
    stem = ds.ids[0]
    folder = root / "gtFine" / "val" / "frankfurt"
    reference = np.asarray(Image.open(folder / f"{stem}_gtFine_labelTrainIds.png"))
    label_ids = np.asarray(Image.open(folder / f"{stem}_gtFine_labelIds.png"))
    ours = sample["semseg"].numpy()
    # mmseg downscaled labelIds and labelTrainIds separately, so ~0.2 % of boundary pixels differ;
    # the mapping itself must agree with the majority trainId of every labelId
    assert (ours == reference).mean() > 0.995
    for label_id in np.unique(label_ids):
        values, counts = np.unique(reference[label_ids == label_id], return_counts=True)
        assert np.unique(ours[label_ids == label_id]).tolist() == [values[counts.argmax()]]
    assert sample["image"].shape == (3, 128, 256)


def test_bad_inputs_name_the_file(cityscapes_root: Path) -> None:
    city = cityscapes_root / "disparity" / "train" / "bremen"
    (city / "bremen_000001_000019_disparity.png").unlink()
    orphan = cityscapes_root / "gtFine" / "train" / "aachen" / "aachen_000099_000019_gtFine_labelIds.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(orphan)
    with pytest.raises(
        DataError, match=r"depth file for bremen_000001_000019_leftImg8bit\.png is missing"
    ) as err:
        build_dataset("cityscapes", root=cityscapes_root, split="train")
    assert str(err.value).startswith(str(city / "bremen_000001_000019_disparity.png"))
    lenient = build_dataset("cityscapes", root=cityscapes_root, split="train", strict=False)
    assert lenient.ids == ["aachen_000000_000019"]
    assert any(p.path == str(orphan) and "has no image" in p.problem for p in lenient.problems)
    # a label id beyond 33, and a broken camera file
    label = cityscapes_root / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    Image.fromarray(np.full((H, W), 40, np.uint8)).save(label)
    with pytest.raises(DataError, match=r"label ids \[40\]") as err:
        lenient[0]
    assert str(err.value).startswith(str(label))
    camera = cityscapes_root / "camera" / "train" / "aachen" / "aachen_000000_000019_camera.json"
    camera.write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON") as err:
        build_dataset("cityscapes", root=cityscapes_root, split="train", strict=False, tasks=["depth"])[0]
    assert str(err.value).startswith(str(camera))


def test_disparity_task_key_meta_and_depth_through_the_camera(tmp_path: Path) -> None:
    kwargs = write_example("cityscapes", tmp_path, num_samples=2, size=(16, 32))
    png = np.asarray(
        Image.open(tmp_path / "disparity" / "train" / "aachen" / "aachen_000000_000019_disparity.png")
    )
    ds = build_dataset("cityscapes", **kwargs, tasks=["semseg", "disparity", "depth"])
    sample = ds[0]
    expected = np.where(png > 0, (png.astype(np.float64) - 1) / 256, 0.0)  # Cityscapes README encoding
    assert torch.allclose(sample["disparity"][0].double(), torch.from_numpy(expected))
    assert sample["meta"]["baseline"] == pytest.approx(0.209313) and "target" not in sample["meta"]
    valid = sample["disparity"] > 0
    assert valid.any() and torch.equal(valid, sample["depth"] > 0)
    fx = float(sample["meta"]["intrinsics"][0])
    assert torch.allclose(0.209313 * fx / sample["disparity"][valid], sample["depth"][valid], rtol=1e-5)
    # a perfect disparity prediction gives zero error in pixels and in metres
    batch = collate([sample, ds[1]], tasks=("disparity",))
    metrics = MultiTaskMetrics({"disparity": 1})
    metrics.update({"disparity": batch["disparity"]}, batch)
    out = metrics.compute()
    assert out["disp_abs_err"] == 0.0 and out["cam_abs_err"] == pytest.approx(0.0, abs=1e-9)
    assert out["cam_delta1"] == 1.0
    # by default the disparity PNGs give depth only, as before; no camera is needed for disparity
    assert build_dataset("cityscapes", **kwargs).tasks == ("semseg", "depth")
    shutil.rmtree(tmp_path / "camera")
    no_camera = build_dataset("cityscapes", **kwargs, tasks=["disparity"])[0]
    assert set(no_camera) == {"image", "meta", "disparity"} and "baseline" not in no_camera["meta"]


def test_disparity_task_resized_in_pixels(tmp_path: Path) -> None:
    kwargs = write_example("cityscapes", tmp_path, num_samples=1, size=(16, 32))
    full = build_dataset("cityscapes", **kwargs, tasks=["disparity", "depth"])[0]
    half = build_dataset("cityscapes", **kwargs, tasks=["disparity", "depth"], transform=Resize((8, 16)))[0]
    assert torch.allclose(half["disparity"], full["disparity"][:, 1::2, 1::2] / 2)  # nearest, then x 16/32
    assert torch.equal(half["depth"], full["depth"][:, 1::2, 1::2])  # metres do not scale
    valid = half["disparity"] > 0
    fx = float(half["meta"]["intrinsics"][0])
    assert torch.allclose(
        half["meta"]["baseline"] * fx / half["disparity"][valid], half["depth"][valid], rtol=1e-5
    )
