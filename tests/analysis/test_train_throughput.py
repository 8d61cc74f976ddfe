"""``densemtl benchmark --train``: both paths measured in one fit, the report, and its errors."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from densemtl.analysis import train_throughput as tt
from densemtl.cli import main
from densemtl.cli.lightning import build_cli

TINY_CONFIG = """\
seed_everything: 0
model:
  model: hard_sharing
  tasks: [semseg, depth]
  model_options: {{backbone: resnet18, decoder_channels: 8}}
  weighting: {weighting}
  log_images: 1
data:
  dataset: folder
  root: {root}
  image_size: [32, 48]
  batch_size: 4
  scales: [1.0]
trainer:
  val_check_interval: 3
  check_val_every_n_epoch: null
  limit_val_batches: 1
  log_every_n_steps: 2
  enable_model_summary: false
  enable_progress_bar: false
"""


def _config(tmp_path: Path, root: Path, weighting: str = "fixed") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG.format(root=root, weighting=weighting))
    return path


def test_both_paths_measured_reported_and_written(tiny_dataset: Path, tmp_path: Path) -> None:
    config, out, doc = _config(tmp_path, tiny_dataset), tmp_path / "t.json", tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\n## Other\n\ntext\n")
    # no --steps: the config's log_every_n_steps (2), one metrics write per round
    args = ["--config", str(config), "--warmup_steps", "1", "--rounds", "2", "--threads", "1"]
    code = main(["benchmark", "--train", *args, "--json", str(out), "--output", str(doc)])
    assert code == 0
    result = json.loads(out.read_text())
    bare, loop = result["bare"], result["loop"]
    assert result["steps"] == 2
    for path in (bare, loop):
        rates = path["steps_per_s"]
        assert len(rates["rounds"]) == 2 and all(r > 0 for r in rates["rounds"])
        assert rates["median"] == pytest.approx(statistics.median(rates["rounds"]))
    per_round = [lo / ba for lo, ba in zip(loop["steps_per_s"]["rounds"], bare["steps_per_s"]["rounds"])]
    assert result["ratio"]["rounds"] == pytest.approx(per_round)
    assert result["ratio"]["median"] == pytest.approx(statistics.median(per_round))
    # the fit ran warm-up + rounds x steps + 1 optimiser steps and timed rounds x steps of them
    assert loop["steps_run"] == 1 + 2 * 2 + 1 and loop["timed_steps"] == 4
    # bare: 1 warm-up step, 2 timed, then 1 untimed + 2 timed in the second round
    assert bare["steps_run"] == 6 and bare["weight_change"] > 0
    # validation every 3 batches: one inside the timed batches 1..4, spread over 3 steps
    assert loop["validations"] == 1 and result["settings"]["validation_every"] == 3
    spread = 1 / (1 / loop["steps_per_s"]["median"] + loop["validation_s"][0] / 3)
    assert loop["with_validation_steps_per_s"] == pytest.approx(spread)
    assert result["command"].startswith(f"densemtl benchmark --train --config {config} --steps 2")
    text = doc.read_text()
    assert text.index("## Other") < text.index(tt.SECTION) < text.index("### tiny.yaml: hard_sharing")
    assert "| bare step (one kept batch) |" in text and "| fit loop, validation excluded |" in text


def test_bare_copy_trains_its_own_parameters(tiny_dataset: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = _config(tmp_path, tiny_dataset, weighting="gradnorm")  # a weighting on shared parameters
    cli = build_cli(tt.throughput_overrides(config, tmp_path / "run"), run=False)
    timer = tt.ThroughputTimer(steps=2, warmup_steps=0, rounds=1)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit_loop.epoch_loop.max_steps = 3
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    bare = timer.bare_module
    own = {id(p) for p in bare.parameters()}
    assert bare is not cli.model and not own & {id(p) for p in cli.model.parameters()}
    assert bare._shared_parameters and all(id(p) in own for p in bare._shared_parameters)
    assert timer.bare_steps == 2 and timer.weight_change() > 0
    assert cli.trainer.global_step == 3 and timer.loop_counted == [2]


def test_update_subsection_replaces_its_own_block_only(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    tt.update_subsection(doc, "### a.yaml: one\n\nfirst\n")
    tt.update_subsection(doc, "### b.yaml: two\n\nsecond\n")
    doc.write_text(doc.read_text() + "\n## Later\n\nkept\n")
    tt.update_subsection(doc, "### a.yaml: one\n\nnew\n")
    text = doc.read_text()
    assert "first" not in text and text.count("### a.yaml: one") == 1
    assert text.index("new") < text.index("second") < text.index("## Later") and "kept" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "{missing}"], "--config {missing}: file not found"),
        (["--config", "{config}", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["--config", "{config}", "--rounds", "0"], "--rounds must be >= 1, got 0"),
        ([], "benchmark --train needs --config FILE"),
    ],
)
def test_bad_input_is_a_one_line_error(
    args: list[str], message: str, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    names = {"missing": str(tmp_path / "nope.yaml"), "config": str(_config(tmp_path, tiny_dataset))}
    code = main(["benchmark", "--train", *[a.format(**names) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("densemtl: error: ") and message.format(**names) in err[0]
