"""``densemtl data check`` / ``convert``: every kind of bad input is reported as one line naming the file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.cli.data import (
    add_check_arguments,
    add_convert_arguments,
    parse_options,
    run_check,
    run_convert,
)
from densemtl.data.check import check_dataset, measure_loader_speed
from densemtl.data.datasets import build_dataset
from densemtl.data.datasets.folder import FolderDataset
from densemtl.errors import DenseMTLError
from fixtures.real_formats import write_example

SIZE = (24, 32)


def _args(add: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)  # type: ignore[operator]
    return parser.parse_args(argv)


def test_clean_dataset_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_example("nyud_mt", tmp_path, num_samples=3, size=SIZE)
    code = run_check(
        _args(add_check_arguments, ["--dataset", "nyud_mt", "--root", str(tmp_path), "--split", "train"])
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dataset check" in out and "pixels per class" in out and "otherprop" in out and "OK" in out
    reports, _ = check_dataset("nyud_mt", tmp_path, ["train"])
    (report,) = reports
    assert report.num_samples == 3 and report.labelled == {"semseg": 3, "depth": 3, "normals": 3}
    assert (
        0.69 <= report.depth_min <= report.depth_max <= 9.0 and 0 < report.depth_valid < report.depth_pixels
    )
    assert (
        report.class_pixels is not None
        and report.class_pixels.sum() + report.ignore_pixels == 3 * SIZE[0] * SIZE[1]
    )
    assert report.normals_facing == report.normals_valid > 0  # the example's normals face the camera
    assert any("the standard split has 795" in w for w in report.warnings)


def test_every_kind_of_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_example("nyud_mt", tmp_path, num_samples=6, size=SIZE)
    names = [f"img_{5001 + i}" for i in range(6)]
    bad = {
        "missing pair": tmp_path / "depth" / f"{names[0]}.npy",
        "orphan": None,
        "size mismatch": tmp_path / "segmentation" / f"{names[1]}.png",
        "unreadable": tmp_path / "images" / f"{names[2]}.jpg",
        "label out of range": tmp_path / "segmentation" / f"{names[3]}.png",
        "NaN depth": tmp_path / "depth" / f"{names[4]}.npy",
    }
    bad["missing pair"].unlink()
    Image.fromarray(np.zeros((SIZE[0] + 2, SIZE[1]), np.uint8)).save(bad["size mismatch"])
    bad["unreadable"].write_bytes(b"\xff\xd8 not really a jpeg")
    Image.fromarray(np.full(SIZE, 99, np.uint8)).save(bad["label out of range"])
    np.save(bad["NaN depth"], np.full(SIZE, np.nan, np.float32))
    code = run_check(
        _args(add_check_arguments, ["--dataset", "nyud_mt", "--root", str(tmp_path), "--split", "train"])
    )
    out = capsys.readouterr().out
    assert code == 1
    reports, _ = check_dataset("nyud_mt", tmp_path, ["train"])
    errors = reports[0].errors
    assert len(errors) == 5 and reports[0].num_samples == 5  # the missing pair drops its sample
    for kind, path in bad.items():
        if path is None:
            continue
        (message,) = [e for e in errors if e.startswith(str(path))]
        assert "\n" not in message, kind
        assert f"error: {message}" in out  # printed whole, on one line
    expected = {
        "missing pair": "depth file for img_5001.jpg is missing",
        "size mismatch": "size 32x26 does not match image 32x24",
        "unreadable": "cannot decode image",
        "label out of range": "label ids [99] are outside NYUD_MT ids 0..40",
        "NaN depth": "NaN/inf",
    }
    for kind, text in expected.items():
        assert any(e.startswith(str(bad[kind])) and text in e for e in errors), (kind, errors)


def test_orphan_labels_are_missing_pairs(tmp_path: Path) -> None:
    write_example("sunrgbd", tmp_path, num_samples=2, size=SIZE)
    orphan = tmp_path / "train" / "labels_37" / "999999.png"
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(orphan)
    reports, _ = check_dataset("sunrgbd", tmp_path, ["train"])
    assert reports[0].errors == [f"{orphan}: semseg file has no image in {tmp_path / 'train' / 'rgb'}"]


def test_check_unknown_root_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_check(_args(add_check_arguments, ["--dataset", "nyuv2", "--root", str(tmp_path / "none")]))
    assert code == 1 and "dataset folder not found" in capsys.readouterr().out
    assert parse_options(["num_classes=13", "label_map=/x/y.tsv", "size=(240, 320)"]) == {
        "num_classes": 13, "label_map": "/x/y.tsv", "size": (240, 320),
    }  # fmt: skip
    with pytest.raises(DenseMTLError):
        parse_options(["num_classes"])


def test_check_the_generic_folder_format(tiny_dataset: Path) -> None:
    reports, _ = check_dataset("folder", tiny_dataset, ["train", "val"])
    assert [r.errors for r in reports] == [[], []] and reports[0].num_samples == 8


def test_convert_nyuv2_mat_to_folder_format(tmp_path: Path) -> None:
    kwargs = write_example("nyuv2", tmp_path / "nyu", num_samples=4, size=SIZE)
    out = tmp_path / "out"
    code = run_convert(
        _args(add_convert_arguments, ["--dataset", "nyuv2", "--root", str(kwargs["root"]), "--out", str(out)])
    )
    assert code == 0
    assert (out / "splits" / "train.txt").read_text().split() == ["000001", "000003"]
    assert (out / "splits" / "test.txt").read_text().split() == ["000002", "000004"]
    assert json.loads((out / "classes.json").read_text())["names"][0] == "wall"
    source = build_dataset("nyuv2", root=kwargs["root"], split="test")
    folder = FolderDataset(out, split="test")
    for a, b in zip(source, folder):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["semseg"], b["semseg"])
        assert (a["depth"] - b["depth"]).abs().max() <= 0.0005 + 1e-6  # uint16 millimetres
        assert np.asarray(Image.open(out / "depth" / f"{a['meta']['id']}.png")).dtype == np.uint16


def test_convert_cityscapes_far_depth_and_mtan_inverse_depth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_example("cityscapes", tmp_path / "cs", num_samples=2, size=SIZE)
    code = run_convert(_args(add_convert_arguments, ["--dataset", "cityscapes", "--root", str(tmp_path / "cs"),
                                                     "--out", str(tmp_path / "cs_out"), "--split", "train"]))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "written as invalid" in out
    converted = FolderDataset(tmp_path / "cs_out", split="train")
    assert converted.num_classes == 19 and set(converted[0]["semseg"].unique().tolist()) <= {*range(19), 255}
    assert json.loads((tmp_path / "cs_out" / "intrinsics.json").read_text())["fx"] == pytest.approx(2262.52)
    write_example("cityscapes_mtan", tmp_path / "mtan", num_samples=2, size=SIZE)
    code = run_convert(_args(add_convert_arguments, ["--dataset", "cityscapes_mtan", "--root", str(tmp_path / "mtan"),
                                                     "--out", str(tmp_path / "mtan_out"), "--split", "train"]))  # fmt: skip
    assert code == 0 and "inverse_depth, not metres: not written" in capsys.readouterr().out
    assert not (tmp_path / "mtan_out" / "depth").exists() and (tmp_path / "mtan_out" / "semantic").is_dir()


def test_convert_reports_bad_samples_and_writes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_example("kitti_semantics", tmp_path / "k", num_samples=3, size=SIZE)
    Image.fromarray(np.full(SIZE, 34, np.uint8)).save(
        tmp_path / "k" / "training" / "semantic" / "000001_10.png"
    )
    code = run_convert(_args(add_convert_arguments, ["--dataset", "kitti_semantics", "--root", str(tmp_path / "k"),
                                                     "--out", str(tmp_path / "o"), "--split", "train"]))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "000001_10.png: label ids [34]" in out
    assert (tmp_path / "o" / "splits" / "train.txt").read_text().split() == ["000000_10", "000002_10"]


def test_measure_loader_speed(tmp_path: Path) -> None:
    kwargs = write_example("nyuv2_list", tmp_path, num_samples=6, size=SIZE)
    rate = measure_loader_speed(build_dataset("nyuv2_list", **kwargs), num_workers=0, batch_size=2)
    assert rate > 0


def test_missing_depth_files_are_counted_by_check_and_logged_by_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import make_tiny_dataset
    from densemtl.data.datamodule import DenseDataModule

    root = make_tiny_dataset(tmp_path / "tiny", num_images=8)
    train_ids = (root / "splits" / "train.txt").read_text().split()
    for sample_id in train_ids[:2]:
        next((root / "depth").glob(f"{sample_id}.*")).unlink()
    reports, _ = check_dataset("folder", root, ["train"])
    assert reports[0].missing == {"depth": 2}
    assert any("2 of 4 samples lack a depth label" in w for w in reports[0].warnings)
    assert run_check(_args(add_check_arguments, ["--dataset", "folder", "--root", str(root)])) == 0
    assert "2 of 4 samples lack a depth label" in capsys.readouterr().out
    data = DenseDataModule(dataset="folder", root=str(root), image_size=(32, 48), tasks=["semseg", "depth"])
    with caplog.at_level("WARNING", logger="densemtl.data.datamodule"):
        data.setup("fit")
        data.setup("fit")
    lines = [r.getMessage() for r in caplog.records if "lack a depth label" in r.getMessage()]
    assert lines == [
        "train split: 2 of 4 samples lack a depth label; they train without the depth loss "
        "(`densemtl data check` lists them)"
    ]
