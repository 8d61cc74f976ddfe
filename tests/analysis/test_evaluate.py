"""End-to-end checks of ``densemtl evaluate`` on a tiny folder dataset written here."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from densemtl.cli import main as densemtl_main
from densemtl.cli.evaluate import add_arguments, run
from densemtl.data import io
from densemtl.data.datasets.folder import write_metadata, write_sample
from densemtl.errors import DataError

CLASSES = ["wall", "floor", "chair"]  # "chair" never appears


def _blocks(pattern: list[list[int]]) -> np.ndarray:
    """A 4x4 pattern upsampled to 8x8 by 2x2 blocks (nearest resizing maps one onto the other)."""
    return np.kron(np.asarray(pattern), np.ones((2, 2), dtype=np.int64)).astype(np.int64)


SEM = {
    "a": [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 0, 1]],
    "b": [[1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 255, 255], [1, 1, 0, 0]],
}
DEPTH = {"a": 1.0, "b": 2.5, "c": 4.0}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """3 samples of 8x8: a, b with semantic + depth + normals; c with depth and a *pseudo* semantic label."""
    root = tmp_path / "data"
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    normals = np.zeros((8, 8, 3), dtype=np.float32)
    normals[..., 2] = -1.0
    normals[0, :, :] = [0.0, -0.6, -0.8]
    normals[1, :] = 0.0  # invalid row
    for sid in ("a", "b"):
        depth = np.full((8, 8), DEPTH[sid], dtype=np.float32)
        depth[0, 0] = 0.0  # invalid pixel
        write_sample(root, sid, rgb, depth=depth, semantic=_blocks(SEM[sid]), normals=normals)
    write_sample(root, "c", rgb, depth=np.full((8, 8), DEPTH["c"], dtype=np.float32))
    io.write_label_png(root / "pseudo" / "semseg" / "c.png", np.zeros((8, 8), dtype=np.int64))
    write_metadata(root, CLASSES, splits={"test": ["a", "b", "c"], "train": ["a"]})
    return root


def _perfect_predictions(root: Path, out: Path) -> Path:
    for folder in ("semantic", "normals"):
        shutil.copytree(root / folder, out / folder)
    (out / "depth").mkdir(parents=True)
    shutil.copy(root / "depth" / "a.png", out / "depth" / "a.png")  # uint16 mm
    for sid in ("b", "c"):  # float metres
        np.save(out / "depth" / f"{sid}.npy", io.read_depth_png(root / "depth" / f"{sid}.png"))
    return out


def main(argv: list[str]) -> int:
    return densemtl_main(["evaluate", *argv])


def _args(root: Path, pred: Path, output: Path, *extra: str) -> list[str]:
    return ["--predictions", str(pred), "--dataset-root", str(root), "--output", str(output), *extra]


def test_perfect_predictions(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    output = tmp_path / "out" / "metrics.json"
    assert main(_args(dataset, pred, output)) == 0
    report = json.loads(output.read_text())
    m = report["metrics"]
    assert m["miou"] == 1.0 and m["pixel_acc"] == 1.0
    assert m["rmse"] == 0.0 and m["abs_err"] == 0.0 and m["delta1"] == 1.0
    assert m["normal_mean"] == pytest.approx(0.0, abs=1e-3) and m["normal_11_25"] == 1.0
    assert m["normal_median"] < 0.01  # histogram bin centre, resolution 0.01°
    assert report["per_class_iou"] == {"wall": 1.0, "floor": 1.0, "chair": None}  # absent -> null
    assert report["num_images"] == {"semseg": 2, "depth": 3, "normals": 2}  # c's pseudo-label not counted
    assert report["split"] == "test"
    assert "miou" in capsys.readouterr().out


def test_absent_policy_zero(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    output = tmp_path / "m.json"
    assert main(_args(dataset, pred, output, "--absent-policy", "zero", "--tasks", "semseg")) == 0
    report = json.loads(output.read_text())
    assert report["metrics"]["miou"] == pytest.approx(2 / 3)  # chair counts as 0
    assert report["per_class_iou"]["chair"] == 0.0
    assert set(report["metrics"]) == {"miou", "pixel_acc"}


def test_smaller_predictions_are_resized(dataset: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    for sid in ("a", "b"):
        small = np.asarray(SEM[sid])
        small[small == 255] = 0  # predictions hold no ignore value; those GT pixels are ignored
        io.write_label_png(pred / "semantic" / f"{sid}.png", small)
    (pred / "depth").mkdir()
    for sid in ("a", "b", "c"):  # every prediction 1 m too far, at 4x4
        np.save(pred / "depth" / f"{sid}.npy", np.full((4, 4), DEPTH[sid] + 1.0, dtype=np.float32))
    output = tmp_path / "m.json"
    assert main(_args(dataset, pred, output)) == 0
    m = json.loads(output.read_text())["metrics"]
    assert m["miou"] == 1.0 and m["pixel_acc"] == 1.0  # nearest upsampling reproduces the 2x2 blocks
    assert m["rmse"] == pytest.approx(1.0) and m["abs_err"] == pytest.approx(1.0)
    # abs_rel pooled over pixels: a, b have 63 valid pixels (one invalid), c 64
    assert m["abs_rel"] == pytest.approx((63 * 1 / 1.0 + 63 * 1 / 2.5 + 64 * 1 / 4.0) / 190)
    assert "normal_mean" not in m  # no normals/ prediction folder -> not evaluated


def test_depth_options_are_passed(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    np.save(pred / "depth" / "c.npy", np.full((8, 8), 5.0, dtype=np.float32))  # c wrong by 1 m
    output = tmp_path / "m.json"
    args = _args(dataset, pred, output, "--tasks", "depth", "--max-depth", "3.0")
    assert main(args) == 0
    assert json.loads(output.read_text())["metrics"]["rmse"] == 0.0  # c (4 m) is beyond max-depth
    assert main([*args[:-2], "--per-image"]) == 0
    # a, b perfect; c off by 1: per-image mean of RMSEs = 1/3
    assert json.loads(output.read_text())["metrics"]["rmse"] == pytest.approx(1 / 3)


def test_missing_prediction_file_is_one_line_error(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    (pred / "semantic" / "b.png").unlink()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(DataError, match=r"semantic/b\.png: prediction file missing"):
        run(parser.parse_args(_args(dataset, pred, tmp_path / "m.json")))
    capsys.readouterr()
    assert main(_args(dataset, pred, tmp_path / "m.json")) == 2  # a user error (densemtl.cli exit codes)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.png" in err
    assert not (tmp_path / "m.json").exists()


def test_predicted_class_out_of_range_names_file(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    io.write_label_png(pred / "semantic" / "a.png", np.full((8, 8), 7, dtype=np.int64))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(DataError, match=r"a\.png: predicted class ids \[7\]"):
        run(parser.parse_args(_args(dataset, pred, tmp_path / "m.json")))


def test_baseline_gives_delta_mtl(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    baseline = tmp_path / "stl.json"
    baseline.write_text(json.dumps({"metrics": {"miou": 0.5, "rmse": 2.0}}))
    output = tmp_path / "m.json"
    assert main(_args(dataset, pred, output, "--baseline", str(baseline))) == 0
    report = json.loads(output.read_text())
    # miou (1 - 0.5) / 0.5 = +1, rmse -(0 - 2) / 2 = +1; normal_mean has no baseline
    assert report["delta_mtl"] == pytest.approx(1.0) and report["delta_mode"] == "maninis"


def test_missing_prediction_folder(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    shutil.rmtree(pred / "normals")
    with pytest.raises(DataError, match="normals"):
        run(parser.parse_args(_args(dataset, pred, tmp_path / "m.json", "--tasks", "normals")))
    with pytest.raises(DataError, match="no prediction folder"):
        run(parser.parse_args(_args(dataset, tmp_path, tmp_path / "m.json")))


def test_conventions_set_each_peers_absent_policy(dataset: Path, tmp_path: Path) -> None:
    pred = _perfect_predictions(dataset, tmp_path / "pred")
    output = tmp_path / "m.json"
    expected = {"mtl_pytorch": 2 / 3, "libmtl": None, "mtan": None, "densetorch": 1.0}  # chair never occurs
    for convention, miou in expected.items():
        assert main(_args(dataset, pred, output, "--tasks", "semseg", "--convention", convention)) == 0
        report = json.loads(output.read_text())
        assert report["metrics"]["miou"] == (pytest.approx(miou) if miou is not None else None), convention
        assert report["options"]["convention"] == convention


def test_mtan_convention_averages_per_batch_depth_means(dataset: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    (pred / "depth").mkdir(parents=True)
    errors = {"a": 1.0, "b": 0.0, "c": 2.0}
    for sid, err in errors.items():
        np.save(pred / "depth" / f"{sid}.npy", np.full((8, 8), DEPTH[sid] + err, dtype=np.float32))
    output = tmp_path / "m.json"
    assert main(_args(dataset, pred, output, "--tasks", "depth")) == 0
    pooled = json.loads(output.read_text())["metrics"]["abs_err"]
    assert pooled == pytest.approx((63 * 1.0 + 63 * 0.0 + 64 * 2.0) / 190)  # a, b: 63 valid pixels, c 64
    assert main(_args(dataset, pred, output, "--tasks", "depth", "--convention", "mtan")) == 0
    # mtan: batches of 2 in split order, [a, b] and [c], each batch's pixel mean, then their mean
    batches = [(63 * 1.0 + 63 * 0.0) / 126, 2.0]
    assert json.loads(output.read_text())["metrics"]["abs_err"] == pytest.approx(sum(batches) / 2)


def test_convention_conflicts_and_negative_depth(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from densemtl.analysis.evaluate import evaluate
    from densemtl.errors import ConfigError

    pred = _perfect_predictions(dataset, tmp_path / "pred")
    with pytest.raises(ConfigError, match="--per-image conflicts with --convention mtan"):
        evaluate(pred, dataset, tasks=["depth"], per_image=True, convention="mtan")
    with pytest.raises(ConfigError, match="--absent-policy zero conflicts"):
        evaluate(pred, dataset, tasks=["semseg"], absent_policy="zero", convention="libmtl")
    with pytest.raises(ConfigError, match="unknown 'peer'"):
        evaluate(pred, dataset, tasks=["semseg"], convention="peer")
    negative = np.full((8, 8), 1.0, dtype=np.float32)
    negative[3, 3] = -0.5
    np.save(pred / "depth" / "b.npy", negative)
    assert (
        main(_args(dataset, pred, tmp_path / "m.json", "--tasks", "depth", "--convention", "densetorch")) != 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.npy" in err[0] and "negative" in err[0]
