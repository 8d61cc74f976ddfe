"""Resumable sweeps and their launchers on the tiny folder dataset (a few steps of a tiny model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from densemtl.analysis.sweep import RunSpec, prepare_runs, run_state, thread_shares
from densemtl.cli import main
from densemtl.errors import ConfigError

torch.set_num_threads(1)

RECIPE = """
seed_everything: 0
model:
  model: mtl_hps
  tasks: [semseg, depth]
  model_options:
    backbone: {name: resnet18, output_stride: 32}
    aspp_channels: 8
  optimizer: adam
  lr: 0.001
  scheduler: none
  log_images: 0
data:
  dataset: folder
  image_size: [32, 48]
  batch_size: 2
  num_workers: 0
  scales: [1.0]
  flip: false
  color_jitter: 0.0
  cache_in_memory: true
trainer:
  accelerator: cpu
  devices: 1
  limit_val_batches: 0
  enable_progress_bar: false
  enable_model_summary: false
"""


def _compare(config: Path, out: Path, data: Path, *extra: str) -> list[str]:
    return [
        "compare",
        "--models",
        "mtl_hps",
        "--config",
        str(config),
        "--baseline",
        "",
        "--output",
        str(out),
        "--profile-runs",
        "1",
        *extra,
        "--",
        "--data.root",
        str(data),
    ]


def _result(out: Path, seed: int) -> dict:
    return json.loads((out / "runs" / "mtl_hps" / f"seed_{seed}" / "result.json").read_text())


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def test_killed_sweep_resumes(recipe: Path, tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    args = _compare(
        recipe, out, tiny_dataset, "--seeds", "0,1", "--max-steps", "8", "--checkpoint-every", "2"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "densemtl.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seed1 = out / "runs" / "mtl_hps" / "seed_1"
    deadline = time.monotonic() + 240
    while not (seed1 / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before seed 1 saved"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    seed0_metrics = out / "runs" / "mtl_hps" / "seed_0" / "test_metrics.json"
    assert seed0_metrics.is_file() and not (seed1 / "test_metrics.json").is_file()
    first_mtime = seed0_metrics.stat().st_mtime_ns
    capsys.readouterr()

    assert main(args) == 0  # the same command again
    log = capsys.readouterr().out
    assert "mtl_hps seed 0: finished, skipped" in log and "mtl_hps seed 1: resumes from" in log
    assert seed0_metrics.stat().st_mtime_ns == first_mtime
    resumed = _result(out, 1)
    assert (
        resumed["steps"] == 8 and resumed["resumed_from_step"] >= 2 and resumed["resumed_from_step"] % 2 == 0
    )
    assert _result(out, 0)["resumed_from_step"] is None
    rows = json.loads((out / "compare.json").read_text())
    assert rows[0]["seeds"] == [0, 1]

    # a changed recipe must not silently reuse those folders
    recipe.write_text(RECIPE.replace("lr: 0.001", "lr: 0.002"))
    spec = RunSpec("mtl_hps", 0, str(recipe), max_steps=8, overrides=("--data.root", str(tiny_dataset)))
    with pytest.raises(ConfigError, match="another config"):
        run_state(spec, spec.folder(out))


def test_parallel_local_launcher(recipe: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    assert (
        main(_compare(recipe, out, tiny_dataset, "--seeds", "0,1", "--max-steps", "2", "--parallel", "2"))
        == 0
    )
    share = thread_shares(2)[0]
    for seed in (0, 1):
        result = _result(out, seed)
        assert result["steps"] == 2 and result["threads"] == share  # each subprocess pinned to its share
        assert (out / "runs" / "mtl_hps" / f"seed_{seed}" / "stdout.log").is_file()
    assert json.loads((out / "compare.json").read_text())[0]["seeds"] == [0, 1]
    _, todo = prepare_runs(
        [
            RunSpec(
                "mtl_hps", s, str(recipe.resolve()), max_steps=2, overrides=("--data.root", str(tiny_dataset))
            )
            for s in (0, 1)
        ],
        out,
    )
    assert todo == []  # both finished: nothing left to run


def test_submitit_launcher_through_the_local_executor(
    recipe: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    pytest.importorskip("submitit")
    out = tmp_path / "slurm"
    extra = ("--seeds", "0", "--max-steps", "2", "--launcher", "slurm", "--slurm-cluster", "local")
    assert main(_compare(recipe, out, tiny_dataset, *extra, "--slurm-time", "10")) == 0
    assert _result(out, 0)["steps"] == 2
    assert any((out / "slurm").glob("*_result.pkl"))  # submitit ran the pickled run_one as a job
    assert (out / "compare.md").is_file()


def test_gpu_and_thread_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    from densemtl.analysis.sweep import gpu_shares

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpu_shares(2) == ["0,1", "2,3"] and gpu_shares(4) == ["0", "1", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_shares(2) == [None, None]
    assert sum(thread_shares(2)) <= max(2, len(os.sched_getaffinity(0))) and min(thread_shares(64)) == 1
