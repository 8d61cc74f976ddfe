"""Run a trained model on images, a folder or a video (any size) and write coloured and raw outputs.

A checkpoint (``densemtl fit`` / ``densemtl demo``) or an exported file (``densemtl export``, fp32
or int8: ONNX run by ONNX Runtime, or an OpenVINO IR / ONNX file run by OpenVINO, on CPU) predicts
numpy arrays at the input's own size (a ``labels`` output is resized to it by nearest neighbour). For each
input ``<name>`` :func:`predict_to_folder` writes, under the output folder:
``semantic/<name>.png`` (class ids), ``semantic_color/<name>.png``, ``depth/<name>.png``
(uint16 mm) and ``depth/<name>.npy`` (float metres), ``depth_color/<name>.png``,
``normals_color/<name>.png`` (3-task models) and ``panel/<name>.png`` (side by side).
A video is streamed frame by frame; frame ``i`` of ``clip.mp4`` is named ``clip_<i:06d>``.
Model and end-to-end frames/s go to ``timing.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.errors import DataError, DenseMTLError
from densemtl.inference import video

__all__ = [
    "OnnxTasks",
    "Predictor",
    "exported_runner",
    "iterate_inputs",
    "list_images",
    "onnx_session",
    "output_tasks",
    "predict_to_folder",
    "prepare_image",
    "training_size",
    "write_prediction",
]


def list_images(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the sorted images of the folder ``path``."""
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


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def output_tasks(outputs: Sequence[str]) -> list[str]:
    """The task of each output of an exported graph (``labels`` is the semseg label map)."""
    return ["semseg" if name == "labels" else name for name in outputs]


class ExportedTasks:
    """An exported graph behind the module's ``predict_tasks`` / ``to`` / ``eval`` interface, on a
    CPU-only runtime (subclasses set :attr:`cpu_only` and implement ``predict_tasks``)."""

    #: the one-line error for ``--device`` other than cpu
    cpu_only = "this runtime runs on the CPU: use --device cpu"

    def to(self, device: str | torch.device) -> ExportedTasks:
        if torch.device(device).type != "cpu":
            raise DenseMTLError(self.cpu_only)
        return self

    def eval(self) -> ExportedTasks:
        return self


class OnnxTasks(ExportedTasks):
    """An exported ONNX file (``densemtl export``) behind the ``predict_tasks`` interface of the module."""

    cpu_only = "--onnx runs on ONNX Runtime's CPU provider: use --device cpu"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "ONNX file not found")
        try:
            self.session = onnx_session(self.path, threads)
        except Exception as e:  # onnxruntime raises its own exception types
            raise DataError(
                self.path, f"not a loadable ONNX model ({' '.join(str(e).split())[:160]})"
            ) from None
        from densemtl.inference.export import read_onnx_metadata

        self.metadata = read_onnx_metadata(self.path)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.tasks = output_tasks(self.outputs)
        shape = self.session.get_inputs()[0].shape
        self.fixed_size = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else None

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
            if task == "semseg" and not out.is_floating_point():  # a label map (densemtl export)
                labels = out if out.shape[-2:] == (height, width) else _nearest(out, (height, width))
                result[task] = (
                    labels[0, 0].cpu().numpy().astype(np.uint8 if labels.dtype == torch.uint8 else np.uint16)
                )
                continue
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


def _nearest(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(labels.float(), size=size, mode="nearest-exact").to(labels.dtype)


def training_size(checkpoint_hparams: dict[str, Any]) -> tuple[int, int]:
    """The ``image_size`` a checkpoint's data module trained at (240x320 when it stored none)."""
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


def write_prediction(
    out: Path,
    name: str,
    rgb: np.ndarray,
    pred: dict[str, np.ndarray],
    palette: Any,
    panel: bool = True,
    pointcloud: bool = False,
    intrinsics: Sequence[float] | None = None,
    panel_options: dict[str, Any] | None = None,
) -> np.ndarray | None:
    """Write one input's outputs under ``out`` (layout in the module docstring); returns the panel if made.

    ``intrinsics``: for ``pointcloud/<name>.ply``, see :func:`intrinsics_at`; ``panel_options``:
    ``class_names`` and ``ranges`` of :func:`~densemtl.inference.viz.prediction_panel`.
    """
    from densemtl.inference.viz import colorize_depth, colorize_normals, colorize_semseg, prediction_panel

    if "semseg" in pred:
        io.write_label_png(out / "semantic" / f"{name}.png", pred["semseg"])
        io.write_image(out / "semantic_color" / f"{name}.png", colorize_semseg(pred["semseg"], palette))
    if "depth" in pred:
        io.write_depth_png(out / "depth" / f"{name}.png", np.clip(pred["depth"], 0, 65.535))
        np.save(out / "depth" / f"{name}.npy", pred["depth"])
        io.write_image(out / "depth_color" / f"{name}.png", colorize_depth(pred["depth"]))
    if "normals" in pred:
        io.write_image(out / "normals_color" / f"{name}.png", colorize_normals(pred["normals"]))
    if pointcloud and "depth" in pred:
        from densemtl.inference.pointcloud import semantic_pointcloud, write_ply

        k = intrinsics_at(intrinsics, *rgb.shape[:2])
        points, colors, labels = semantic_pointcloud(pred["depth"], k, pred.get("semseg"), palette, rgb=rgb)
        write_ply(out / "pointcloud" / f"{name}.ply", points, colors, labels)
    if not panel:
        return None
    image = prediction_panel(rgb.astype(np.float32) / 255.0, palette, pred, **(panel_options or {}))
    io.write_image(out / "panel" / f"{name}.png", image)
    return image


def _panel_ranges(data_hparams: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The training dataset's fixed panel colour ranges (none when the checkpoint names no known dataset)."""
    from densemtl.data.datamodule import panel_ranges

    try:
        return panel_ranges(data_hparams.get("dataset", ""), data_hparams.get("dataset_options"))
    except DenseMTLError:  # a dataset this install does not register
        return {}


def intrinsics_at(intrinsics: Any, height: int, width: int) -> list[float]:
    """Pinhole ``fx, fy, cx, cy`` for an image of ``height x width``: four numbers are taken as
    they are; a :func:`training_intrinsics` dict is scaled from its image size; None gives the
    fallback fx = fy = width with the principal point at the centre."""
    if intrinsics is None:
        return [float(width), float(width), (width - 1) / 2, (height - 1) / 2]
    if isinstance(intrinsics, dict):
        sx, sy = width / intrinsics["width"], height / intrinsics["height"]
        return [
            intrinsics["fx"] * sx,
            intrinsics["fy"] * sy,
            (intrinsics["cx"] + 0.5) * sx - 0.5,  # pixel centres: u' + 0.5 = s (u + 0.5)
            (intrinsics["cy"] + 0.5) * sy - 0.5,
        ]
    return [float(v) for v in intrinsics]


def training_intrinsics(data_hparams: dict[str, Any]) -> dict[str, Any] | None:
    """The ``intrinsics.json`` of a checkpoint's folder-format training data (``docs/data.md``)
    with the size of its images, or None when the checkpoint's data root is not at hand."""
    from PIL import Image

    root = data_hparams.get("root")
    if not root or not (Path(root) / "intrinsics.json").is_file():
        return None
    try:
        values = json.loads((Path(root) / "intrinsics.json").read_text())
        first = next(
            p for p in sorted((Path(root) / "rgb").iterdir()) if p.suffix.lower() in (".png", ".jpg")
        )
        with Image.open(first) as image:
            width, height = image.size
        return {
            **{k: float(values[k]) for k in ("fx", "fy", "cx", "cy")},
            "width": width,
            "height": height,
            "source": str(Path(root) / "intrinsics.json"),
        }
    except (OSError, ValueError, KeyError, StopIteration):
        return None


def predict_to_folder(
    ckpt: str | Path,
    source: str | Path,
    output: str | Path,
    size: tuple[int, int] | None = None,
    device: str = "cpu",
    onnx: str | Path | None = None,
    panels: bool = True,
    pointcloud: bool = False,
    intrinsics: Sequence[float] | dict[str, Any] | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    output_video: str | Path | None = None,
    backend: str | None = None,
    precision: str = "f32",
) -> dict[str, Any]:
    """Predict every input of ``source`` and write the outputs under ``output``; returns the timing.

    ``ckpt`` gives the network, classes and palette; with ``onnx`` the exported file runs instead
    (its tasks must match the checkpoint's; a fixed-size graph sets the inference size), by
    ``backend`` ``onnxruntime`` or ``openvino`` (default: ``openvino`` for an ``.xml`` IR), whose
    float layers run in ``precision`` (``f32``, or ``bf16`` on a CPU with bf16 units).
    ``size``: inference size (default: the checkpoint's training size). ``output_video``: also encode
    the side-by-side panels of a video input at its frame rate / ``stride``.
    """
    from densemtl.data.datasets.folder import default_palette
    from densemtl.training.checkpoint import load_module, read_checkpoint

    ckpt, source, out = Path(ckpt), Path(source), Path(output)
    module = load_module(ckpt)
    data_hparams = read_checkpoint(ckpt).get("datamodule_hyper_parameters", {})
    infer_size = size or training_size(data_hparams)
    palette = module.hparams.class_colors or default_palette(module.hparams.num_classes)
    panel_options = {
        "class_names": module.hparams.get("class_names"),
        "ranges": _panel_ranges(data_hparams),
        "legend_classes": "all",  # one panel size for every frame of a video, and across images
    }
    if output_video and not (source.is_file() and video.is_video(source)):
        raise DenseMTLError("--output-video needs a video --input")
    runner: Any = module
    if onnx:
        runner = exported_runner(onnx, backend, precision)
        _check_flip(runner, bool(module.hparams.get("test_time_flip", False)))
        if set(runner.tasks) != set(module.tasks):
            raise DataError(
                Path(onnx), f"outputs {runner.tasks} do not match the checkpoint's tasks {list(module.tasks)}"
            )
        if runner.fixed_size is not None:
            if size and runner.fixed_size != size:
                raise DenseMTLError(
                    f"--size {size[0]}x{size[1]} differs from the ONNX file's fixed input size "
                    f"{runner.fixed_size[0]}x{runner.fixed_size[1]}"
                )
            infer_size = runner.fixed_size
    elif backend not in (None, "torch") or precision != "f32":
        flag = f"--backend {backend}" if backend not in (None, "torch") else f"--precision {precision}"
        raise DenseMTLError(f"{flag} runs an exported file: give it with --onnx FILE")
    intrinsics_source = "--intrinsics" if intrinsics else None
    if pointcloud and not intrinsics:
        intrinsics = training_intrinsics(data_hparams)  # type: ignore[assignment]
        intrinsics_source = (
            f"the training data's {intrinsics['source']}, scaled from "  # type: ignore[index]
            f"{intrinsics['width']}x{intrinsics['height']}"  # type: ignore[index]
            if intrinsics
            else "fallback fx = fy = image width (no intrinsics known: pass --intrinsics)"
        )
    inputs, total = iterate_inputs(source, stride, max_frames)
    predictor = Predictor(runner, infer_size, device)
    writer = None
    if output_video:
        fps = video.probe(source).fps or 30  # some containers store no frame rate: assume 30
        writer = video.VideoWriter(output_video, fps / stride)
    start = time.perf_counter()
    try:
        count, model_seconds = _predict_all(
            out, palette, predictor, inputs, total, writer, panels, pointcloud, intrinsics, panel_options
        )
    finally:
        if writer is not None:  # also on an error: a playable video of the frames done so far
            writer.close()
    elapsed = time.perf_counter() - start
    timing = {
        "input": str(source),
        "frames": count,
        "device": device,
        "inference_size": list(infer_size),
        "model_seconds": round(model_seconds, 6),
        "total_seconds": round(elapsed, 6),
        "model_fps": round(count / model_seconds, 3) if model_seconds > 0 else None,
        "end_to_end_fps": round(count / elapsed, 3) if elapsed > 0 else None,
    }
    if pointcloud:
        timing["intrinsics"] = intrinsics_source
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def exported_runner(path: str | Path, backend: str | None = None, precision: str = "f32") -> Any:
    """:class:`OnnxTasks` or :class:`~densemtl.inference.openvino.OpenVINOTasks` for an exported file;
    ``precision`` (``f32`` / ``bf16``) of OpenVINO's float layers."""
    kind = backend or ("openvino" if Path(path).suffix == ".xml" else "onnxruntime")
    if kind == "openvino":
        from densemtl.inference.openvino import OpenVINOTasks

        return OpenVINOTasks(path, precision=precision)
    if kind != "onnxruntime":
        raise DenseMTLError(f"--backend must be torch, onnxruntime or openvino, got {kind!r}")
    if precision != "f32":
        raise DenseMTLError(f"--precision {precision} is an OpenVINO setting: add --backend openvino")
    return OnnxTasks(path)


def _check_flip(runner: Any, flip: bool) -> None:
    """Warn when an exported graph's test-time flip (its metadata) differs from the checkpoint's."""
    import warnings

    baked = runner.metadata.get("flip") == "true"
    if baked != flip:
        warnings.warn(
            f"{runner.path}: the graph {'averages' if baked else 'does not average'} the mirror image but "
            f"the checkpoint's test_time_flip is {flip}: outputs will differ from the checkpoint's "
            "(re-export with densemtl export)",
            stacklevel=3,
        )


def _predict_all(
    out: Path,
    palette: Any,
    predictor: Predictor,
    inputs: Iterator[tuple[str, np.ndarray]],
    total: int | None,
    writer: video.VideoWriter | None,
    panels: bool,
    pointcloud: bool,
    intrinsics: Sequence[float] | None,
    panel_options: dict[str, Any],
) -> tuple[int, float]:
    """Predict and write every input; returns (frames, seconds spent inside the model)."""
    from rich.progress import track

    from densemtl.inference.viz import prediction_panel

    count, model_seconds = 0, 0.0
    for name, rgb in track(inputs, total=total, description="predicting"):
        # the Predictor returns numpy arrays, so this also waits for queued GPU work
        tic = time.perf_counter()
        pred = predictor(rgb)
        model_seconds += time.perf_counter() - tic
        count += 1
        panel = write_prediction(out, name, rgb, pred, palette, panels, pointcloud, intrinsics, panel_options)
        if writer is not None:
            writer.write(
                panel
                if panel is not None
                else prediction_panel(rgb.astype(np.float32) / 255.0, palette, pred, **panel_options)
            )
    return count, model_seconds
