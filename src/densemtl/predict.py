"""``densemtl predict``: a checkpoint + an image or folder (any size) -> coloured and raw outputs.

For each input ``<name>`` it writes, under ``--output``:
``semantic/<name>.png`` (class ids), ``semantic_color/<name>.png``, ``depth/<name>.png``
(uint16 mm) and ``depth/<name>.npy`` (float metres), ``depth_color/<name>.png``,
``normals_color/<name>.png`` (3-task models) and ``panel/<name>.png`` (side by side).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.errors import DataError, DenseMTLError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ckpt", required=True, help="checkpoint written by `densemtl fit` / `densemtl demo`"
    )
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--size",
        default=None,
        help="inference size HxW (default: the training size stored in the checkpoint)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
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


class Predictor:
    """Runs a trained model on uint8 RGB images of any size, returning numpy outputs at that size."""

    def __init__(self, module: Any, size: tuple[int, int], device: str = "cpu") -> None:
        self.module = module.to(device).eval()
        self.size = size
        self.device = device

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        height, width = rgb.shape[:2]
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)[None].to(self.device)
        if (height, width) != self.size:
            image = F.interpolate(
                image, size=self.size, mode="bilinear", align_corners=False, antialias=height > self.size[0]
            )
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


def iterate_predictions(
    predictor: Predictor, paths: list[Path]
) -> Iterator[tuple[Path, np.ndarray, dict[str, np.ndarray]]]:
    for path in paths:
        rgb = io.read_image(path)
        yield path, rgb, predictor(rgb)


def run(args: argparse.Namespace) -> int:
    from rich.progress import track

    from densemtl.checkpoint import load_module, read_checkpoint
    from densemtl.data.folder import default_palette
    from densemtl.viz import colorize_depth, colorize_normals, colorize_semseg, prediction_panel

    ckpt = Path(args.ckpt)
    module = load_module(ckpt)
    data_hparams = read_checkpoint(ckpt).get("datamodule_hyper_parameters", {})
    size = parse_size(args.size) if args.size else training_size(data_hparams)
    palette = module.hparams.class_colors or default_palette(module.hparams.num_classes)
    paths = list_images(Path(args.input))
    out = Path(args.output)
    predictor = Predictor(module, size, args.device)
    start = time.perf_counter()
    for path, rgb, pred in track(
        iterate_predictions(predictor, paths), total=len(paths), description="predicting"
    ):
        name = path.stem
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
            from densemtl.pointcloud import semantic_pointcloud, write_ply

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
        if not args.no_panel:
            io.write_image(
                out / "panel" / f"{name}.png", prediction_panel(rgb.astype(np.float32) / 255.0, palette, pred)
            )
    elapsed = time.perf_counter() - start
    print(
        f"wrote predictions for {len(paths)} image(s) to {out} ({len(paths) / elapsed:.2f} images/s incl. I/O)"
    )
    return 0
