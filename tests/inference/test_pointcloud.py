"""Semantic point cloud export: back-projection geometry and the PLY round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densemtl.inference.pointcloud import backproject, read_ply, semantic_pointcloud, write_ply


def test_backproject_geometry() -> None:
    depth = np.zeros((4, 6), np.float32)
    depth[1, 4] = 2.0  # u = 4, v = 1
    depth[3, 0] = np.inf  # invalid
    points, idx = backproject(depth, (2.0, 4.0, 2.0, 1.0))
    assert idx.tolist() == [[1, 4]]
    np.testing.assert_allclose(points, [[(4 - 2) * 2 / 2, (1 - 1) * 2 / 4, 2.0]])


@pytest.mark.parametrize("ascii", [False, True])
def test_semantic_ply_round_trip(tmp_path: Path, ascii: bool) -> None:
    depth = np.full((8, 10), 3.0, np.float32)
    depth[0, 0] = 0.0  # invalid
    depth[1, 1] = 50.0  # beyond max_depth
    labels = np.zeros((8, 10), np.int64)
    labels[:, 5:] = 1
    labels[2, 2] = 255  # ignore
    palette = [[255, 0, 0], [0, 0, 255]]
    points, colors, point_labels = semantic_pointcloud(
        depth, (10.0, 10.0, 4.5, 3.5), labels, palette, max_depth=10.0
    )
    assert len(points) == 80 - 3
    path = write_ply(tmp_path / "cloud.ply", points, colors, point_labels, ascii=ascii)
    data = read_ply(path)
    assert len(data) == 77
    np.testing.assert_allclose(data["z"], 3.0)
    blue = data["label"] == 1
    assert (data["blue"][blue] == 255).all() and (data["red"][~blue] == 255).all()
    assert blue.sum() == 8 * 5


def test_rgb_colours_and_stride() -> None:
    depth = np.ones((4, 4), np.float32)
    rgb = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    points, colors, labels = semantic_pointcloud(depth, (1, 1, 0, 0), rgb=rgb, stride=2)
    assert len(points) == 4 and labels is None
    assert colors[1].tolist() == rgb[0, 2].tolist()


def test_predict_writes_pointcloud(tmp_path: Path) -> None:
    import argparse

    import torch

    from densemtl.cli import predict
    from densemtl.data import io
    from densemtl.training.module import DenseMTLModule

    torch.set_num_threads(1)
    module = DenseMTLModule(model="mt_refinenet", tasks=["semseg", "depth"], num_classes=3)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    io.write_image(tmp_path / "in" / "a.png", np.zeros((24, 32, 3), np.uint8))
    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    args = parser.parse_args(
        [
            "--ckpt",
            str(ckpt),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--size",
            "32x32",
            "--no-panel",
            "--pointcloud",
            "--intrinsics",
            "30,30,15.5,11.5",
        ]
    )
    assert predict.run(args) == 0
    data = read_ply(tmp_path / "out" / "pointcloud" / "a.ply")
    assert len(data) == 24 * 32 and set(np.unique(data["label"])) <= {0, 1, 2}


def test_reading_a_broken_ply_is_a_one_line_error(tmp_path: Path) -> None:
    from densemtl.errors import DataError

    path = tmp_path / "broken.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\n")
    with pytest.raises(DataError, match=r"broken\.ply"):
        read_ply(path)
