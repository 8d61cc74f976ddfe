"""``densemtl fuse`` end to end: files written, scores, frames/s, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fusion_scene import render, write_folder

from densemtl.cli import main
from densemtl.fusion.mesh import read_mesh_ply


def test_fuse_ground_truth_writes_mesh_metrics_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = write_folder(render(num_frames=12, height=40, width=56), tmp_path / "room")
    out = tmp_path / "out"
    argv = ["fuse", "--input", str(root), "--output", str(out), "--use-ground-truth", "--no-progress"]
    assert main([*argv, "--fusion", "counts", "--voxel-size", "0.04", "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "frames/s" in printed and "F-score@5cm" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fscore"] >= 0.95 and metrics["semantic_accuracy"] >= 0.95
    summary = json.loads((out / "fusion.json").read_text())
    assert summary["frames"] == 12 and summary["fusion"] == "counts" and not summary["poses_estimated"]
    assert summary["end_to_end_fps"] > 0
    mesh = read_mesh_ply(out / "mesh.ply")
    assert len(mesh.vertices) == summary["vertices"] and mesh.classes.max() == 4
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "trajectory.txt").read_text().splitlines()) == 13


def test_fuse_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["fuse", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o"), "--use-ground-truth"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "missing: sequence not found" in err
    root = write_folder(render(num_frames=1, height=24, width=32, spacing=0.2), tmp_path / "room")
    code = main(
        [
            "fuse",
            "--input",
            str(root),
            "--output",
            str(tmp_path / "o"),
            "--use-ground-truth",
            "--voxel-size",
            "0.001",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "raise --voxel-size" in err
    with pytest.raises(SystemExit):  # argparse: a source is required
        main(["fuse", "--input", str(root), "--output", str(tmp_path / "o")])


def test_help_lists_the_defaults(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--voxel_size M voxel edge in metres (default: 0.04)", "(default: bayes)", "--max_depth"):
        assert option in text
