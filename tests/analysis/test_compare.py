"""``densemtl compare`` on the tiny folder dataset: two tiny models, two seeds, a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.cli import main
from densemtl.metrics import delta_mtl
from densemtl.weighting import WEIGHTINGS

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
            "--seeds",
            "0,1",
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
    # one Lightning run per (model, seed), each in its own folder
    for model in ("stl_aspp", "mtl_hps"):
        for seed in (0, 1):
            run = out / "runs" / model / f"seed_{seed}"
            assert (run / "test_metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
            assert json.loads((run / "result.json").read_text())["steps"] == 2
    # mean ± sample std over seeds, Δ_MTL per seed against that seed's single-task run
    hps = rows[1]
    assert hps["seeds"] == [0, 1]
    seed_miou = [
        json.loads((out / "runs/mtl_hps" / f"seed_{s}/test_metrics.json").read_text())["miou"] for s in (0, 1)
    ]
    assert hps["metrics"]["miou"] == pytest.approx(np.mean(seed_miou))
    assert hps["metrics_std"]["miou"] == pytest.approx(np.std(seed_miou, ddof=1))
    deltas = []
    for s in (0, 1):
        mine = json.loads((out / "runs/mtl_hps" / f"seed_{s}/test_metrics.json").read_text())
        base = json.loads((out / "runs/stl_aspp" / f"seed_{s}/test_metrics.json").read_text())
        deltas.append(100 * delta_mtl(mine, base))
    assert hps["delta_mtl"] == pytest.approx(np.mean(deltas))
    assert hps["delta_mtl_std"] == pytest.approx(np.std(deltas, ddof=1))
    assert hps["per_seed"]["delta_mtl"] == {"0": pytest.approx(deltas[0]), "1": pytest.approx(deltas[1])}
    # paired by seed against the reference (default: the baseline)
    test = hps["tests"]["miou"]
    assert test["seeds"] == [0, 1] and test["n"] == 2
    assert test["mean_diff"] == pytest.approx(
        np.mean(np.subtract(seed_miou, list(rows[0]["per_seed"]["miou"].values())))
    )
    assert " ± " in table and "sample std (ddof=1)" in table and "low power" in table
    assert "<img" in (out / "compare.html").read_text()


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


def test_seeds_parse_and_default_to_the_recipe(tmp_path: Path) -> None:
    from densemtl.analysis.compare import parse_seeds, recipe_seed
    from densemtl.errors import ConfigError

    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("3-5") == [3, 4, 5]
    with pytest.raises(ConfigError):
        parse_seeds("0,0")
    config = tmp_path / "recipe.yaml"
    config.write_text(RECIPE.replace("seed_everything: 0", "seed_everything: 7"))
    assert recipe_seed(config) == 7


def test_sweep_files_fill_the_options() -> None:
    from densemtl.analysis.compare import CONFIG_DIR, parse_seeds, sweep_specs
    from densemtl.cli.compare import _apply_sweep_file
    from densemtl.cli.main import build_parser

    sweeps = CONFIG_DIR / "sweeps"
    args = build_parser().parse_args(
        ["compare", "--sweep", str(sweeps / "luo_ye_2seeds.yaml"), "--seeds", "0", "--", "--data.root=x"]
    )
    _apply_sweep_file(args)
    assert args.models.split(",")[0] == "stl_aspp" and len(args.models.split(",")) == 9
    assert args.seeds == "0" and args.max_steps == 1500  # the command line wins, the file fills the rest
    assert Path(args.config).resolve() == (CONFIG_DIR / "synthetic_mtl_compare_cpu.yaml").resolve()
    assert args.overrides == ["--trainer.val_check_interval=1500", "--data.root=x"]
    args = build_parser().parse_args(["compare", "--sweep", str(sweeps / "weightings_3seeds.yaml")])
    _apply_sweep_file(args)
    specs = sweep_specs(
        args.models.split(","), args.config, parse_seeds(args.seeds), args.weightings.split(",")
    )
    every = set(WEIGHTINGS.names()) - {"xtasc_groups"}  # every strategy but XTasC-Net's own
    assert len(specs) == 3 * len(every) and args.baseline == "" and args.reference == "fixed"
    assert {s.weighting for s in specs} == every
