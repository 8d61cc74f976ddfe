"""NYU Depth v2 loaders: the official labelled .mat, the DenseTorch / LW-RefineNet list format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from densemtl.data.datasets import build_dataset, nyuv2
from densemtl.data.datasets.base import apply_normals_axes
from densemtl.data.datasets.nyuv2 import (
    MAP_40_TO_13,
    MAP_894_TO_40,
    NYU13_CLASS_NAMES,
    NYU40_CLASS_NAMES,
    map_40_to_13,
)
from densemtl.errors import DataError

MAPPINGS = Path("nyuv2/TUI-NICR+ESANet/src/datasets/nyuv2")
DRSLEEP = Path("nyuv2/DrSleep+multi-task-refinenet/examples")


def _real(shared_dir: Path, rel: Path | str) -> Path:
    path = shared_dir / "data" / "real" / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


# --------------------------------------------------------------------------------------------
# the shipped constants against the official .mat files
# --------------------------------------------------------------------------------------------
def test_constants_match_class_mapping_mat_files(shared_dir: Path) -> None:
    m40 = scipy.io.loadmat(_real(shared_dir, MAPPINGS / "classMapping40.mat"))
    assert list(MAP_894_TO_40) == m40["mapClass"].ravel().tolist()
    assert list(NYU40_CLASS_NAMES) == [str(x[0]) for x in m40["className"].ravel()]
    m13 = scipy.io.loadmat(_real(shared_dir, MAPPINGS / "class13Mapping.mat"))["classMapping13"][0, 0]
    assert [c + 1 for c in MAP_40_TO_13] == m13["labels13"].ravel().tolist()
    assert list(NYU13_CLASS_NAMES) == [str(x[0]) for x in m13["classNames"].ravel()]


@pytest.mark.parametrize(("folder", "frame"), [("ExpNYUD_joint", "0464"), ("ExpNYUD_three", "0433")])
def test_map_40_to_13_reproduces_the_13_class_ground_truth(shared_dir: Path, folder: str, frame: str) -> None:
    labels40 = np.asarray(Image.open(_real(shared_dir, DRSLEEP / folder / f"segm_gt_00{frame}.png")))
    reference = np.asarray(
        Image.open(
            _real(shared_dir, f"nyuv2/ankurhanda+nyuv2-meta-data/test_labels_13/new_nyu_class13_{frame}.png")
        )
    )
    ours = map_40_to_13(labels40)
    assert ours.dtype == np.int64
    # the reference is 1-based with 0 = unlabelled; ours is 0-based with 255 = ignore
    assert np.array_equal(np.where(ours == 255, 0, ours + 1), reference)


def test_map_40_to_13_types_and_ignore() -> None:
    assert map_40_to_13(np.array([0, 1, 21, 39, 255])).tolist() == [
        11,
        4,
        2,
        6,
        255,
    ]  # wall, floor, ceiling, otherprop
    tensor = map_40_to_13(torch.tensor([[3, 255]], dtype=torch.uint8))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.int64 and tensor.tolist() == [[0, 255]]
    with pytest.raises(ValueError, match=r"0\.\.39"):
        map_40_to_13(np.array([40]))
    with pytest.raises(ValueError):
        map_40_to_13(np.array([-1]))


def test_splits_mat_holds_795_654_one_based(shared_dir: Path) -> None:
    splits = nyuv2._read_splits_mat(_real(shared_dir, MAPPINGS / "splits.mat"))
    assert len(splits["train"]) == 795 and len(splits["test"]) == 654
    assert not set(splits["train"]) & set(splits["test"])
    assert sorted(splits["train"] + splits["test"]) == list(range(1449))
    assert {463, 432} <= set(splits["test"])  # frames 000464 and 000433 are test frames


# --------------------------------------------------------------------------------------------
# the official labelled .mat
# --------------------------------------------------------------------------------------------
H, W = 6, 8  # deliberately not square: a missing transpose cannot go unnoticed


def _write_mat(root: Path, images: np.ndarray, depths: np.ndarray, labels: np.ndarray) -> None:
    """Write frames [N, H, W(, 3)] as MATLAB v7.3 stores them, i.e. transposed in h5py's view."""
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depths.transpose(0, 2, 1).astype(np.float32)  # (N, W, H)
        f["labels"] = labels.transpose(0, 2, 1).astype(np.uint16)


def _frames(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.0, (n, H, W)).astype(np.float32)
    labels = np.zeros((n, H, W), dtype=np.uint16)
    labels[:, :, :4] = 21  # raw "wall" -> 40-class 1 (wall) -> 0-based 0
    labels[:, :3, 4:] = 11  # raw "floor" -> floor -> 1
    labels[:, 3:, 4:] = 157  # raw "bed" -> bed -> 3
    labels[:, 0, 0] = 0  # unlabelled -> 255
    return images, depths, labels


@pytest.fixture
def nyu_mat(tmp_path: Path) -> tuple[Path, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    frames = _frames(4)
    _write_mat(tmp_path, *frames)
    scipy.io.savemat(
        tmp_path / "splits.mat",
        {
            "trainNdxs": np.array([[1], [3], [4]], dtype=np.uint16),
            "testNdxs": np.array([[2]], dtype=np.uint16),
        },
    )
    return tmp_path, frames


def test_mat_loader_transposes_maps_and_splits(nyu_mat: tuple[Path, tuple[np.ndarray, ...]]) -> None:
    root, (images, depths, _) = nyu_mat
    train = build_dataset("nyuv2", root=root, split="train")
    assert train.ids == ["000001", "000003", "000004"] and train.tasks == ("semseg", "depth")
    sample = train[1]  # frame 3 (1-based)
    assert sample["image"].shape == (3, H, W)
    assert torch.equal(
        (sample["image"] * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(images[2])
    )
    assert torch.allclose(sample["depth"][0], torch.from_numpy(depths[2]))
    semseg = sample["semseg"]
    assert semseg.dtype == torch.int64 and semseg[0, 0] == 255
    assert (semseg[1:, :4] == 0).all() and (semseg[:3, 4:] == 1).all() and (semseg[3:, 4:] == 3).all()
    assert (
        sample["meta"]["id"] == "000003"
        and sample["meta"]["dataset"] == "nyuv2"
        and sample["meta"]["pseudo"] == set()
    )
    assert "intrinsics" not in sample["meta"]  # only known at the official 480x640
    assert build_dataset("nyuv2", root=root, split="test").ids == ["000002"]
    assert build_dataset("nyuv2", root=root, split="val").ids == ["000002"]  # alias
    assert len(build_dataset("nyuv2", root=root, split=None)) == 4


def test_mat_loader_13_classes_and_workers(nyu_mat: tuple[Path, tuple[np.ndarray, ...]]) -> None:
    root, _ = nyu_mat
    ds = build_dataset("nyuv2", root=root, split="train", num_classes=13, tasks=["semseg"])
    assert ds.num_classes == 13 and ds.class_names[11] == "wall" and ds.tasks == ("semseg",)
    semseg = ds[0]["semseg"]
    assert (semseg[1:, :4] == 11).all() and (semseg[:3, 4:] == 4).all() and (semseg[3:, 4:] == 0).all()
    assert "depth" not in ds[0]
    # h5py handles re-opened per worker: the parent has read a sample (its handle is open) before
    # DataLoader forks. In a fresh process: forking a long-lived, multi-threaded test worker that
    # has loaded OpenVINO and ONNX Runtime can segfault it (seen under pytest-xdist).
    script = (
        "import sys, torch; from densemtl.data.datasets import build_dataset\n"
        "ds = build_dataset('nyuv2', root=sys.argv[1], split='train', num_classes=13, tasks=['semseg'])\n"
        "ds[0]\n"
        "loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)\n"
        "print(','.join(s['meta']['id'] for s in loader))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [",".join(ds.ids)]


def test_mat_loader_with_the_official_splits(shared_dir: Path, tmp_path: Path) -> None:
    splits = _real(shared_dir, MAPPINGS / "splits.mat")
    _write_mat(tmp_path, *(np.repeat(a[:1], 1449, axis=0) for a in _frames(1)))
    train = build_dataset("nyuv2", root=tmp_path, split="train", splits_file=splits)
    test = build_dataset("nyuv2", root=tmp_path, split="test", splits_file=splits)
    assert (len(train), len(test)) == (795, 654) and "000464" in test.ids


def test_mat_loader_bad_inputs(nyu_mat: tuple[Path, tuple[np.ndarray, ...]], tmp_path: Path) -> None:
    root, frames = nyu_mat
    with pytest.raises(DataError, match=r"splits\.mat not found") as err:
        build_dataset("nyuv2", root=root, split="train", splits_file="nope.mat")
    assert "nope.mat" in str(err.value)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DataError, match="HDF5") as err:
        build_dataset("nyuv2", root=corrupt, split=None)
    assert str(corrupt / "nyu_depth_v2_labeled.mat") in str(err.value) and "\n" not in str(err.value)
    images, depths, labels = frames
    labels = labels.copy()
    labels[1, 2, 2] = 900  # beyond the 894 raw classes
    bad = tmp_path / "badlabel"
    _write_mat(bad, images, depths, labels)
    ds = build_dataset("nyuv2", root=bad, split=None)
    ds[0]
    with pytest.raises(DataError, match=r"label ids \[900\] are outside the 894 NYU raw classes") as err:
        ds[1]
    assert str(err.value).startswith(f"{bad / 'nyu_depth_v2_labeled.mat'}:labels[1]")


# --------------------------------------------------------------------------------------------
# the DenseTorch / LW-RefineNet list format
# --------------------------------------------------------------------------------------------
def test_list_format_depth_scale_normals_and_missing_labels(tmp_path: Path) -> None:
    rgb = np.full((H, W, 3), 100, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    segm = np.full((H, W), 39, np.uint8)
    segm[0] = 255
    Image.fromarray(segm).save(tmp_path / "a_segm.png")
    Image.fromarray(np.full((H, W), 12500, np.uint16)).save(tmp_path / "a_depth.png")  # 2.5 m at 1/5000
    # stored axes (x right, y forward, z up): a floor points up (+z), a wall faces the camera (-y)
    normals = np.zeros((H, W, 3), np.uint8)
    normals[:3] = (128, 128, 255)  # floor
    normals[3:] = (128, 0, 128)  # wall
    Image.fromarray(normals).save(tmp_path / "a_norm.png")
    (tmp_path / "train.nyu").write_text("a.png\ta_segm.png\ta_depth.png\ta_norm.png\nb.png\t-\t-\t-\n")
    ds = build_dataset("nyuv2_list", root=tmp_path, split="train")
    assert ds.tasks == ("semseg", "depth", "normals") and ds.ids == ["a", "b"]
    a, b = ds[0], ds[1]
    assert torch.allclose(a["depth"], torch.full((1, H, W), 2.5))
    assert (a["semseg"][0] == 255).all() and (a["semseg"][1:] == 39).all()
    floor, wall = a["normals"][:, 0, 0], a["normals"][:, 5, 0]
    assert torch.allclose(floor, torch.tensor([0.0, -1.0, 0.0]), atol=0.01)  # OpenCV: up is -y
    assert torch.allclose(wall, torch.tensor([0.0, 0.0, -1.0]), atol=0.01)  # facing the camera: -z
    assert set(b) == {"image", "meta"}  # asymmetric annotations: no label keys at all
    assert build_dataset("nyuv2_list", root=tmp_path, split="train", num_classes=13)[0]["semseg"][1, 0] == 6


def test_list_format_missing_file_is_one_line_error(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "val.nyu").write_text("a.png\tmissing_mask.png\n")
    with pytest.raises(DataError) as err:
        build_dataset("nyuv2_list", root=tmp_path, split="val")
    assert str(tmp_path / "missing_mask.png") in str(err.value) and "missing" in str(err.value)
    lenient = build_dataset("nyuv2_list", root=tmp_path, split="val", strict=False)
    assert len(lenient) == 0 and len(lenient.problems) == 1


def test_list_format_on_the_lw_refinenet_examples(shared_dir: Path, tmp_path: Path) -> None:
    examples = _real(shared_dir, "nyuv2/DrSleep+light-weight-refinenet/examples/imgs/NYU")
    lst = tmp_path / "val.nyu"
    lst.write_text("000834.png\t000834_mask.png\n001096.png\t001096_mask.png\n")
    ds = build_dataset("nyuv2_list", root=examples, split="val", list_file=lst)
    for sample in ds:
        assert sample["image"].shape == (3, 468, 625)
        values = set(sample["semseg"].unique().tolist())
        assert values <= set(range(40)) | {255} and len(values) > 3
    official = _real(shared_dir, "nyuv2/DrSleep+light-weight-refinenet/data")
    assert len((official / "train.nyu").read_text().splitlines()) == ds.split_sizes["train"]
    assert len((official / "val.nyu").read_text().splitlines()) == ds.split_sizes["val"]


def test_list_format_on_the_multitask_refinenet_examples(shared_dir: Path, tmp_path: Path) -> None:
    examples = _real(shared_dir, DRSLEEP)
    lst = tmp_path / "test.txt"
    lst.write_text("ExpNYUD_three/000433.png\tExpNYUD_three/segm_gt_000433.png\tExpNYUD_three/depth_gt_000433.png\t"
                   "ExpNYUD_three/norm_gt_000433.png\n")  # fmt: skip
    sample = build_dataset("nyuv2_list", root=examples, split="test", list_file=lst)[0]
    depth = sample["depth"][0]
    valid = depth > 0
    assert 0.5 < depth[valid].median() < 6.0 and depth.max() < 10.0  # metres from value / 5000
    assert torch.allclose(sample["meta"]["intrinsics"], torch.tensor(nyuv2.NYU_INTRINSICS))
    normals = sample["normals"]
    nvalid = normals.abs().sum(0) > 0
    fx, fy, cx, cy = nyuv2.NYU_INTRINSICS
    v, u = torch.meshgrid(torch.arange(480.0), torch.arange(640.0), indexing="ij")
    facing = (normals[0] * (u - cx) / fx + normals[1] * (v - cy) / fy + normals[2]) < 0
    assert facing[nvalid].float().mean() > 0.99  # OpenCV axes: visible surfaces face the camera
    floor = sample["semseg"] == 1
    assert normals[1][floor & nvalid].median() < -0.9  # floor normals point up (-y)


def test_apply_normals_axes() -> None:
    stored = np.array([[[0.1, 0.2, 0.3]]], np.float32)
    assert np.allclose(apply_normals_axes(stored, "x,-z,y"), [[[0.1, -0.3, 0.2]]])
    assert apply_normals_axes(stored, "x,y,z") is stored
    with pytest.raises(ValueError):
        apply_normals_axes(stored, "x,x,z")
