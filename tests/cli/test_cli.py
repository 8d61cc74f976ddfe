"""The `densemtl` command end to end on tiny data: fit -> predict -> evaluate, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from densemtl.cli import main

FIT_ARGS = [
    "--data.dataset",
    "folder",
    "--data.image_size",
    "[32,48]",
    "--data.batch_size",
    "4",
    "--data.scales",
    "[1.0]",
    "--model.model_options",
    "{backbone: resnet18, decoder_channels: 32}",
    "--model.tasks",
    "[semseg,depth]",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--model.log_images",
    "0",
]


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    code = main(
        [
            "fit",
            *FIT_ARGS,
            "--data.root",
            str(tiny_dataset),
            "--trainer.max_steps",
            "6",
            "--trainer.default_root_dir",
            str(run_dir),
            "--seed_everything",
            "0",
        ]
    )
    assert code == 0
    (ckpt,) = run_dir.glob("default/checkpoints/last.ckpt")  # the stable run folder <root>/<name>/
    return ckpt


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 0
    text = capsys.readouterr().out
    for command in ("fit", "validate", "test", "demo", "predict", "evaluate", "profile", "data"):
        assert command in text


@pytest.mark.parametrize("command", [["demo"], ["predict"], ["evaluate"], ["data", "render"], ["fit"]])
def test_subcommand_help(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_fit_writes_best_and_last_checkpoints(trained: Path) -> None:
    assert trained.is_file() and (trained.parent / "best.ckpt").is_file()
    assert (trained.parents[1] / "config.yaml").is_file()


def test_test_subcommand_writes_metrics(trained: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    code = main(
        [
            "test",
            *FIT_ARGS,
            "--data.root",
            str(tiny_dataset),
            "--ckpt_path",
            str(trained),
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (metrics_file,) = tmp_path.glob("lightning_logs/*/test_metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["rmse"] > 0


def test_predict_then_evaluate_round_trip(trained: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    # any input size works: one image at a size the model never saw
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    test_ids = (tiny_dataset / "splits" / "test.txt").read_text().split()
    for sample_id in test_ids:
        (inputs / f"{sample_id}.png").write_bytes((tiny_dataset / "rgb" / f"{sample_id}.png").read_bytes())
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(inputs / "odd_size.png")
    out = tmp_path / "pred"
    assert main(["predict", "--ckpt", str(trained), "--input", str(inputs), "--output", str(out)]) == 0
    for folder in ("semantic", "semantic_color", "depth", "depth_color", "panel"):
        assert (out / folder / f"{test_ids[0]}.png").is_file(), folder
    depth = np.load(out / "depth" / "odd_size.npy")
    assert depth.shape == (50, 70) and np.all(depth > 0)
    assert np.asarray(Image.open(out / "semantic" / "odd_size.png")).shape == (50, 70)
    (out / "semantic" / "odd_size.png").unlink()
    metrics_file = tmp_path / "metrics.json"
    code = main(
        [
            "evaluate",
            "--predictions",
            str(out),
            "--dataset-root",
            str(tiny_dataset),
            "--split",
            "test",
            "--output",
            str(metrics_file),
        ]
    )
    assert code == 0
    metrics = json.loads(metrics_file.read_text())["metrics"]
    assert {"miou", "pixel_acc", "abs_rel", "rmse", "delta1"} <= set(metrics)


def test_bad_config_key_is_one_line_error(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  modle: hard_sharing\n")
    code = main(
        ["fit", "--config", str(config), "--data.dataset", "folder", "--data.root", str(tiny_dataset)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("densemtl: error: bad configuration") and "modle" in err[-1]


def test_unknown_model_and_missing_dataset_are_one_line_errors(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        [
            "fit",
            "--model.model",
            "no_such_net",
            "--data.dataset",
            "folder",
            "--data.root",
            str(tiny_dataset),
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "unknown model 'no_such_net'; known: " in capsys.readouterr().err
    code = main(["fit", "--data.dataset", "folder", "--data.root", str(tmp_path / "nowhere")])
    assert code == 2
    assert "nowhere: dataset folder not found" in capsys.readouterr().err


def test_predict_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["predict", "--ckpt", str(tmp_path / "x.ckpt"), "--input", str(tmp_path), "--output", str(tmp_path)]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == f"densemtl: error: {tmp_path / 'x.ckpt'}: checkpoint not found"


def test_predict_pointcloud_uses_the_training_intrinsics(
    trained: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from densemtl.inference.pointcloud import read_ply
    from densemtl.inference.predictor import intrinsics_at

    image = tmp_path / "big.png"  # twice the training images' 48x32: fx 40 -> 80
    Image.open(tiny_dataset / "rgb" / "0000.png").resize((96, 64)).save(image)
    out = tmp_path / "pred"
    argv = [
        "predict",
        "--ckpt_path",
        str(trained),
        "--input",
        str(image),
        "--output",
        str(out),
        "--pointcloud",
    ]
    assert main([*argv, "--no_panel"]) == 0
    said = capsys.readouterr().out
    assert (
        f"intrinsics from the training data's {tiny_dataset / 'intrinsics.json'}, scaled from 48x32" in said
    )
    points = read_ply(out / "pointcloud" / "big.ply")
    fx, fy, cx, cy = intrinsics_at(
        {"fx": 40.0, "fy": 40.0, "cx": 23.5, "cy": 15.5, "width": 48, "height": 32}, 64, 96
    )
    assert (fx, fy, cx, cy) == (80.0, 80.0, 47.5, 31.5)
    # projecting the points back with those intrinsics lands on the 96x64 pixel grid
    u = points["x"] * fx / points["z"] + cx
    v = points["y"] * fy / points["z"] + cy
    assert np.abs(u - np.round(u)).max() < 1e-2 and np.abs(v - np.round(v)).max() < 1e-2
    assert (np.round(u).min(), np.round(u).max(), np.round(v).max()) == (0, 95, 63)
    assert json.loads((out / "timing.json").read_text())["intrinsics"].startswith("the training data's")
