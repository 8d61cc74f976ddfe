"""``densemtl report`` on runs the tests create: compare runs over two seeds plus a plain fit + test run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.analysis.report import pareto_front
from densemtl.cli import main
from densemtl.metrics import delta_mtl

torch.set_num_threads(1)

RECIPE = """
seed_everything: 0
model:
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
  limit_val_batches: 1
  enable_progress_bar: false
  enable_model_summary: false
"""


@pytest.fixture(scope="module")
def runs(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-seed compare sweep (stl_aspp, mtl_hps) and a `fit` + `test` of mtl_hps with another weighting."""
    root = tmp_path_factory.mktemp("report_runs")
    config = root / "recipe.yaml"
    config.write_text(RECIPE)
    sweep, plain = root / "sweep", root / "plain"
    data = ["--data.root", str(tiny_dataset)]
    base = ["--config", str(config), "--model.model", "mtl_hps", "--model.weighting", "uncertainty"]
    base += [
        "--trainer.max_steps",
        "2",
        "--data.batch_size",
        "4",
        "--trainer.default_root_dir",
        str(plain),
        *data,
    ]
    assert main(["fit", *base]) == 0
    ckpt = sorted(plain.rglob("*.ckpt"), key=lambda p: p.name != "last.ckpt")[0]  # wherever fit logs
    assert main(["test", *base, "--ckpt_path", str(ckpt)]) == 0
    args = ["compare", "--models", "stl_aspp,mtl_hps", "--config", str(config), "--seeds", "0,1"]
    assert main([*args, "--max-steps", "2", "--output", str(sweep), "--profile-runs", "1", "--", *data]) == 0
    return sweep, plain


def _report(runs: tuple[Path, Path], out: Path, capsys: pytest.CaptureFixture) -> tuple[list[dict], str]:
    capsys.readouterr()
    rc = main(
        [
            "report",
            *map(str, runs),
            "--output",
            str(out),
            "--reference",
            "mtl_hps+fixed",
            "--profile-runs",
            "1",
        ]
    )
    assert rc == 0
    return json.loads((out / "report.json").read_text()), capsys.readouterr().out


def test_report_from_existing_runs(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep, _ = runs
    rows, log = _report(runs, tmp_path, capsys)
    by_label = {r["label"]: r for r in rows}
    assert set(by_label) == {"stl_aspp+fixed", "mtl_hps+fixed", "mtl_hps+uncertainty"}
    assert by_label["mtl_hps+uncertainty"]["seeds"] == [0]
    # the same numbers as the compare command's report, from the files alone
    compare = {r["model"]: r for r in json.loads((sweep / "compare.json").read_text())}
    for name in ("stl_aspp", "mtl_hps"):
        assert by_label[f"{name}+fixed"]["metrics"] == pytest.approx(compare[name]["metrics"])
        assert by_label[f"{name}+fixed"]["params"] == compare[name]["params"]
    # Δ_MTL of the plain run against the single-task run of its seed
    plain_metrics = json.loads(next(runs[1].rglob("test_metrics.json")).read_text())
    base = json.loads((sweep / "runs/stl_aspp/seed_0/test_metrics.json").read_text())
    assert by_label["mtl_hps+uncertainty"]["delta_mtl"] == pytest.approx(100 * delta_mtl(plain_metrics, base))
    # paired against the chosen reference; one common seed cannot be tested
    assert by_label["mtl_hps+fixed"]["is_reference"] and not by_label["mtl_hps+fixed"]["tests"]
    assert by_label["stl_aspp+fixed"]["tests"]["miou"]["n"] == 2
    assert by_label["mtl_hps+uncertainty"]["tests"]["miou"]["n"] == 1
    # per-class IoU from the runs that saved it (compare runs), averaged over seeds
    per_class = [
        json.loads((sweep / f"runs/mtl_hps/seed_{s}/per_class_iou.json").read_text()) for s in (0, 1)
    ]
    assert by_label["mtl_hps+fixed"]["per_class_iou"]["box"][0] == pytest.approx(
        np.mean([p["box"] for p in per_class])
    )
    assert "per_class_iou" not in by_label["mtl_hps+uncertainty"]
    table = (tmp_path / "report.md").read_text()
    assert "| `mtl_hps+uncertainty` | 1 |" in table and "## Paired tests" in table
    assert log.count("profiling") == 2  # one per distinct model
    _, again = _report(runs, tmp_path, capsys)
    assert "profiling" not in again  # cached
    page = (tmp_path / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in page  # self-contained


def test_pareto_front() -> None:
    # cost, accuracy: (1, 0.5) and (3, 0.7) and (5, 0.9) are the front; (4, 0.6) is dominated
    assert pareto_front([1, 4, 3, 5], [0.5, 0.6, 0.7, 0.9]) == [0, 2, 3]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from PIL import Image

    _report(runs, tmp_path, capsys)
    page = (tmp_path / "report.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    flags += [f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1400,1800"]
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180
    ).stdout
    assert dom.count("<table>") == 2 and "mtl_hps+uncertainty" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=180
    )
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape[0] >= 1000 and len(np.unique(image)) > 20  # drawn figures, not a blank page
