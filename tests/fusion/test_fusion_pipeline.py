"""``fuse`` with a network-like predictor, with estimated poses, and the checkpoint / ONNX predictors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fusion_scene import CLASSES, render, write_folder

from densemtl.fusion import fuse, open_sequence
from densemtl.fusion.predictors import CheckpointPredictor, OnnxPredictor
from densemtl.fusion.report import render_comparison


class NoisyOracle:
    """Ground-truth depth + softmax-like probabilities: 25 % of pixels favour a wrong class."""

    def __init__(self, scene, batch_size: int) -> None:
        self.lookup = {img.tobytes(): (d, lab) for img, d, lab in zip(scene.rgb, scene.depth, scene.labels)}
        self.batch_size = batch_size
        self.calls: list[int] = []
        self.rng = np.random.default_rng(0)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert images.dtype == np.uint8 and images.ndim == 4
        self.calls.append(len(images))
        depth, probs = [], []
        for image in images:
            d, labels = self.lookup[image.tobytes()]
            wrong = self.rng.random(labels.shape) < 0.25
            shown = np.where(wrong, (labels + 1) % len(CLASSES), labels)
            p = np.full((len(CLASSES), *labels.shape), 0.1, np.float32)
            np.put_along_axis(p, shown[None], 0.6, axis=0)
            depth.append(d)
            probs.append(p)
        return np.stack(depth), np.stack(probs)


def test_bayesian_fusion_outvotes_per_frame_noise(tmp_path: Path) -> None:
    scene = render(num_frames=24, height=48, width=64)
    sequence = open_sequence(write_folder(scene, tmp_path / "room"))
    predictor = NoisyOracle(scene, batch_size=5)
    result = fuse(sequence, predictor, voxel_size=0.04, batch_size=5, progress=False)
    assert predictor.calls == [5, 5, 5, 5, 4]  # in batches; the bounds came from the sequence depth
    assert result.metrics["fscore"] >= 0.95
    assert result.metrics["semantic_accuracy"] >= 0.88  # per frame only ~75 % of pixels are right
    assert result.class_names == CLASSES
    # the single-frame baseline, scored on the same frames: what the voting adds
    assert result.frame_metrics["frame_pixel_accuracy"] == pytest.approx(0.75, abs=0.02)
    assert result.metrics["frame_miou"] == result.frame_metrics["frame_miou"] < 0.7
    assert fuse(sequence, None, voxel_size=0.04, max_frames=2, progress=False).frame_metrics is None


def test_estimated_poses_follow_the_camera(tmp_path: Path) -> None:
    scene = render(num_frames=8, height=60, width=80, arc=0.6)
    root = write_folder(scene, tmp_path / "pan")
    shutil.rmtree(root / "poses")
    sequence = open_sequence(root)
    assert not sequence.has_poses
    result = fuse(sequence, None, voxel_size=0.04, initial_pose=scene.poses[0], progress=False)
    assert result.poses_estimated
    drift = max(np.abs(p[:3, 3] - q[:3, 3]).max() for p, q in zip(result.poses, scene.poses))
    assert drift < 0.02
    assert result.metrics["fscore"] >= 0.9
    unanchored = fuse(sequence, None, voxel_size=0.04, max_frames=2, progress=False)
    assert unanchored.metrics is None  # the map is in the first camera's frame: not scored
    np.testing.assert_allclose(unanchored.poses[0], np.eye(4))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    module = DenseMTLModule(
        model="mt_refinenet", tasks=["semseg", "depth"], num_classes=5, class_names=CLASSES,
        model_options={"init": "kaiming"},
    )  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "datamodule_hyper_parameters": {"image_size": [32, 48]},
        },
        path,
    )
    return path


def test_checkpoint_and_onnx_predictors_agree(checkpoint: Path, tmp_path: Path) -> None:
    from densemtl.inference.export import export_onnx
    from densemtl.training.checkpoint import load_module

    images = np.stack(render(num_frames=2, height=40, width=56).rgb)
    network = CheckpointPredictor(checkpoint)
    assert network.size == (32, 48) and network.class_names == CLASSES
    depth, probs = network(images)
    assert depth.shape == (2, 40, 56) and probs.shape == (2, 5, 40, 56)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 40, 56))
    onnx_path = tmp_path / "model.onnx"
    export_onnx(load_module(checkpoint).net, onnx_path, size=(32, 48))
    onnx = OnnxPredictor(onnx_path)
    assert onnx.size == (32, 48) and onnx.batch == 1  # a fixed-size export: run frame by frame
    depth2, probs2 = onnx(images)
    torch.testing.assert_close(depth2, depth, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(probs2, probs, atol=1e-3, rtol=1e-3)


def test_fuse_with_a_checkpoint_and_draw_the_report(checkpoint: Path, tmp_path: Path) -> None:
    scene = render(num_frames=3, height=32, width=48)
    sequence = open_sequence(write_folder(scene, tmp_path / "room"))
    result = fuse(sequence, CheckpointPredictor(checkpoint), voxel_size=0.1, max_depth=8.0, progress=False)
    assert result.frames == 3 and result.volume.num_classes == 5
    assert result.metrics is not None and 0.0 <= result.metrics["fscore"] <= 1.0
    path = render_comparison(tmp_path / "report.png", result.mesh, sequence.surface, result.class_colors)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
