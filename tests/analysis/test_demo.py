"""`densemtl demo` end to end at toy scale: render, train, test, report with metrics and panels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from densemtl.cli import main


def test_demo_writes_report_with_metrics_and_panels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # the render cache lives under ./data_cache
    code = main(
        [
            "demo",
            "--output",
            "runs/demo",
            "--max-steps",
            "3",
            "--num-images",
            "20",
            "--panels",
            "2",
            "--",
            "--data.synthetic.height",
            "48",
            "--data.synthetic.width",
            "64",
            "--data.image_size",
            "[48,64]",
            "--data.batch_size",
            "4",
            "--model.model_options",
            "{backbone: resnet18, decoder_channels: 16}",
            "--trainer.val_check_interval",
            "3",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert code == 0
    report = (tmp_path / "runs/demo/report.md").read_text()
    assert "| miou |" in report and "| delta1 |" in report and "| wall |" in report
    assert (tmp_path / "runs/demo/panels/panel_1.png").is_file()
    metrics = json.loads((tmp_path / "runs/demo/metrics.json").read_text())
    assert metrics["steps"] == 3 and 0.0 <= metrics["miou"] <= 1.0
    checkpoint = report.split("- checkpoint: `")[1].split("`")[0]
    assert (tmp_path / checkpoint).is_file()
    assert (tmp_path / "data_cache/synthetic-20-48x64-s0/synthetic.json").is_file()
    assert "report: runs/demo/report.md" in capsys.readouterr().out


def test_fusion_section_maps_a_trajectory_with_the_checkpoint_and_the_oracle(tmp_path: Path) -> None:
    import torch

    from densemtl.analysis.demo import fusion_section
    from densemtl.data.synthetic import CLASS_NAMES
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    module = DenseMTLModule(
        model="hard_sharing", tasks=["semseg", "depth"], num_classes=len(CLASS_NAMES),
        class_names=list(CLASS_NAMES), model_options={"backbone": "resnet18", "decoder_channels": 8},
    )  # fmt: skip
    checkpoint = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "datamodule_hyper_parameters": {"image_size": [24, 32]},
        },
        checkpoint,
    )
    lines = fusion_section(tmp_path / "run", checkpoint, frames=4, size=(48, 64), surface_spacing=0.04)
    text = "\n".join(lines)
    assert lines[0] == "## 3D semantic map" and "| network |" in text and "| oracle |" in text
    scores = json.loads((tmp_path / "run/fusion/metrics.json").read_text())
    assert scores["oracle"]["fscore"] > 0.8 and scores["oracle"]["semantic_accuracy"] > 0.9
    assert "frame_miou" in scores["network"] and "frame_miou" not in scores["oracle"]
    assert 0.0 <= scores["network"]["fscore"] < scores["oracle"]["fscore"]  # an untrained network
    for source in ("network", "oracle"):
        assert (tmp_path / f"run/fusion/{source}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"](fusion/{source}.png)" in text
