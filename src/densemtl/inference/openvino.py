"""OpenVINO backend: IR export (fp32, and int8 by NNCF post-training quantisation), a runner for
``densemtl predict --backend openvino`` and per-layer profiles. Optional extra:
``pip install "densemtl[openvino]"``.

::

    densemtl export --ckpt best.ckpt --format openvino --out model.xml --size 480x640 \\
        [--int8 --calibration-images DIR]          # -> model.xml + model.bin [+ model_int8.xml/.bin]
    densemtl predict --ckpt best.ckpt --onnx model.xml --input DIR --output OUT   # OpenVINO runs it

The IR is converted by OpenVINO's own converter (``openvino.convert_model``) from the ONNX graph of
:func:`densemtl.inference.export.export_onnx` (same outputs, label maps, baked-in flip, metadata),
and saved with fp32 weights (``openvino.save_model(..., compress_to_fp16=False)``: the default
fp16 compression would change the numerics). The ONNX metadata goes into the IR's ``rt_info``
under ``densemtl``. int8 follows NNCF's post-training quantisation (``nncf.quantize`` with an
``nncf.Dataset`` of calibration images, default mixed preset: symmetric int8 weights per channel,
activations per tensor) and is compiled by the CPU plugin into integer kernels. fp32 IRs are
compiled with ``INFERENCE_PRECISION_HINT=f32`` so that a CPU with bf16 units does not silently
run them in bf16; ``precision="bf16"`` asks for bf16 float layers instead (the CPU plugin's own
default on CPUs with AMX / AVX-512 BF16, about 2.5x faster here, with bf16 rounding: measure its
accuracy with ``densemtl evaluate`` before deploying it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from densemtl.errors import ConfigError, DataError, DenseMTLError
from densemtl.inference.predictor import ExportedTasks, output_tasks

__all__ = [
    "OpenVINOTasks",
    "compile_model",
    "export_openvino",
    "int8_ir_path",
    "layer_profile",
    "quantize_openvino_int8",
    "read_ir_metadata",
]

RT_INFO_KEY = "densemtl"


def _ov() -> Any:
    try:
        import openvino
    except ImportError:
        raise DenseMTLError(
            'the OpenVINO backend needs the extra: pip install "densemtl[openvino]"'
        ) from None
    return openvino


def export_openvino(
    model: nn.Module,
    path: str | Path,
    size: tuple[int, int] = (480, 640),
    dynamic: bool = False,
    outputs: Sequence[str] | None = None,
    flip: bool = False,
) -> list[str]:
    """Write ``model`` as an OpenVINO IR (``path`` = ``.xml``, weights beside it in ``.bin``).

    Returns the output names; arguments as :func:`densemtl.inference.export.export_onnx`.
    """
    from densemtl.inference.export import export_onnx, read_onnx_metadata

    ov = _ov()
    path = Path(path)
    if path.suffix != ".xml":
        raise ConfigError(f"--format openvino writes an IR: --out must end in .xml, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        names = export_onnx(model, onnx_file, size, dynamic=dynamic, outputs=outputs, flip=flip)
        ov_model = ov.convert_model(str(onnx_file))
        metadata = read_onnx_metadata(onnx_file)
    _set_metadata(ov_model, metadata)
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return names


def _set_metadata(ov_model: Any, metadata: dict[str, str]) -> None:
    for key, value in metadata.items():
        ov_model.set_rt_info(value, [RT_INFO_KEY, key])


def read_ir_metadata(ov_model: Any) -> dict[str, str]:
    """The ``densemtl`` ``rt_info`` of an OpenVINO model (empty when it has none)."""
    if not ov_model.has_rt_info([RT_INFO_KEY]):
        return {}
    info = ov_model.get_rt_info()[RT_INFO_KEY]
    return {str(k): str(v.astype(str)) if hasattr(v, "astype") else str(v) for k, v in info.items()}


def int8_ir_path(fp32_path: str | Path) -> Path:
    """Where the int8 copy of an IR goes: ``<stem>_int8.xml`` beside it."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(fp32_path.stem + "_int8.xml")


def quantize_openvino_int8(src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray]) -> Path:
    """int8 copy of the fp32 model ``src`` (IR ``.xml`` or ``.onnx``) into the IR ``dst``, by NNCF.

    ``calibration``: ``[1, 3, H, W]`` float32 model inputs (as
    :func:`densemtl.inference.export.calibration_images` gives them); all of them are used.
    """
    import nncf

    ov = _ov()
    if not calibration:
        raise ConfigError("int8 quantisation needs at least one calibration image")
    ov_model = ov.Core().read_model(str(src))
    metadata = read_ir_metadata(ov_model)
    if not metadata and Path(src).suffix == ".onnx":
        from densemtl.inference.export import read_onnx_metadata

        metadata = read_onnx_metadata(src)
    dataset = nncf.Dataset([np.ascontiguousarray(x, dtype=np.float32) for x in calibration])
    quantized = nncf.quantize(ov_model, dataset, subset_size=len(calibration))
    _set_metadata(quantized, {**metadata, "precision": "int8"})
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    return dst


PRECISIONS = ("f32", "bf16")


def compile_model(
    model: str | Path | Any, threads: int | None = None, perf_count: bool = False, precision: str = "f32"
) -> Any:
    """An OpenVINO CPU compiled model (one stream, latency hint; float layers in ``precision``).

    ``model``: an ``.xml`` IR, an ``.onnx`` file (read by OpenVINO's ONNX frontend) or an
    ``openvino.Model``. ``perf_count``: collect per-layer times (:func:`layer_profile`).
    ``precision``: ``f32`` (exact), or ``bf16`` (the CPU's bf16 units; refused where it has none,
    since the plugin would fall back to f32 and the name would lie).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    ov = _ov()
    core = ov.Core()
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise ConfigError("OpenVINO precision bf16: this CPU has no bf16 units (AVX-512 BF16 / AMX)")
    if isinstance(model, (str, Path)):
        model = core.read_model(str(model))
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(int(threads or torch.get_num_threads())),
        "INFERENCE_PRECISION_HINT": precision,
        "PERF_COUNT": "YES" if perf_count else "NO",
    }
    return core.compile_model(model, "CPU", config)


def layer_profile(compiled: Any, feed: dict[str, np.ndarray], runs: int = 5, top: int = 15) -> dict[str, Any]:
    """Where inference time goes, from OpenVINO's per-layer counters (``compiled`` built with
    ``perf_count=True``): mean milliseconds per run per executed layer type, and the slowest layers."""
    request = compiled.create_infer_request()
    request.infer(feed)  # first run: memory allocation, not counted
    by_type: dict[str, float] = {}
    by_layer: dict[tuple[str, str], float] = {}
    for _ in range(runs):
        request.infer(feed)
        for info in request.get_profiling_info():
            ms = info.real_time.total_seconds() * 1000.0 / runs
            kind = f"{info.node_type} ({info.exec_type})"
            by_type[kind] = by_type.get(kind, 0.0) + ms
            by_layer[(info.node_name, kind)] = by_layer.get((info.node_name, kind), 0.0) + ms
    slowest = sorted(by_layer.items(), key=lambda kv: -kv[1])[:top]
    return {
        "total_ms": sum(by_type.values()),
        "by_type_ms": {k: v for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]) if v > 0},
        "slowest_layers": [{"node": n, "type": t, "ms": ms} for (n, t), ms in slowest],
    }


class OpenVINOTasks(ExportedTasks):
    """An exported IR or ONNX file run by OpenVINO behind the ``predict_tasks`` interface of the module."""

    cpu_only = "--backend openvino runs on OpenVINO's CPU plugin: use --device cpu"

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "model file not found")
        ov = _ov()
        try:
            ov_model = ov.Core().read_model(str(self.path))
        except Exception as e:  # OpenVINO raises its own exception types
            raise DataError(
                self.path, f"not a model OpenVINO can read ({' '.join(str(e).split())[:160]})"
            ) from None
        self.metadata = read_ir_metadata(ov_model)
        if not self.metadata and self.path.suffix == ".onnx":
            from densemtl.inference.export import read_onnx_metadata

            self.metadata = read_onnx_metadata(self.path)
        self.outputs = [o.get_any_name() for o in ov_model.outputs]
        self.tasks = output_tasks(self.outputs)
        shape = ov_model.input(0).get_partial_shape()
        dims = [shape[i] for i in (2, 3)]
        self.fixed_size = (
            (dims[0].get_length(), dims[1].get_length()) if all(d.is_static for d in dims) else None
        )
        self.compiled = compile_model(ov_model, threads, precision=precision)
        self.request = self.compiled.create_infer_request()

    def predict_tasks(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.request.infer({"image": np.ascontiguousarray(image.cpu().numpy())})
        return {
            task: torch.from_numpy(self.request.get_output_tensor(i).data.copy())
            for i, task in enumerate(self.tasks)
        }
