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

Deployment graphs (:class:`DeployWrapper`, ``--outputs``, ``--no-flip``): ``labels`` is the semseg
label map ``[B, 1, H, W]`` (uint8 for <= 255 classes, else int32), the argmax over classes of the
bilinearly upsampled logits, computed inside the graph, so the 40-plane float map never leaves the
runtime; ``logits`` keeps the logits output (named ``semseg``). When the checkpoint was trained with
``test_time_flip`` the graph also runs the mirror image (batch 2 inside the graph) and merges the
two with each task's :meth:`~densemtl.tasks.base.Task.merge_mirrored` rule, as
``DenseMTLModule.predict_tasks`` does. What a file contains is in its metadata
(:func:`export_metadata`: ONNX ``metadata_props``, OpenVINO ``rt_info``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from densemtl.errors import ConfigError
from densemtl.inference.predictor import list_images, onnx_session, prepare_image
from densemtl.tasks import get_task

__all__ = [
    "DeployWrapper",
    "ExportWrapper",
    "add_onnx_metadata",
    "calibration_images",
    "checkpoint_flip",
    "deploy_outputs",
    "export_metadata",
    "export_onnx",
    "export_torchscript",
    "export_wrapper",
    "int8_path",
    "label_dtype",
    "load_for_export",
    "onnx_parity",
    "onnx_session",
    "output_difference",
    "quantize_onnx_int8",
    "read_onnx_metadata",
]

ONNX_OPSET = 17
METADATA_PREFIX = "densemtl."


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


def deploy_outputs(tasks: Sequence[str], spec: str | Sequence[str] | None = None) -> list[str]:
    """Output names of a deployment graph from ``--outputs`` (``"labels,depth"``).

    ``labels`` = semseg label map, ``logits`` = semseg logits (output named ``semseg``), any other
    entry a task of the model. ``None``: ``labels`` for semseg and every other task as is.
    """
    if spec is None:
        return ["labels" if t == "semseg" else t for t in tasks]
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    names = []
    for item in items:
        task = "semseg" if item in ("labels", "logits") else item
        if task not in tasks:
            raise ConfigError(
                f"--outputs: {item!r} is not an output of this model (tasks: {', '.join(tasks)})"
            )
        names.append("semseg" if item == "logits" else item)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"--outputs: give each output once, e.g. labels,depth (got {spec!r})")
    return names


def label_dtype(num_classes: int) -> torch.dtype:
    """The label map's integer type: uint8 when the ids fit, else int32."""
    return torch.uint8 if num_classes <= 255 else torch.int32


class DeployWrapper(nn.Module):
    """``image -> tuple(outputs)`` with label maps and test-time flip inside the graph (module docstring).

    The normalisation / upsampling / activation of :meth:`MultiTaskModel.forward` are spelt out
    here because the label map and the flip merge need the raw head outputs in between.
    """

    def __init__(self, model: nn.Module, outputs: Sequence[str], flip: bool = False) -> None:
        super().__init__()
        self.model = model
        self.task_names: list[str] = list(outputs)
        self.flip = flip
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = (image - m.pixel_mean) / m.pixel_std
        if self.flip:
            x = torch.cat([x, x.flip(-1)])
        raw = m.forward_tasks(x)
        size = image.shape[-2:]
        results = []
        for name in self.task_names:
            task = "semseg" if name == "labels" else name
            out = raw[task]
            if name == "labels":
                # semseg logits are not activated and the merge is linear: merge before the
                # upsampling, which then runs once on the classes' planes instead of twice
                if self.flip:
                    out = get_task(task).merge_mirrored(*out.chunk(2))
                logits = _resize(out, size)
                results.append(logits.argmax(1, keepdim=True).to(label_dtype(out.shape[1])))
                continue
            out = m.postprocess(task, _resize(out, size))
            if self.flip:
                out = get_task(task).merge_mirrored(*out.chunk(2))
            results.append(out)
        return tuple(results)


def _resize(out: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if out.shape[-2:] == size:
        return out
    return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def export_metadata(
    wrapper: nn.Module, size: tuple[int, int] | None, model: nn.Module | None = None
) -> dict[str, str]:
    """What an exported graph contains: ``flip``, ``outputs``, ``size`` (``HxW`` / ``dynamic``),
    ``classes``, ``tasks`` (keys prefixed ``densemtl.``, values strings)."""
    net = model if model is not None else wrapper.model
    meta = {
        "flip": "true" if getattr(wrapper, "flip", False) else "false",
        "outputs": ",".join(wrapper.task_names),
        "size": f"{size[0]}x{size[1]}" if size else "dynamic",
        "classes": str(net.tasks.get("semseg", 0)),
        "tasks": ",".join(net.tasks),
    }
    return {METADATA_PREFIX + k: v for k, v in meta.items()}


def add_onnx_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the ONNX file's ``metadata_props`` (replacing keys already there)."""
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``densemtl.*`` metadata of an ONNX file, without the prefix (empty for older files)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {
        p.key[len(METADATA_PREFIX) :]: p.value
        for p in proto.metadata_props
        if p.key.startswith(METADATA_PREFIX)
    }


def checkpoint_flip(ckpt: str | Path | None) -> bool:
    """Whether a training checkpoint evaluates with test-time flip averaging."""
    if ckpt is None:
        return False
    from densemtl.training.checkpoint import read_checkpoint

    return bool(read_checkpoint(ckpt).get("hyper_parameters", {}).get("test_time_flip", False))


def load_for_export(
    ckpt: str | Path | None = None,
    model: str | None = None,
    num_classes: int = 40,
    tasks: str = "semseg,depth",
) -> tuple[nn.Module, tuple[int, int] | None]:
    """The network of a training checkpoint, or a registered model / YAML config built fresh.

    Returns ``(model in eval mode, training image size or None)``; :func:`checkpoint_flip` says
    whether the checkpoint uses test-time flip.
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


def export_wrapper(
    model: nn.Module, outputs: Sequence[str] | None = None, flip: bool = False, rewrite: bool = True
) -> nn.Module:
    """The module an exporter traces: :class:`ExportWrapper` (every task, as the model returns it)
    when ``outputs`` is None and no flip, else :class:`DeployWrapper`.

    ``rewrite``: a model with a ``for_onnx()`` method is exported through the copy it returns: the
    same function rewritten for the runtimes' kernels (e.g. ``mt_refinenet``'s decoder activations).
    """
    if rewrite and hasattr(model, "for_onnx"):
        model = model.for_onnx()
    if outputs is None and not flip:
        return ExportWrapper(model)
    return DeployWrapper(model, outputs if outputs is not None else list(model.tasks), flip)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    size: tuple[int, int] = (480, 640),
    dynamic: bool = False,
    outputs: Sequence[str] | None = None,
    flip: bool = False,
    rewrite: bool = True,
) -> list[str]:
    """Write ``model`` as ONNX to ``path``; returns the output names.

    ``outputs`` / ``flip``: a deployment graph (:func:`export_wrapper`; names from
    :func:`deploy_outputs`). The file's metadata records what it contains (:func:`export_metadata`).
    """
    wrapper = export_wrapper(model, outputs, flip, rewrite)
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
    add_onnx_metadata(path, export_metadata(wrapper, None if dynamic else size))
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


def onnx_parity(
    model: nn.Module,
    path: str | Path,
    size: tuple[int, int],
    batch: int = 1,
    seed: int = 0,
    outputs: Sequence[str] | None = None,
    flip: bool = False,
    run: Any = None,
) -> dict[str, float]:
    """Difference per output between an exported file and PyTorch on one random image batch.

    Float outputs: max abs difference; label maps: the fraction of pixels whose label differs.
    ``run``: ``feed dict -> list of arrays`` (default: an ONNX Runtime CPU session of ``path``).
    """
    wrapper = export_wrapper(model, outputs, flip, rewrite=False)
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        ref = wrapper(x)
    got = (run or onnx_session(path).run)(None, {"image": x.numpy()})
    return {n: output_difference(r.numpy(), np.asarray(g)) for n, r, g in zip(wrapper.task_names, ref, got)}


def output_difference(ref: np.ndarray, got: np.ndarray) -> float:
    """Max abs difference of float outputs; for integer label maps, the fraction of pixels that differ."""
    if np.issubdtype(ref.dtype, np.integer):
        return float((ref != got).mean())
    return float(np.abs(ref - got).max())


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
    meta = {METADATA_PREFIX + k: v for k, v in read_onnx_metadata(src).items()}
    add_onnx_metadata(dst, {**meta, METADATA_PREFIX + "precision": "int8"})
    return dst


def calibration_images(folder: str | Path, size: tuple[int, int], count: int = 32) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (sorted, evenly spaced) as ``[1, 3, H, W]`` model inputs."""
    from densemtl.data import io

    if count < 1:
        raise ConfigError(f"--calibration-count must be >= 1, got {count}")
    paths = list_images(Path(folder))
    step = max(1, len(paths) // count)
    return [prepare_image(io.read_image(p), size).numpy() for p in paths[::step][:count]]


def int8_path(fp32_path: str | Path) -> Path:
    """Where the int8 copy of an fp32 ONNX file goes: ``<stem>_int8.onnx`` beside it."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(fp32_path.stem + "_int8.onnx")
