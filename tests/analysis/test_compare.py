"""``densemtl compare`` on the tiny folder dataset: two tiny models, a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from densemtl.cli import main

torch.set_num_threads(1)

RECIPE = """
seed_everything: 0
model:
  tasks: [semseg, depth]
  model_options:
    backbone: {name: resnet18, output_stride: 8}
    aspp_channels: 16
  optimizer: adam
  lr: 0.001
  scheduler: poly
  log_images: 0
data:
  dataset: folder
  image_size: [32, 48]
  batch_size: 4
  num_workers: 0
  scales: [1.0]
  flip: false
  color_jitter: 0.0
  cache_in_memory: true
trainer:
  accelerator: cpu
  devices: 1
  limit_val_batches: 1
  enable_progress_bar: false
  enable_model_summary: false
"""


def test_compare_two_tiny_models(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text(RECIPE)
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            "--models",
            "stl_aspp,mtl_hps",
            "--config",
            str(config),
            "--max-steps",
            "2",
            "--output",
            str(out),
            "--profile-runs",
            "1",
            "--model-options",
            'mtl_hps={"aspp_channels": 8}',
            "--",
            "--data.root",
            str(tiny_dataset),
        ]
    )
    assert rc == 0
    rows = json.loads((out / "compare.json").read_text())
    assert [r["model"] for r in rows] == ["stl_aspp", "mtl_hps"]
    assert rows[0]["delta_mtl"] == 0.0 and rows[1]["delta_mtl"] is not None
    assert all(
        r["steps"] == 2 and r["params"] > 0 and r["gmacs"] > 0 and "miou" in r["metrics"] for r in rows
    )
    assert rows[1]["params"] < rows[0]["params"]
    table = (out / "compare.md").read_text()
    assert "| `mtl_hps` |" in table and "Δ_MTL" in table
    assert (out / "compare.png").stat().st_size > 1000


def test_compare_rejects_unknown_models(tmp_path: Path) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text(RECIPE)
    assert (
        main(["compare", "--models", "no_such_model", "--config", str(config), "--output", str(tmp_path)])
        == 2
    )


def test_seed002_configs_instantiate(tiny_dataset: Path) -> None:
    from densemtl.analysis.compare import CONFIG_DIR
    from densemtl.cli import build_cli

    for name in (
        "nyud_mtl_baselines",
        "nyud_mtl_sgd",
        "nyud_mtl_ssw",
        "sunrgbd_mtl_ssw",
        "synthetic_mtl_compare",
    ):
        cli = build_cli(
            [
                "--config",
                str(CONFIG_DIR / f"{name}.yaml"),
                "--data.dataset",
                "folder",
                "--data.root",
                str(tiny_dataset),
                "--trainer.logger",
                "false",
                "--trainer.callbacks",
                "[]",
            ],
            run=False,
        )
        assert cli.model.net.__class__.__name__ and cli.datamodule.hparams.batch_size == 8
