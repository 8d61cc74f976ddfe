"""``densemtl predict``: a checkpoint + an image, a folder or a video (any size) -> coloured and raw outputs.

For each input ``<name>`` it writes, under ``--output``:
``semantic/<name>.png`` (class ids), ``semantic_color/<name>.png``, ``depth/<name>.png``
(uint16 mm) and ``depth/<name>.npy`` (float metres), ``depth_color/<name>.png``,
``normals_color/<name>.png`` (3-task models) and ``panel/<name>.png`` (side by side).
A video is streamed frame by frame; frame ``i`` of ``clip.mp4`` is named ``clip_<i:06d>``.
At the end it prints model and end-to-end frames/s and writes them to ``timing.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.errors import DataError, DenseMTLError
from densemtl.inference import video


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ckpt", required=True, help="checkpoint written by `densemtl fit` / `densemtl demo`"
    )
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
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--onnx",
        default=None,
        metavar="FILE",
        help="run this exported ONNX file (densemtl export, fp32 or --int8) with ONNX Runtime on CPU "
        "instead of the checkpoint's network; --ckpt still gives classes and palette",
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
        help="pinhole intrinsics at the input image size for --pointcloud "
        "(default fx = fy = width, principal point at the centre)",
    )
    parser.add_argument(
        "--stride",
        type=_positive_int,
        default=1,
        metavar="K",
        help="use every K-th video frame (or image of a folder)",
    )
    parser.add_argument(
        "--max-frames",
        type=_positive_int,
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """``"480x640"`` -> (480, 640)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DenseMTLError(f"size must look like 480x640 (height x width), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise DenseMTLError(f"size must be positive, got {text!r}")
    return height, width


def list_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in io.IMAGE_SUFFIXES)
        if not images:
            raise DataError(path, "folder holds no images (.png, .jpg, ...)")
        return images
    raise DataError(path, "input not found")


def prepare_image(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 RGB ``[H, W, 3]`` -> the model input ``[1, 3, *size]`` in [0, 1] (bilinear, antialiased down)."""
    height = rgb.shape[0]
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0)[None]
    if tuple(rgb.shape[:2]) != tuple(size):
        image = F.interpolate(
            image, size=size, mode="bilinear", align_corners=False, antialias=height > size[0]
        )
    return image


class OnnxTasks:
    """An exported ONNX file (``densemtl export``) behind the ``predict_tasks`` interface of the module."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from densemtl.inference.export import onnx_session

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "ONNX file not found")
        try:
            self.session = onnx_session(self.path, threads)
        except Exception as e:  # onnxruntime raises its own exception types
            raise DataError(
                self.path, f"not a loadable ONNX model ({' '.join(str(e).split())[:160]})"
            ) from None
        self.tasks = [o.name for o in self.session.get_outputs()]
        shape = self.session.get_inputs()[0].shape
        self.fixed_size = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else None

    def to(self, device: str | torch.device) -> OnnxTasks:
        if torch.device(device).type != "cpu":
            raise DenseMTLError("--onnx runs on ONNX Runtime's CPU provider: use --device cpu")
        return self

    def eval(self) -> OnnxTasks:
        return self

    def predict_tasks(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.session.run(None, {"image": image.cpu().numpy()})
        return {task: torch.from_numpy(out) for task, out in zip(self.tasks, outputs)}


class Predictor:
    """Runs a trained model on uint8 RGB images of any size, returning numpy outputs at that size."""

    def __init__(self, module: Any, size: tuple[int, int], device: str = "cpu") -> None:
        self.module = module.to(device).eval()
        self.size = size
        self.device = device

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        height, width = rgb.shape[:2]
        image = prepare_image(rgb, self.size).to(self.device)
        outputs = self.module.predict_tasks(image)
        result: dict[str, np.ndarray] = {}
        for task, out in outputs.items():
            out = F.interpolate(out.float(), size=(height, width), mode="bilinear", align_corners=False)
            if task == "semseg":
                result[task] = (
                    out[0].argmax(0).cpu().numpy().astype(np.uint8 if out.shape[1] <= 255 else np.uint16)
                )
            elif task == "depth":
                result[task] = out[0, 0].cpu().numpy().astype(np.float32)
            else:
                result[task] = F.normalize(out, dim=1)[0].permute(1, 2, 0).cpu().numpy()
        return result


def training_size(checkpoint_hparams: dict[str, Any]) -> tuple[int, int]:
    size = checkpoint_hparams.get("image_size")
    return (int(size[0]), int(size[1])) if size else (240, 320)


def iterate_inputs(
    path: Path, stride: int = 1, max_frames: int | None = None
) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """``(name, uint8 RGB)`` pairs from an image, a folder or a video (streamed), and their count if known."""
    if path.is_file() and video.is_video(path):
        info = video.probe(path)  # fail on a bad file before any output is written
        total = -(-info.frames // stride) if info.frames else None
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        frames = video.iter_frames(path, stride, max_frames)
        return ((f"{path.stem}_{index:06d}", rgb) for index, rgb in frames), total
    paths = list_images(path)[::stride][:max_frames]
    return ((p.stem, io.read_image(p)) for p in paths), len(paths)


def run(args: argparse.Namespace) -> int:
    from densemtl.data.datasets.folder import default_palette
    from densemtl.training.checkpoint import load_module, read_checkpoint

    ckpt = Path(args.ckpt)
    module = load_module(ckpt)
    data_hparams = read_checkpoint(ckpt).get("datamodule_hyper_parameters", {})
    size = parse_size(args.size) if args.size else training_size(data_hparams)
    palette = module.hparams.class_colors or default_palette(module.hparams.num_classes)
    source = Path(args.input)
    is_video = source.is_file() and video.is_video(source)
    stride = getattr(args, "stride", 1)
    output_video = getattr(args, "output_video", None)
    if output_video and not is_video:
        raise DenseMTLError("--output-video needs a video --input")
    runner: Any = module
    if getattr(args, "onnx", None):
        runner = OnnxTasks(args.onnx)
        if set(runner.tasks) != set(module.tasks):
            raise DataError(
                Path(args.onnx),
                f"outputs {runner.tasks} do not match the checkpoint's tasks {list(module.tasks)}",
            )
        if runner.fixed_size is not None:
            if args.size and runner.fixed_size != size:
                raise DenseMTLError(
                    f"--size {args.size} differs from the ONNX file's fixed input size "
                    f"{runner.fixed_size[0]}x{runner.fixed_size[1]}"
                )
            size = runner.fixed_size
    inputs, total = iterate_inputs(source, stride, getattr(args, "max_frames", None))
    out = Path(args.output)
    predictor = Predictor(runner, size, args.device)
    writer = None
    if output_video:
        fps = video.probe(source).fps or 30  # some containers store no frame rate: assume 30
        writer = video.VideoWriter(output_video, fps / stride)
    start = time.perf_counter()
    try:
        count, model_seconds = _predict_all(args, out, palette, predictor, inputs, total, writer)
    finally:
        if writer is not None:  # also on an error: a playable video of the frames done so far
            writer.close()
    elapsed = time.perf_counter() - start
    timing = {
        "input": str(source),
        "frames": count,
        "device": args.device,
        "inference_size": list(size),
        "model_seconds": round(model_seconds, 6),
        "total_seconds": round(elapsed, 6),
        "model_fps": round(count / model_seconds, 3) if model_seconds > 0 else None,
        "end_to_end_fps": round(count / elapsed, 3) if elapsed > 0 else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    print(
        f"wrote predictions for {count} {'frame(s)' if is_video else 'image(s)'} to {out}: "
        f"model {timing['model_fps']} frames/s, end-to-end {timing['end_to_end_fps']} frames/s "
        "(incl. decode and writes)" + (f"; panels video {output_video}" if output_video else "")
    )
    return 0


def _predict_all(
    args: argparse.Namespace,
    out: Path,
    palette: Any,
    predictor: Predictor,
    inputs: Iterator[tuple[str, np.ndarray]],
    total: int | None,
    writer: video.VideoWriter | None,
) -> tuple[int, float]:
    """Predict and write every input; returns (frames, seconds spent inside the model)."""
    from rich.progress import track

    from densemtl.inference.viz import colorize_depth, colorize_normals, colorize_semseg, prediction_panel

    count, model_seconds = 0, 0.0
    for name, rgb in track(inputs, total=total, description="predicting"):
        # the Predictor returns numpy arrays, so this also waits for queued GPU work
        tic = time.perf_counter()
        pred = predictor(rgb)
        model_seconds += time.perf_counter() - tic
        count += 1
        if "semseg" in pred:
            io.write_label_png(out / "semantic" / f"{name}.png", pred["semseg"])
            io.write_image(out / "semantic_color" / f"{name}.png", colorize_semseg(pred["semseg"], palette))
        if "depth" in pred:
            io.write_depth_png(out / "depth" / f"{name}.png", np.clip(pred["depth"], 0, 65.535))
            np.save(out / "depth" / f"{name}.npy", pred["depth"])
            io.write_image(out / "depth_color" / f"{name}.png", colorize_depth(pred["depth"]))
        if "normals" in pred:
            io.write_image(out / "normals_color" / f"{name}.png", colorize_normals(pred["normals"]))
        if getattr(args, "pointcloud", False) and "depth" in pred:
            from densemtl.inference.pointcloud import semantic_pointcloud, write_ply

            h, w = rgb.shape[:2]
            k = (
                [float(v) for v in args.intrinsics.split(",")]
                if args.intrinsics
                else [float(w), float(w), (w - 1) / 2, (h - 1) / 2]
            )
            if len(k) != 4:
                raise DenseMTLError(f"--intrinsics must be FX,FY,CX,CY, got {args.intrinsics!r}")
            points, colors, labels = semantic_pointcloud(
                pred["depth"], k, pred.get("semseg"), palette, rgb=rgb
            )
            write_ply(out / "pointcloud" / f"{name}.ply", points, colors, labels)
        if not args.no_panel or writer is not None:
            panel = prediction_panel(rgb.astype(np.float32) / 255.0, palette, pred)
            if not args.no_panel:
                io.write_image(out / "panel" / f"{name}.png", panel)
            if writer is not None:
                writer.write(panel)
    return count, model_seconds
