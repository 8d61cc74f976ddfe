"""DDP on CPU: `fit` with 2 processes (gloo) trains, and test metrics synced over 2 processes
equal a single-process evaluation of the same checkpoint on the same data; the gradient-based
weightings (GradNorm, PCGrad) keep the ranks identical and equal their global-batch version."""

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


def _densemtl(args: list[str], cwd: Path, pythonpath: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:  # where a --trainer.callbacks class lives
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
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
    (ckpt,) = fit_dir.glob("*/checkpoints/last.ckpt")  # the run folder <root>/<name>/
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


# --- gradient-based weightings (GradNorm, PCGrad) under DDP ---------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradient_weightings_under_ddp_equal_the_global_batch(tmp_path: Path) -> None:
    """2 DDP processes on 8 + 8 samples == 1 process on the 16 (3 SGD steps, toy model without BN):
    the per-task statistics are those of the global batch, not per-process approximations."""
    import torch
    import torch.multiprocessing as mp
    from ddp_helpers import ToyMTL, toy_data, toy_ddp_worker, toy_state, train_toy

    configs = [(name, sync) for name in ("gradnorm", "pcgrad") for sync in (True, False)]
    mp.spawn(toy_ddp_worker, args=(_free_port(), str(tmp_path), configs), nprocs=2, join=True)
    x, y = toy_data()
    for name, sync in configs:
        reference = ToyMTL(name, sync)
        train_toy(reference, x, y)
        expected = toy_state(reference)
        ranks = [torch.load(tmp_path / f"{name}-{sync}-rank{r}.pt") for r in (0, 1)]
        for key in expected:
            assert torch.equal(ranks[0][key], ranks[1][key]), (name, sync, key)
        if name == "gradnorm":
            assert not torch.allclose(expected["weighting.task_weights"], torch.ones(2))
        matches = all(torch.allclose(ranks[0][k], v, atol=1e-6) for k, v in expected.items())
        # sync=False (per-process statistics) is a different method: this data tells them apart
        assert matches == sync, (name, sync)


@pytest.mark.parametrize("weighting", ["gradnorm", "pcgrad"])
def test_two_process_fit_with_gradient_weighting(tiny_dataset: Path, tmp_path: Path, weighting: str) -> None:
    """The real `densemtl fit --trainer.strategy ddp`: after 3 steps every parameter (GradNorm's task
    weights included) is bit-identical on both ranks."""
    import torch

    _densemtl(
        [
            "fit",
            *COMMON,
            "--data.root",
            str(tiny_dataset),
            "--model.tasks",
            "[semseg,depth]",
            "--model.weighting",
            weighting,
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--trainer.max_steps",
            "3",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.callbacks+=ddp_helpers.DumpRankState",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--seed_everything",
            "0",
        ],
        tmp_path,
        pythonpath=Path(__file__).parent,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert set(ranks[0]) == set(ranks[1])
    different = [k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])]
    assert not different, different
    if weighting == "gradnorm":
        weights = ranks[0]["weighting.task_weights"]
        assert not torch.allclose(weights, torch.ones(2)) and float(weights.sum()) == pytest.approx(
            2, abs=0.1
        )
        assert bool(ranks[0]["weighting.initialised"]) and torch.all(ranks[0]["weighting.initial"] > 0)
