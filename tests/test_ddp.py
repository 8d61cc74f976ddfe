"""DDP on CPU: `fit` with 2 processes (gloo) trains, and test metrics synced over 2 processes
equal a single-process evaluation of the same checkpoint on the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]

COMMON = [
    "--data.dataset",
    "folder",
    "--data.image_size",
    "[32,48]",
    "--data.batch_size",
    "2",
    "--data.eval_batch_size",
    "2",
    "--data.scales",
    "[1.0]",
    "--model.tasks",
    "[semseg,depth,normals]",
    "--model.model_options",
    "{backbone: resnet18, decoder_channels: 16}",
    "--model.log_images",
    "0",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
]


def _densemtl(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "densemtl.cli", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _test_metrics(root: Path) -> dict[str, float]:
    (path,) = root.glob("lightning_logs/*/test_metrics.json")
    return json.loads(path.read_text())


def test_two_process_fit_and_metric_agreement(tiny_dataset: Path, tmp_path: Path) -> None:
    # 4 test images, 2 per batch: each of the 2 ranks gets whole batches and no padded duplicates
    assert len((tiny_dataset / "splits" / "test.txt").read_text().split()) == 4
    fit_dir = tmp_path / "fit"
    _densemtl(
        [
            "fit",
            *COMMON,
            "--data.root",
            str(tiny_dataset),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--trainer.max_steps",
            "3",
            "--trainer.default_root_dir",
            str(fit_dir),
            "--seed_everything",
            "0",
        ],
        tmp_path,
    )
    (ckpt,) = fit_dir.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    for devices, strategy in (("1", "auto"), ("2", "ddp")):
        _densemtl(
            [
                "test",
                *COMMON,
                "--data.root",
                str(tiny_dataset),
                "--trainer.devices",
                devices,
                "--trainer.strategy",
                strategy,
                "--ckpt_path",
                str(ckpt),
                "--trainer.default_root_dir",
                str(tmp_path / f"test{devices}"),
            ],
            tmp_path,
        )
    single, double = _test_metrics(tmp_path / "test1"), _test_metrics(tmp_path / "test2")
    assert set(single) == set(double) and {"miou", "rmse", "normal_mean"} <= set(single)
    for key, value in single.items():
        assert double[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
