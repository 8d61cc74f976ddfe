"""``densemtl fuse``: fuse a sequence's depth + semantics (predicted or ground truth) into a 3D map.

Writes, under ``--output``: ``mesh.ply`` (binary PLY, vertices coloured by class with an int
``class`` property), ``metrics.json`` (when the sequence has a GT surface: accuracy, completeness,
F-score, semantic accuracy, mIoU), ``fusion.json`` (settings, frames, timings, whether poses were
estimated), ``trajectory.txt`` (the camera poses used, TUM trajectory format) and ``report.png``
(the map beside the GT surface). Prints frames/s. See docs/fusion.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from densemtl.cli.args import add_threads_argument, parse_intrinsics, parse_size, positive_int
from densemtl.errors import ConfigError


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        metavar="SEQ",
        help="a sequence: densemtl folder format with poses/ (densemtl data render --trajectory), "
        "a TUM RGB-D folder, an exported ScanNet scene or a video file",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="CKPT", help="predict depth + semantics with this checkpoint")
    source.add_argument(
        "--onnx", metavar="FILE", help="predict with this ONNX file (densemtl export; ONNX Runtime, CPU)"
    )
    source.add_argument(
        "--use-ground-truth",
        action="store_true",
        help="fuse the sequence's own depth and labels (the oracle: an upper bound for the network)",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", "folder", "tum", "scannet", "video"),
        help="sequence format (default: %(default)s, detected from the files)",
    )
    parser.add_argument(
        "--voxel-size",
        type=_positive_float,
        default=0.04,
        metavar="M",
        help="voxel edge in metres (default: %(default)s)",
    )
    parser.add_argument(
        "--truncation",
        type=_positive_float,
        default=None,
        metavar="M",
        help="TSDF truncation distance in metres (default: 4 x --voxel_size)",
    )
    parser.add_argument(
        "--max-depth",
        type=_positive_float,
        default=5.0,
        metavar="M",
        help="ignore depths beyond this many metres (default: %(default)s)",
    )
    parser.add_argument(
        "--fusion",
        default="bayes",
        choices=("bayes", "counts"),
        help="per-voxel class evidence: recursive Bayesian update of the softmax probabilities "
        "(SemanticFusion) or hard-label counts (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="frames per network call (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="fuse only the first N frames (default: all)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the network and the volume run: cpu, cuda, cuda:1 (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        default=None,
        metavar="HxW",
        help="network input size (default: the checkpoint's training size; an ONNX file's fixed size)",
    )
    parser.add_argument(
        "--intrinsics",
        default=None,
        metavar="FX,FY,CX,CY",
        help="pinhole intrinsics at the stored image size for TUM / video input "
        "(default: TUM's published ones; for a video fx = fy = width, centred)",
    )
    parser.add_argument(
        "--poses",
        default=None,
        metavar="FILE",
        help="video input: camera-to-world poses, TUM trajectory format with frame times in seconds "
        "(default: none, estimated by ICP on the predicted depth)",
    )
    add_threads_argument(parser)
    parser.add_argument("--no-report", action="store_true", help="skip report.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_predictor(args: argparse.Namespace) -> Any:
    """The predictor the options ask for (None: the oracle)."""
    from densemtl.fusion.predictors import CheckpointPredictor, OnnxPredictor

    if args.ckpt:
        return CheckpointPredictor(args.ckpt, args.device, (parse_size(args.size) if args.size else None))
    if args.onnx:
        return OnnxPredictor(args.onnx, (parse_size(args.size) if args.size else None))
    return None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_trajectory(path: Path, poses: list[np.ndarray | None]) -> None:
    """``index tx ty tz qx qy qz qw`` per fused frame (TUM trajectory format, frame index as time)."""
    from scipy.spatial.transform import Rotation

    lines = ["# frame tx ty tz qx qy qz qw (camera-to-world)"]
    for index, pose in enumerate(poses):
        if pose is not None:
            q = Rotation.from_matrix(pose[:3, :3]).as_quat()
            lines.append(" ".join([str(index), *(f"{v:.6f}" for v in (*pose[:3, 3], *q))]))
    path.write_text("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    import torch

    from densemtl.fusion.mesh import write_mesh_ply
    from densemtl.fusion.pipeline import fuse
    from densemtl.fusion.report import render_comparison
    from densemtl.fusion.sequences import open_sequence

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    options: dict[str, Any] = {"intrinsics": parse_intrinsics(args.intrinsics) if args.intrinsics else None}
    if args.poses:
        options["poses"] = args.poses
    sequence = open_sequence(args.input, args.format, **options)
    predictor = build_predictor(args)
    result = fuse(
        sequence,
        predictor,
        voxel_size=args.voxel_size,
        truncation=args.truncation,
        max_depth=args.max_depth,
        fusion=args.fusion,
        batch_size=args.batch_size,
        max_frames=args.max_frames,
        device=args.device,
        progress=not args.no_progress,
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_mesh_ply(out / "mesh.ply", result.mesh)
    write_trajectory(out / "trajectory.txt", result.poses)
    summary = {
        "input": str(args.input),
        "source": "checkpoint" if args.ckpt else "onnx" if args.onnx else "ground truth",
        "frames": result.frames,
        "poses_estimated": result.poses_estimated,
        "voxel_size": args.voxel_size,
        "truncation": result.volume.truncation,
        "max_depth": args.max_depth,
        "fusion": args.fusion,
        "grid": list(result.volume.shape),
        "vertices": len(result.mesh.vertices),
        "faces": len(result.mesh.faces),
        "classes": result.class_names,
        "device": args.device,
        **result.timing,
    }
    (out / "fusion.json").write_text(json.dumps(_json_ready(summary), indent=2) + "\n")
    if result.metrics is not None:
        (out / "metrics.json").write_text(json.dumps(_json_ready(result.metrics), indent=2) + "\n")
    if not args.no_report:
        render_comparison(out / "report.png", result.mesh, sequence.surface, result.class_colors)
    estimated = " (poses estimated by ICP)" if result.poses_estimated else ""
    scores = ""
    if result.metrics is not None:
        m = result.metrics
        scores = f"; F-score@{m['threshold'] * 100:.0f}cm {m['fscore']:.4f}"
        if "semantic_accuracy" in m:
            scores += f", semantic accuracy {m['semantic_accuracy']:.4f}, mIoU {m['miou']:.4f}"
    print(
        f"fused {result.frames} frames{estimated} into {out / 'mesh.ply'} ({len(result.mesh.vertices)} vertices): "
        f"{result.timing['end_to_end_fps']:.2f} frames/s end to end, "
        f"{result.timing['integrate_fps']:.2f} frames/s integration{scores}"
    )
    return 0
