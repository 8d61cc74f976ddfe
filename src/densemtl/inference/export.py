"""``densemtl export``: a trained (or freshly built) model to ONNX or TorchScript for deployment.

::

    densemtl export --ckpt runs/.../best.ckpt --format onnx --out model.onnx [--size 480x640] [--dynamic]
    densemtl export --model mt_refinenet --num-classes 40 --format torchscript --out model.pt

The exported graph is the whole :class:`~densemtl.models.base.MultiTaskModel` forward: input
``image`` float32 ``[B, 3, H, W]`` RGB in [0, 1] (the ImageNet normalisation is inside the graph);
one output per task, named after it, in the model's task order, at the input size: ``semseg``
logits ``[B, C, H, W]``, ``depth`` metres ``[B, 1, H, W]``, ``normals`` unit vectors ``[B, 3, H, W]``.
Without ``--dynamic`` the graph is fixed to batch 1 and ``--size``; with it, batch, height and width
are free (the decoder resizes to its skip connections' sizes, so any size works).

ONNX uses the TorchScript-based exporter (``dynamo=False``, opset 17; the dynamo exporter needs the
``onnxscript`` package). After writing an ONNX file, the command checks it with ONNX Runtime on a
random image against PyTorch and prints the max abs difference per output (``--no-check`` skips it).
TorchScript files are traced and frozen (``torch.jit.freeze``): load them with ``torch.jit.load``.

``--int8`` (ONNX only) also writes ``<out stem>_int8.onnx``: static int8 quantisation by ONNX
Runtime's own quantiser (QDQ format, per-channel int8 weights, uint8 activations, min-max
calibration) on ``--calibration-count`` images of ``--calibration-images``, resized to ``--size``
as ``densemtl predict`` resizes. It changes the numerics, so measure its accuracy on a test set
before deploying it: ``densemtl predict --onnx`` runs either file, and ``densemtl evaluate``
scores the predictions (docs/benchmarks.md, "int8" rows).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from densemtl.errors import ConfigError

__all__ = [
    "ExportWrapper",
    "add_arguments",
    "export_onnx",
    "export_torchscript",
    "load_for_export",
    "onnx_parity",
    "quantize_onnx_int8",
    "run",
]

ONNX_OPSET = 17


class ExportWrapper(nn.Module):
    """``image -> tuple(outputs in task order)``: the model's dict output as a tuple for exporters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.task_names: list[str] = list(model.tasks)
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[t] for t in self.task_names)


def load_for_export(
    ckpt: str | Path | None = None,
    model: str | None = None,
    num_classes: int = 40,
    tasks: str = "semseg,depth",
) -> tuple[nn.Module, tuple[int, int] | None]:
    """The network of a training checkpoint, or a registered model / YAML config built fresh.

    Returns ``(model in eval mode, training image size or None)``.
    """
    if (ckpt is None) == (model is None):
        raise ConfigError("export: give exactly one of --ckpt or --model")
    if ckpt is not None:
        from densemtl.training.checkpoint import load_module, read_checkpoint

        module = load_module(ckpt)
        size = read_checkpoint(ckpt).get("datamodule_hyper_parameters", {}).get("image_size")
        return module.net.eval(), (int(size[0]), int(size[1])) if size else None
    from densemtl.analysis.profile import resolve_model
    from densemtl.models.base import MultiTaskModel

    net, _kind = resolve_model(str(model), tasks, num_classes)
    if not isinstance(net, MultiTaskModel):
        raise ConfigError(f"export: {model!r} is a backbone, not a multi-task model")
    return net.eval(), None


def export_onnx(
    model: nn.Module, path: str | Path, size: tuple[int, int] = (480, 640), dynamic: bool = False
) -> list[str]:
    """Write ``model`` as ONNX to ``path``; returns the output names (the tasks).

    A model with a ``for_onnx()`` method is exported through the copy it returns: the same
    function rewritten for ONNX Runtime's kernels (e.g. ``mt_refinenet``'s decoder activations).
    """
    if hasattr(model, "for_onnx"):
        model = model.for_onnx()
    wrapper = ExportWrapper(model)
    names = wrapper.task_names
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, *size)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {"image": {0: "batch", 2: "height", 3: "width"}}
        dynamic_axes.update({n: {0: "batch", 2: "height", 3: "width"} for n in names})
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["image"],
            output_names=names,
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return names


def export_torchscript(
    model: nn.Module, path: str | Path, size: tuple[int, int] = (480, 640), freeze: bool = True
) -> torch.jit.ScriptModule:
    """Trace (and freeze) ``model`` and save it to ``path``; returns the scripted module."""
    wrapper = ExportWrapper(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, torch.rand(1, 3, *size), check_trace=False)
        if freeze:
            traced = torch.jit.freeze(traced)
        torch.jit.save(traced, str(path))
    return traced


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(
    model: nn.Module, path: str | Path, size: tuple[int, int], batch: int = 1, seed: int = 0
) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime (CPU) and PyTorch on one random image batch."""
    wrapper = ExportWrapper(model)
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        ref = wrapper(x)
    got = onnx_session(path).run(None, {"image": x.numpy()})
    return {n: float(np.abs(r.numpy() - g).max()) for n, r, g in zip(wrapper.task_names, ref, got)}


def quantize_onnx_int8(src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray]) -> Path:
    """Static int8 quantisation of the fp32 ONNX file ``src`` into ``dst`` (ONNX Runtime's quantiser).

    ``calibration``: ``[1, 3, H, W]`` float32 images at the graph's input size, as the model sees
    them at inference. QDQ format with per-channel symmetric int8 weights and uint8 activations;
    ONNX Runtime fuses the QDQ pairs into integer convolutions on CPU.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ConfigError("int8 quantisation needs at least one calibration image")

    class _Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{"image": np.ascontiguousarray(x, dtype=np.float32)} for x in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # shapes inferred and the graph simplified first, as ORT's quantiser advises
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))
        quantize_static(
            str(prepared),
            str(dst),
            _Images(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return dst


def calibration_images(folder: str | Path, size: tuple[int, int], count: int = 32) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (sorted, evenly spaced) as ``[1, 3, H, W]`` model inputs."""
    from densemtl.data import io
    from densemtl.inference.predict import list_images, prepare_image

    if count < 1:
        raise ConfigError(f"--calibration-count must be >= 1, got {count}")
    paths = list_images(Path(folder))
    step = max(1, len(paths) // count)
    return [prepare_image(io.read_image(p), size).numpy() for p in paths[::step][:count]]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--ckpt", help="training checkpoint (densemtl fit / demo)")
    what.add_argument("--model", help="registered model name or YAML config, built with random weights")
    parser.add_argument("--num-classes", type=int, default=40, help="semseg classes for --model (default 40)")
    parser.add_argument("--tasks", default="semseg,depth", help="tasks for --model (default semseg,depth)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    parser.add_argument("--out", required=True, type=Path, help="output file (.onnx / .pt)")
    parser.add_argument(
        "--size",
        default=None,
        help="HEIGHTxWIDTH of the example input (default: the checkpoint's training size, else 480x640)",
    )
    parser.add_argument("--dynamic", action="store_true", help="ONNX: free batch / height / width axes")
    parser.add_argument("--no-check", action="store_true", help="ONNX: skip the ONNX Runtime parity check")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="ONNX: also write <out stem>_int8.onnx, statically quantised on --calibration-images",
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


def run(args: argparse.Namespace) -> int:
    from densemtl.analysis.profile import parse_size

    model, train_size = load_for_export(args.ckpt, args.model, args.num_classes, args.tasks)
    size = parse_size(args.size) if args.size else (train_size or (480, 640))
    if getattr(args, "int8", False):
        if args.format != "onnx" or args.dynamic:
            raise ConfigError("--int8 needs --format onnx with a fixed --size (no --dynamic)")
        if not args.calibration_images:
            raise ConfigError("--int8 needs --calibration-images (a folder of representative images)")
    if args.format == "onnx":
        names = export_onnx(model, args.out, size, dynamic=args.dynamic)
        print(
            f"wrote {args.out} (ONNX opset {ONNX_OPSET}, input image [{'B' if args.dynamic else 1},3,"
            f"{'H' if args.dynamic else size[0]},{'W' if args.dynamic else size[1]}], outputs {', '.join(names)})"
        )
        if not args.no_check:
            diffs = onnx_parity(model, args.out, size)
            print(
                "ONNX Runtime vs PyTorch max abs diff: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
            )
        if getattr(args, "int8", False):
            images = calibration_images(args.calibration_images, size, args.calibration_count)
            int8_path = quantize_onnx_int8(
                args.out, Path(args.out).with_name(Path(args.out).stem + "_int8.onnx"), images
            )
            diffs = onnx_parity(model, int8_path, size)
            print(
                f"wrote {int8_path} (int8, calibrated on {len(images)} image(s)); max abs diff vs fp32 "
                "PyTorch on a random image (expected to be large; score it on a test set): "
                + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
            )
    else:
        export_torchscript(model, args.out, size)
        print(
            f"wrote {args.out} (TorchScript, traced at {size[0]}x{size[1]} and frozen; outputs "
            f"{', '.join(model.tasks)})"
        )
    return 0
