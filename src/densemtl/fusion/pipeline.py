"""Dense semantic 3D mapping: per-frame depth + semantics fused into a TSDF, meshed and scored.

What Nekrasov et al. (Real-Time Joint Semantic Segmentation and Depth Estimation, ICRA 2019) do
with SemanticFusion (McCormac et al., ICRA 2017): a network predicts depth and class probabilities
for every frame, the frames are fused with their camera poses into one map. Here the map is a
TSDF volume (:mod:`densemtl.fusion.tsdf`), meshed by marching cubes (:mod:`densemtl.fusion.mesh`)
and scored against the sequence's ground-truth surface (:mod:`densemtl.fusion.metrics`).

``fuse`` runs up to two passes over the sequence:

1. a survey, only when needed: camera poses by ICP (:mod:`densemtl.fusion.odometry`) when the
   sequence has none, and the volume bounds (the box of every frame's back-projected points up to
   ``max_depth``) when none are given. It uses the sequence's own depth, else the predictor's;
2. fusion: predict (or read the ground truth: the oracle), integrate, count the GT surface points
   each frame observes (for completeness).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from densemtl.data.datasets.folder import default_palette
from densemtl.errors import DenseMTLError
from densemtl.fusion.mesh import SemanticMesh, extract_mesh
from densemtl.fusion.metrics import VisibilityAccumulator, reconstruction_metrics, semantic_metrics
from densemtl.fusion.odometry import FrameToFrameOdometry
from densemtl.fusion.sequences import Frame, FrameSequence
from densemtl.fusion.tsdf import FusionMode, TSDFVolume, backproject_world

PredictFn = Callable[[np.ndarray], tuple[Any, Any]]


@dataclass
class FusionResult:
    """The fused map, its mesh, its scores (None without a GT surface) and the timings."""

    volume: TSDFVolume
    mesh: SemanticMesh
    metrics: dict[str, Any] | None
    frames: int
    seconds: float
    fusion_seconds: float
    poses_estimated: bool
    poses: list[np.ndarray | None]
    class_names: list[str]
    class_colors: list[list[int]]
    timing: dict[str, float] = field(default_factory=dict)
    frame_metrics: dict[str, float] | None = None

    @property
    def fps(self) -> float:
        """End-to-end frames/s (reading, survey, prediction, integration)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _limited(sequence: FrameSequence, max_frames: int | None) -> Iterator[Frame]:
    return itertools.islice(iter(sequence), max_frames)


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    while batch := list(itertools.islice(frames, size)):
        yield batch


def _predict(predictor: PredictFn | None, batch: list[Frame]) -> list[tuple[Any, Any]]:
    """(depth, semantics) per frame: the predictor's, or the ground truth (the oracle)."""
    if predictor is None:
        for frame in batch:
            if frame.depth is None:
                raise DenseMTLError(f"frame {frame.id} has no depth: the oracle needs ground-truth depth")
        return [(f.depth, f.labels) for f in batch]
    sizes = {f.rgb.shape for f in batch}
    if len(sizes) > 1:  # frames of one sequence share a size; guard against mixed folders anyway
        return [r for f in batch for r in _predict(predictor, [f])]
    depth, semantics = predictor(np.stack([f.rgb for f in batch]))
    return [(depth[i], None if semantics is None else semantics[i]) for i in range(len(batch))]


class _FrameScores:
    """Per-frame 2D semantics of the predictor against the frames' own labels, before fusion.

    One confusion matrix over every fused pixel (:class:`~densemtl.metrics.SegmentationMetrics`,
    labels at the frame size, 255 ignored): the single-view numbers the map is compared with.
    """

    def __init__(self, num_classes: int) -> None:
        from densemtl.metrics import SegmentationMetrics

        self.metric = SegmentationMetrics(num_classes=num_classes)
        self.frames = 0

    def add(self, semantics: Any, labels: np.ndarray) -> None:
        pred = torch.as_tensor(_numpy(semantics))
        self.metric.update(
            pred[None].float() if pred.ndim == 3 else pred[None].long(), torch.from_numpy(labels)[None]
        )
        self.frames += 1

    def compute(self) -> dict[str, float] | None:
        if not self.frames:
            return None
        scores = self.metric.compute()
        return {"frame_miou": float(scores["miou"]), "frame_pixel_accuracy": float(scores["pixel_acc"])}


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def survey(
    sequence: FrameSequence,
    predictor: PredictFn | None,
    max_depth: float | None,
    max_frames: int | None = None,
    batch_size: int = 8,
    estimate_poses: bool = True,
    initial_pose: np.ndarray | None = None,
) -> tuple[list[np.ndarray | None], tuple[np.ndarray, np.ndarray] | None]:
    """Poses (the sequence's, or frame-to-frame ICP from ``initial_pose``) and the box of the observed points."""
    odometry = FrameToFrameOdometry(max_depth, initial_pose) if estimate_poses else None
    poses: list[np.ndarray | None] = []
    lower, upper = np.full(3, np.inf), np.full(3, -np.inf)
    for batch in _batches(_limited(sequence, max_frames), batch_size):
        own_depth = all(f.depth is not None for f in batch)
        depths = [f.depth for f in batch] if own_depth else [d for d, _ in _predict(predictor, batch)]
        for frame, depth in zip(batch, depths):
            depth = _numpy(depth).astype(np.float32)
            pose = odometry(depth, frame.intrinsics, frame.rgb) if odometry is not None else frame.pose
            poses.append(pose)
            if pose is None:
                continue
            if max_depth is not None:
                depth = np.where(depth <= max_depth, depth, 0)
            points = backproject_world(
                torch.from_numpy(depth),
                torch.from_numpy(frame.intrinsics).float(),
                torch.from_numpy(pose).float(),
                2,
            ).numpy()
            if len(points):
                lower = np.minimum(lower, points.min(0))
                upper = np.maximum(upper, points.max(0))
    return poses, ((lower, upper) if np.isfinite(lower).all() else None)


def fuse(
    sequence: FrameSequence,
    predictor: PredictFn | None = None,
    voxel_size: float = 0.04,
    truncation: float | None = None,
    max_depth: float | None = 5.0,
    fusion: FusionMode = "bayes",
    batch_size: int = 8,
    max_frames: int | None = None,
    device: str | torch.device = "cpu",
    bounds: tuple[Sequence[float], Sequence[float]] | None = None,
    threshold: float = 0.05,
    progress: bool = True,
    initial_pose: np.ndarray | None = None,
) -> FusionResult:
    """Fuse a sequence into a semantic mesh, scored when the sequence has a GT surface.

    Args:
        sequence: frames (:mod:`densemtl.fusion.sequences`).
        predictor: ``predict(images uint8 [B,H,W,3]) -> (depth [B,H,W] m, probabilities
            [B,C,H,W] or labels [B,H,W])``; ``None``: the ground-truth depth and labels (oracle).
        voxel_size, truncation, fusion: of the :class:`~densemtl.fusion.tsdf.TSDFVolume`.
        max_depth: depths beyond it are not fused (metres).
        batch_size: frames per predictor call.
        max_frames: fuse only the first frames.
        bounds: ``(lower, upper)`` world corners of the volume (default: from the frames).
        threshold: distance of the accuracy / completeness / F-score (metres).
        initial_pose: camera-to-world pose of the first frame when poses are estimated. Without
            it the map lies in the first camera's frame, not the GT surface's, and is not scored.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    names = list(sequence.class_names or getattr(predictor, "class_names", None) or [])
    colors = list(sequence.class_colors or getattr(predictor, "class_colors", None) or [])
    if not colors and names:
        colors = default_palette(len(names))
    estimated = not sequence.has_poses
    poses: list[np.ndarray | None] | None = None
    if estimated or bounds is None:
        poses, found = survey(sequence, predictor, max_depth, max_frames, batch_size, estimated, initial_pose)
        if bounds is None:
            if found is None:
                raise DenseMTLError(f"no frame of {sequence.name} has a valid depth within the depth range")
            bounds = found
    survey_seconds = time.perf_counter() - start
    volume: TSDFVolume | None = None
    surface = sequence.surface if not estimated or initial_pose is not None else None
    visibility = VisibilityAccumulator(surface.points, threshold, max_depth) if surface is not None else None
    used: list[np.ndarray | None] = []
    integrate_seconds = 0.0
    frame_scores = _FrameScores(len(names)) if predictor is not None and names else None
    total = min(len(sequence), max_frames) if max_frames else len(sequence)
    frames = _limited(sequence, max_frames)
    bar = tqdm(total=total, desc="fusing", unit="frame", disable=not progress)
    for batch in _batches(frames, batch_size):
        for frame, (depth, semantics) in zip(batch, _predict(predictor, batch)):
            pose = poses[len(used)] if poses is not None else frame.pose
            used.append(pose)
            bar.update(1)
            if pose is None:  # a frame the tracker lost: nothing to fuse
                continue
            if volume is None:
                if not names and semantics is not None and semantics.ndim == 3:
                    names = [f"class_{c}" for c in range(semantics.shape[0])]  # an ONNX file names none
                    colors = default_palette(len(names))
                volume = TSDFVolume.from_points(
                    *bounds, voxel_size, truncation, num_classes=len(names), fusion=fusion, device=device
                )
            if not names:
                semantics = None
            if frame_scores is not None and semantics is not None and frame.labels is not None:
                frame_scores.add(semantics, frame.labels)
            tic = time.perf_counter()
            volume.integrate(depth, frame.intrinsics, pose, semantics, max_depth)
            if volume.device.type == "cuda":
                torch.cuda.synchronize(volume.device)  # time the work, not its queueing
            integrate_seconds += time.perf_counter() - tic
            if visibility is not None:
                seen_depth = frame.depth if frame.depth is not None else _numpy(depth)
                visibility.add(seen_depth, frame.intrinsics, pose)
    bar.close()
    if volume is None:
        raise DenseMTLError(f"no frame of {sequence.name} has a camera pose: nothing was fused")
    mesh = extract_mesh(volume, colors)
    metrics = None
    if surface is not None:
        metrics = reconstruction_metrics(mesh.vertices, surface.points, visibility.seen.numpy(), threshold)
        if surface.labels is not None and names:
            metrics.update(
                semantic_metrics(mesh.vertices, mesh.classes, surface.points, surface.labels, len(names))
            )
            metrics["iou"] = {names[c]: v for c, v in metrics["iou"].items()}
    frame_metrics = frame_scores.compute() if frame_scores is not None else None
    if metrics is not None and frame_metrics is not None:
        metrics.update(frame_metrics)
    seconds = time.perf_counter() - start
    fused = sum(p is not None for p in used)
    timing = {
        "survey_seconds": survey_seconds,
        "integrate_seconds": integrate_seconds,
        "total_seconds": seconds,
        "integrate_fps": fused / integrate_seconds if integrate_seconds > 0 else float("nan"),
        "end_to_end_fps": len(used) / seconds if seconds > 0 else float("nan"),
    }
    return FusionResult(
        volume,
        mesh,
        metrics,
        len(used),
        seconds,
        integrate_seconds,
        estimated,
        used,
        names,
        colors,
        timing,
        frame_metrics,
    )
