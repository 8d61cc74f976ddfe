"""``densemtl predict``: a checkpoint + an image, a folder or a video (any size) -> coloured and raw outputs.

The output layout is described in :mod:`densemtl.inference.predictor`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densemtl.cli.args import (
    add_checkpoint_argument,
    add_device_argument,
    parse_intrinsics,
    parse_size,
    positive_int,
)
from densemtl.inference import video
from densemtl.inference.predictor import predict_to_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser, required=True)
    parser.add_argument(
        "--input",
        required=True,
        help="an image file, a folder of images or a video file (.mp4, .avi, .mkv, .mov, .webm, ...)",
    )
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--size",
        default=None,
        help="inference size HxW (default: the training size stored in the checkpoint)",
    )
    add_device_argument(parser, help="cpu or cuda")
    parser.add_argument(
        "--onnx",
        default=None,
        metavar="FILE",
        help="run this exported file (densemtl export, fp32 or --int8: .onnx, or an OpenVINO .xml IR) "
        "on CPU instead of the checkpoint's network; --ckpt_path still gives classes and palette",
    )
    parser.add_argument(
        "--backend",
        choices=("onnxruntime", "openvino"),
        default=None,
        help="runtime for --onnx FILE (default: openvino for an .xml IR, else onnxruntime; "
        "openvino also runs .onnx files)",
    )
    parser.add_argument(
        "--precision",
        choices=("f32", "bf16"),
        default="f32",
        help="OpenVINO: precision of the float layers (bf16: the CPU's bf16 units, faster, "
        "not bit-exact; refused on a CPU without them)",
    )
    parser.add_argument("--no-panel", action="store_true", help="skip the side-by-side panels")
    parser.add_argument(
        "--pointcloud",
        action="store_true",
        help="also write pointcloud/<name>.ply: depth back-projected, coloured by class",
    )
    parser.add_argument(
        "--intrinsics",
        default=None,
        metavar="FX,FY,CX,CY",
        help="pinhole intrinsics at the input image size for --pointcloud (default: the training "
        "data's intrinsics.json scaled to each image, else fx = fy = width, centred principal point)",
    )
    parser.add_argument(
        "--stride",
        type=positive_int,
        default=1,
        metavar="K",
        help="use every K-th video frame (or image of a folder)",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N frames / images (after --stride)",
    )
    parser.add_argument(
        "--output-video",
        default=None,
        metavar="FILE",
        help="video input only: also encode the side-by-side panels into FILE (.mp4, .mkv, ...) "
        "at the source frame rate / stride",
    )


def run(args: argparse.Namespace) -> int:
    timing = predict_to_folder(
        args.ckpt,
        args.input,
        args.output,
        size=parse_size(args.size) if args.size else None,
        device=args.device,
        onnx=args.onnx,
        panels=not args.no_panel,
        pointcloud=args.pointcloud,
        intrinsics=parse_intrinsics(args.intrinsics) if args.intrinsics else None,
        stride=args.stride,
        max_frames=args.max_frames,
        output_video=args.output_video,
        backend=args.backend,
        precision=args.precision,
    )
    is_video = video.is_video(args.input)
    print(
        f"wrote predictions for {timing['frames']} {'frame(s)' if is_video else 'image(s)'} to {Path(args.output)}: "
        f"model {timing['model_fps']} frames/s, end-to-end {timing['end_to_end_fps']} frames/s "
        "(incl. decode and writes)" + (f"; panels video {args.output_video}" if args.output_video else "")
    )
    if args.pointcloud:
        print(f"point clouds: intrinsics from {timing['intrinsics']}")
    return 0
