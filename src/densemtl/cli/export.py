"""``densemtl export``: a trained (or freshly built) model to ONNX, OpenVINO IR or TorchScript
(:mod:`densemtl.inference.export`, :mod:`densemtl.inference.openvino`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from densemtl.cli.args import add_model_arguments, parse_size
from densemtl.errors import ConfigError
from densemtl.inference.export import (
    ONNX_OPSET,
    calibration_images,
    checkpoint_flip,
    deploy_outputs,
    export_onnx,
    export_torchscript,
    int8_path,
    load_for_export,
    onnx_parity,
    quantize_onnx_int8,
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--ckpt", help="training checkpoint (densemtl fit / demo)")
    what.add_argument("--model", help="registered model name or YAML config, built with random weights")
    add_model_arguments(parser)
    parser.add_argument("--format", choices=("onnx", "openvino", "torchscript"), required=True)
    parser.add_argument("--out", required=True, type=Path, help="output file (.onnx / .xml / .pt)")
    parser.add_argument(
        "--outputs",
        default=None,
        help="ONNX / OpenVINO: comma-separated graph outputs: labels (semseg label map, uint8), logits "
        "(semseg logits), depth, normals (default: labels and every other task for --ckpt; "
        "logits and every other task for --model)",
    )
    parser.add_argument(
        "--no-flip",
        action="store_true",
        help="ONNX / OpenVINO: leave the checkpoint's test-time flip averaging out of the graph",
    )
    parser.add_argument(
        "--size",
        default=None,
        help="HEIGHTxWIDTH of the example input (default: the checkpoint's training size, else 480x640)",
    )
    parser.add_argument("--dynamic", action="store_true", help="ONNX: free batch / height / width axes")
    parser.add_argument(
        "--no-check", action="store_true", help="ONNX / OpenVINO: skip the parity check against PyTorch"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="ONNX / OpenVINO: also write <output stem>_int8.onnx (ONNX Runtime's quantiser) or "
        "<output stem>_int8.xml (NNCF), statically quantised on --calibration_images",
    )
    parser.add_argument(
        "--calibration-images",
        default=None,
        help="--int8: an image or folder of images representative of the deployment data",
    )
    parser.add_argument(
        "--calibration-count", type=int, default=32, help="--int8: images used for calibration (default 32)"
    )
    return parser


def _diffs(diffs: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())


def run(args: argparse.Namespace) -> int:
    model, train_size = load_for_export(args.ckpt, args.model, args.num_classes, args.tasks)
    size = parse_size(args.size) if args.size else (train_size or (480, 640))
    if args.int8:
        if args.format == "torchscript" or args.dynamic:
            raise ConfigError("--int8 needs --format onnx or openvino with a fixed --size (no --dynamic)")
        if not args.calibration_images:
            raise ConfigError("--int8 needs --calibration-images (a folder of representative images)")
    if args.format == "torchscript":
        export_torchscript(model, args.out, size)
        print(
            f"wrote {args.out} (TorchScript, traced at {size[0]}x{size[1]} and frozen; outputs "
            f"{', '.join(model.tasks)})"
        )
        return 0
    # a checkpoint is exported for deployment (label map); a fresh --model keeps every task's raw output
    default = None if args.ckpt else ",".join("logits" if t == "semseg" else t for t in model.tasks)
    outputs = deploy_outputs(list(model.tasks), args.outputs or default)
    flip = checkpoint_flip(args.ckpt) and not args.no_flip
    graph = {"outputs": outputs, "flip": flip}
    if args.format == "openvino":
        from densemtl.inference.openvino import export_openvino

        names = export_openvino(model, args.out, size, dynamic=args.dynamic, **graph)
        kind, runtime = "OpenVINO IR", "OpenVINO"
    else:
        names = export_onnx(model, args.out, size, dynamic=args.dynamic, **graph)
        kind, runtime = f"ONNX opset {ONNX_OPSET}", "ONNX Runtime"
    batch, height, width = ("B", "H", "W") if args.dynamic else (1, size[0], size[1])
    print(
        f"wrote {args.out} ({kind}, input image [{batch},3,{height},{width}], outputs {', '.join(names)}; "
        f"test-time flip {'inside the graph' if flip else 'off'})"
    )
    if not args.no_check:
        print(
            f"{runtime} vs PyTorch ({_legend(names)}): " + _diffs(_parity(args, model, args.out, size, graph))
        )
    if args.int8:
        images = calibration_images(args.calibration_images, size, args.calibration_count)
        if args.format == "openvino":
            from densemtl.inference.openvino import int8_ir_path, quantize_openvino_int8

            path = quantize_openvino_int8(args.out, int8_ir_path(args.out), images)
        else:
            path = quantize_onnx_int8(args.out, int8_path(args.out), images)
        print(
            f"wrote {path} (int8, calibrated on {len(images)} image(s)); vs fp32 PyTorch on a random "
            "image (expected to be large; score it on a test set): "
            + _diffs(_parity(args, model, path, size, graph))
        )
    return 0


def _legend(names: list[str]) -> str:
    return "max abs diff" + ("; labels: fraction of pixels that differ" if "labels" in names else "")


def _parity(args: argparse.Namespace, model: object, path: Path, size: tuple[int, int], graph: dict) -> dict:
    run = None
    if args.format == "openvino":
        from densemtl.inference.openvino import compile_model

        compiled = compile_model(path)
        run = lambda _names, feed: list(compiled(feed).values())  # noqa: E731
    return onnx_parity(model, path, size, run=run, **graph)
