"""``densemtl distill``: pseudo-labels only where ground truth is missing, marked as pseudo."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_dataset
from densemtl.cli import distill as distill_cli
from densemtl.data import io
from densemtl.data.datasets.folder import FolderDataset
from densemtl.data.sample import collate
from densemtl.errors import ConfigError, DataError
from densemtl.training import distill


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _teacher(tmp_path: Path, num_classes: int = 4, tasks: tuple[str, ...] = ("semseg", "depth")) -> Path:
    """A (random) teacher checkpoint as `densemtl fit` writes it (state_dict + hyper_parameters)."""
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    module = DenseMTLModule(
        model="mt_refinenet", tasks=list(tasks), num_classes=num_classes, model_options={"init": "kaiming"}
    )
    path = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run(argv: list[str]) -> int:
    return distill_cli.run(distill_cli.add_arguments(argparse.ArgumentParser()).parse_args(argv))


@pytest.fixture
def asymmetric(tmp_path: Path) -> tuple[Path, list[str]]:
    """Tiny dataset, then a copy in which half of the train samples lack semseg (via --hide)."""
    src = make_tiny_dataset(tmp_path / "src", num_images=8, height=32, width=48)
    dst = tmp_path / "asym"
    assert (
        _run(
            [
                "--dataset-root",
                str(src),
                "--task",
                "semseg",
                "--out",
                str(dst),
                "--hide",
                "0.5",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    hidden = (dst / "hidden_semseg.txt").read_text().split()
    assert len(hidden) == 2  # half of 4 train samples
    for i in hidden:
        assert not (dst / "semantic" / f"{i}.png").exists() and (src / "semantic" / f"{i}.png").exists()
    return dst, hidden


def test_semseg_pseudo_labels(tmp_path: Path, asymmetric: tuple[Path, list[str]]) -> None:
    root, hidden = asymmetric
    before = _digest(root)
    out = tmp_path / "kd"
    assert (
        _run(
            [
                "--teacher",
                str(_teacher(tmp_path)),
                "--dataset-root",
                str(root),
                "--task",
                "semseg",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert _digest(root) == before  # the source dataset is untouched
    written = sorted(p.stem for p in (out / "pseudo" / "semseg").glob("*.png"))
    assert written == sorted(hidden)  # exactly the samples lacking the label
    after = _digest(out)
    for key, digest in before.items():  # ground-truth labels (and everything else) copied unchanged
        assert after[key] == digest
    labels = io.read_label_png(out / "pseudo" / "semseg" / f"{hidden[0]}.png")
    assert labels.shape == (32, 48) and labels.max() < 4
    ds = FolderDataset(out, split="train")
    samples = [ds[i] for i in range(len(ds))]
    batch = collate(samples, tasks=("semseg", "depth"))
    for s, has in zip(samples, batch["has_gt"]["semseg"].tolist()):
        is_pseudo = s["meta"]["id"] in hidden
        assert ("semseg" in s["meta"]["pseudo"]) == is_pseudo
        assert has == (not is_pseudo)  # pseudo-labels never count as ground truth
        assert "semseg" in s  # but every sample now has a training label
    assert batch["has_gt"]["depth"].all()
    manifest = (out / "pseudo" / "semseg" / "manifest.json").read_text()
    assert all(i in manifest for i in hidden)


def test_depth_in_place_and_confidence(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "d", num_images=8, height=32, width=48)
    gone = "0001"
    (root / "depth" / f"{gone}.png").unlink()
    gt_before = _digest(root / "depth")
    teacher = _teacher(tmp_path)
    manifest = distill.distill(teacher, root, "depth", root, split="train", size=(32, 32))
    assert manifest["labelled"] == [gone] and manifest["skipped_with_gt"] == 3
    assert _digest(root / "depth") == gt_before
    depth = io.read_depth_png(root / "pseudo" / "depth" / f"{gone}.png", 1000.0)
    assert depth.shape == (32, 48) and (depth > 0).all()
    ds = FolderDataset(root, split="train", tasks=["depth"])
    batch = collate([ds[i] for i in range(len(ds))], tasks=("depth",))
    assert batch["has_gt"]["depth"].tolist() == [s != gone for s in ds.ids]
    # semseg with a confidence threshold no random teacher reaches: everything ignored
    (root / "semantic" / f"{gone}.png").unlink()
    distill.distill(teacher, root, "semseg", root, min_confidence=0.99)
    labels = io.read_label_png(root / "pseudo" / "semseg" / f"{gone}.png")
    assert (labels == 255).all()


def test_errors(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "e", num_images=4, height=16, width=16)
    with pytest.raises(DataError, match="classes"):
        distill.distill(_teacher(tmp_path, num_classes=7), root, "semseg", tmp_path / "o")
    with pytest.raises(DataError, match="does not predict"):
        distill.distill(_teacher(tmp_path, tasks=("semseg",)), root, "depth", tmp_path / "o")
    with pytest.raises(ConfigError, match="teacher"):
        _run(["--dataset-root", str(root), "--task", "semseg", "--out", str(tmp_path / "o")])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing"):
        distill.copy_dataset(root, tmp_path / "busy")
