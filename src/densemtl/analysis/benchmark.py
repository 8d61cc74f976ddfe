"""``densemtl benchmark``: batch-1 inference latency of a model along several deployment paths.

::

    densemtl benchmark --model mt_refinenet --size 480x640 --runs 30 --output docs/benchmarks.md

Paths (``--paths``, comma-separated; default: every path of the device):

* CPU: ``eager`` (fp32, NCHW), ``channels_last`` (fp32, NHWC memory format), ``compile``
  (``torch.compile``, inductor, on channels-last), ``torchscript`` (traced, ``torch.jit.freeze`` +
  ``optimize_for_inference``), ``onnxruntime`` (ONNX export, ORT CPU, all graph optimisations),
  ``onnxruntime_int8`` (the same graph statically quantised to int8 by ORT's quantiser, calibrated on
  the benchmark image: its latency is real, its ``max |diff|`` is not an accuracy measure; score a
  calibrated ``densemtl export --int8`` file with ``densemtl predict --onnx`` + ``densemtl evaluate``),
  ``onnxruntime_plain`` (the network as trained, without the ``for_onnx()`` rewrite), ``openvino``
  (the exported ONNX graph converted to an OpenVINO IR, CPU plugin, fp32), ``openvino_bf16`` (the
  same IR with bf16 float layers, where the CPU has bf16 units: the plugin's own default there) and
  ``openvino_int8`` (the IR quantised by NNCF, calibrated on the benchmark image).
* ``<exported path>+labels`` (e.g. ``openvino+labels``): the deployment graph of
  ``densemtl export`` (semseg label map, uint8, and full-resolution depth inside the graph) instead
  of full-resolution logits; its ``max |diff|`` for the label map is the fraction of pixels whose
  label differs from the argmax of the eager logits.
* CUDA: ``eager``, ``channels_last``, ``compile``, ``fp16`` / ``bf16`` (half-precision weights and
  input, channels-last), ``fp16_cudagraph`` (the fp16 path captured in a CUDA graph).

Every path sees the same random image (RGB in [0, 1], batch 1); latency = median and 90th percentile of
``--runs`` timed passes after ``--warmup`` untimed ones, under ``torch.inference_mode`` (CUDA
synchronised around each pass). The paths are built first, then timed **interleaved** (one pass of
each path in turn, ``A B C A B C ...``), so a slow spell of a shared machine hits every path alike
and the ratios between paths (``latency_vs``: this median / the other's) stay meaningful when the
absolute numbers do not. ``--profile`` adds OpenVINO's per-layer counters for the OpenVINO paths. ``max |diff|`` is the largest abs difference of any output against the
eager fp32 outputs: paths that change numerics (fp16, bf16) must also report their accuracy change on a
test set (``densemtl test``), which this tool does not do.

In the same run the tool measures this machine's **fp32 matmul throughput** (median GFLOP/s of
``n x n @ n x n`` products, ``--matmul-size`` n, default 1024, same threads), once before and once after
the paths, and keeps the higher of the two: on a shared VM one measurement can land in a slow spell,
and the higher reference makes the fractions conservative. It reports each path's
**effective GFLOP/s** = 2 x MACs / latency (MACs counted by ``torch.utils.flop_counter`` as in
``densemtl profile``: convolutions and matmuls only) and that as a fraction of the matmul throughput.

A path that fails (e.g. no C++ compiler for ``torch.compile``) is reported with its error; the others
still run. ``--output FILE`` rewrites the ``## Deployment latency (densemtl benchmark)`` section of FILE
(typically ``docs/benchmarks.md``), with the command and machine.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from densemtl.analysis.profile import synchronize
from densemtl.errors import ConfigError

__all__ = [
    "CPU_PATHS",
    "CUDA_PATHS",
    "SECTION",
    "command_line",
    "default_paths",
    "markdown_section",
    "matmul_gflops",
    "run_benchmark",
    "update_section",
]

SECTION = "## Deployment latency (densemtl benchmark)"
CPU_PATHS = (
    "eager",
    "channels_last",
    "compile",
    "torchscript",
    "onnxruntime",
    "onnxruntime_int8",
    "openvino",
    "openvino_int8",
)
EXTRA_CPU_PATHS = ("onnxruntime_plain", "openvino_bf16")  # and "<exported path>+labels"
EXPORTED_PATHS = (
    "onnxruntime",
    "onnxruntime_int8",
    "onnxruntime_plain",
    "openvino",
    "openvino_bf16",
    "openvino_int8",
)
CUDA_PATHS = ("eager", "channels_last", "compile", "fp16", "bf16", "fp16_cudagraph")


def _time(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def matmul_gflops(n: int = 1024, runs: int = 10, device: str | torch.device = "cpu") -> float:
    """Median fp32 GFLOP/s of ``[n, n] @ [n, n]`` (2 n^3 FLOPs each) on ``device``, current threads."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=gen).to(dev)
    b = torch.rand(n, n, generator=gen).to(dev)
    out = torch.empty(n, n, device=dev)
    with torch.inference_mode():
        times = _time(lambda: torch.matmul(a, b, out=out), runs, 2, dev)
    return 2.0 * n**3 / (statistics.median(times) / 1000.0) / 1e9


class _TupleOut(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.tasks = list(model.tasks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[t] for t in self.tasks)


def _build_path(name: str, model: nn.Module, x: torch.Tensor, tmp: Path, threads: int) -> Callable[[], Any]:
    """A zero-argument callable running one batch-1 inference along the PyTorch path ``name``."""
    dev = x.device
    tasks = list(model.tasks)
    if name == "eager":
        return lambda: tuple(model(x)[t] for t in tasks)
    if name == "channels_last":
        m = _clone(model).to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        return lambda: tuple(m(xc)[t] for t in tasks)
    if name == "compile":
        m = _clone(model).to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        compiled = torch.compile(_TupleOut(m).eval())
        return lambda: compiled(xc)
    if name == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_TupleOut(_clone(model)).eval(), x, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        return lambda: frozen(x)
    if name in ("fp16", "bf16", "fp16_cudagraph"):
        if dev.type != "cuda":
            raise ConfigError(f"{name} path needs --device cuda")
        dtype = torch.bfloat16 if name == "bf16" else torch.float16
        m = _clone(model).to(dtype=dtype, memory_format=torch.channels_last)
        xh = x.to(dtype).contiguous(memory_format=torch.channels_last)
        if name != "fp16_cudagraph":
            return lambda: tuple(m(xh)[t] for t in tasks)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                m(xh)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = m(xh)

        def replay() -> tuple[torch.Tensor, ...]:
            graph.replay()
            return tuple(static_out[t] for t in tasks)

        return replay
    raise ConfigError(
        f"unknown benchmark path {name!r}; CPU: {', '.join(CPU_PATHS + EXTRA_CPU_PATHS)} (exported ones "
        f"also as <path>+labels); CUDA: {', '.join(CUDA_PATHS)}"
    )


def _build(
    name: str, model: nn.Module, x: torch.Tensor, tmp: Path, threads: int
) -> tuple[Callable[[], Any], Callable[[int], dict[str, Any]] | None]:
    """``(one batch-1 inference along name, per-layer profiler or None)``."""
    base, plus, variant = name.partition("+")
    if base in EXPORTED_PATHS and (not plus or variant == "labels"):
        if x.device.type != "cpu":
            raise ConfigError(f"{name} path runs on CPU only")
        return _exported_path(base, variant == "labels", model, x, tmp, threads)
    return _build_path(name, model, x, tmp, threads), None


def _exported_path(
    base: str, labels: bool, model: nn.Module, x: torch.Tensor, tmp: Path, threads: int
) -> tuple[Callable[[], Any], Callable[[int], dict[str, Any]] | None]:
    """An ONNX Runtime / OpenVINO path: ``(run, per-layer profiler or None)``."""
    from densemtl.inference.export import deploy_outputs, export_onnx, onnx_session, quantize_onnx_int8

    stem = base + ("_labels" if labels else "")
    path = tmp / f"{stem}.onnx"
    outputs = deploy_outputs(list(model.tasks)) if labels else None
    export_onnx(
        _clone(model), path, tuple(x.shape[-2:]), outputs=outputs, rewrite=base != "onnxruntime_plain"
    )
    feed = {"image": x.numpy()}
    if base.startswith("onnxruntime"):
        if base == "onnxruntime_int8":
            # calibrated on the benchmark image: the latency does not depend on the calibration data
            path = quantize_onnx_int8(path, tmp / f"{stem}_int8.onnx", [x.numpy()])
        session = onnx_session(path, threads)
        return (lambda: tuple(torch.from_numpy(o) for o in session.run(None, feed))), None
    from densemtl.inference import openvino as ovb

    if base == "openvino_int8":
        path = ovb.quantize_openvino_int8(path, tmp / f"{stem}_int8.xml", [x.numpy()])
    precision = "bf16" if base == "openvino_bf16" else "f32"
    compiled = ovb.compile_model(path, threads, precision=precision)
    request = compiled.create_infer_request()
    count = len(compiled.outputs)

    def run() -> tuple[torch.Tensor, ...]:
        request.infer(feed)
        return tuple(torch.from_numpy(request.get_output_tensor(i).data) for i in range(count))

    return run, lambda runs: ovb.layer_profile(
        ovb.compile_model(path, threads, perf_count=True, precision=precision), feed, runs
    )


def _reference(model: nn.Module, x: torch.Tensor, name: str) -> tuple[torch.Tensor, ...]:
    """Eager fp32 outputs a path is compared with (the deployment graph's outputs for ``+labels``)."""
    if not name.endswith("+labels"):
        return tuple(model(x)[t].float() for t in model.tasks)
    from densemtl.inference.export import DeployWrapper, deploy_outputs

    return DeployWrapper(model, deploy_outputs(list(model.tasks)))(x)


def _clone(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()


def default_paths(device: torch.device) -> list[str]:
    """Every path of the device (the OpenVINO ones where the ``openvino`` extra is installed)."""
    if device.type == "cuda":
        return list(CUDA_PATHS)
    import importlib.util

    has_openvino = importlib.util.find_spec("openvino") is not None
    return [p for p in CPU_PATHS if has_openvino or not p.startswith("openvino")]


def run_benchmark(
    model: nn.Module,
    size: tuple[int, int] = (480, 640),
    paths: Sequence[str] | None = None,
    runs: int = 20,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    matmul_size: int = 1024,
    profile: bool = False,
) -> dict[str, Any]:
    """Time ``model`` along ``paths``, interleaved; returns ``{"matmul_gflops", "macs", "rows": [...]}``."""
    from densemtl.analysis.profile import count_flops
    from densemtl.inference.export import output_difference

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("benchmark: --device cuda requested but CUDA is not available")
    if runs < 1 or warmup < 0:
        raise ConfigError("benchmark: need --runs >= 1 and --warmup >= 0")
    paths = list(paths or default_paths(dev))
    threads = torch.get_num_threads()
    model = model.eval().to(dev)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(dev)
    macs = count_flops(model, x) // 2
    rows: list[dict[str, Any]] = []
    timed: list[tuple[dict[str, Any], Callable[[], Any]]] = []
    profilers: dict[str, Callable[[int], dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name in paths:
            row: dict[str, Any] = {"path": name}
            rows.append(row)
            try:
                fn, profiler = _build(name, model, x, Path(tmp), threads)
                outs = fn()  # first call: compilation / graph capture, not timed
                reference = _reference(model, x, name)
                row["max_abs_diff"] = max(
                    output_difference(r.cpu().numpy(), o.to(r.dtype).cpu().numpy())
                    for o, r in zip(outs, reference)
                )
            except Exception as e:  # one failing path must not hide the others
                row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
                continue
            timed.append((row, fn))
            if profiler is not None:
                profilers[name] = profiler
        gflops_mm_before = matmul_gflops(matmul_size, device=dev)
        times = _time_interleaved([fn for _, fn in timed], runs, warmup, dev)
        gflops_mm_after = matmul_gflops(matmul_size, device=dev)
        if profile:
            for row, _ in timed:
                if row["path"] in profilers:
                    row["profile"] = profilers[row["path"]](max(runs // 4, 3))
    gflops_mm = max(gflops_mm_before, gflops_mm_after)
    for (row, _), path_times in zip(timed, times):
        median = statistics.median(path_times)
        eff = 2.0 * macs / (median / 1000.0) / 1e9
        row.update(
            latency_ms_median=median,
            latency_ms_p90=float(np.percentile(path_times, 90)),
            effective_gflops=eff,
            fraction_of_matmul=eff / gflops_mm,
        )
    medians = {row["path"]: row["latency_ms_median"] for row, _ in timed}
    for row, _ in timed:
        row["latency_vs"] = {p: row["latency_ms_median"] / m for p, m in medians.items() if p != row["path"]}
    return {
        "matmul_gflops": gflops_mm,
        "matmul_gflops_before_after": [gflops_mm_before, gflops_mm_after],
        "matmul_size": matmul_size,
        "macs": macs,
        "size": list(size),
        "runs": runs,
        "warmup": warmup,
        "threads": threads,
        "device": str(dev),
        "interleaved": True,
        "rows": rows,
    }


def _time_interleaved(
    fns: Sequence[Callable[[], Any]], runs: int, warmup: int, device: torch.device
) -> list[list[float]]:
    """Milliseconds of ``runs`` passes of each callable, taken in turn (``A B C A B C ...``)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, record in zip(fns, times):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            record.append((time.perf_counter() - t0) * 1000.0)
    return times


def markdown_section(result: dict[str, Any], model_name: str, command: str, machine: str) -> str:
    h, w = result["size"]
    measured = result.get("matmul_gflops_before_after")
    before_after = (
        f" (higher of {measured[0]:.1f} before and {measured[1]:.1f} after the paths)" if measured else ""
    )
    lines = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Date: {_dt.date.today().isoformat()}",
        "",
        f"Model `{model_name}` at {h}x{w}, batch 1, {result['device']}, {result['threads']} thread(s): "
        f"{result['macs'] / 1e9:.2f} GMACs (conv + matmul, `torch.utils.flop_counter`). Same-run fp32 matmul "
        f"throughput ({result['matmul_size']}^3): **{result['matmul_gflops']:.1f} GFLOP/s**{before_after}. "
        "Effective GFLOP/s = "
        "2 x MACs / median latency; `% matmul` = effective / matmul throughput. `max |diff|` = largest "
        f"output difference from eager fp32. Latency over {result['runs']} timed runs after "
        f"{result['warmup']} warm-up runs"
        + (", the paths interleaved (one pass of each in turn)." if result.get("interleaved") else "."),
        "",
    ]
    ok = [row for row in result["rows"] if "error" not in row]
    first = ok[0]["path"] if ok else None
    lines += [
        f"| path | median (ms) | p90 (ms) | vs {first} | effective GFLOP/s | % matmul | max abs diff vs eager |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['path']} | error: {row['error']} | | | | | |")
            continue
        ratio = row.get("latency_vs", {}).get(first, 1.0)
        lines.append(
            f"| {row['path']} | {row['latency_ms_median']:.1f} | {row['latency_ms_p90']:.1f} | {ratio:.2f} "
            f"| {row['effective_gflops']:.1f} | {100 * row['fraction_of_matmul']:.0f}% "
            f"| {row['max_abs_diff']:.1e} |"
        )
    for row in ok:
        if "profile" in row:
            lines += ["", *profile_lines(row["path"], row["profile"])]
    return "\n".join(lines) + "\n"


def profile_lines(path: str, profile: dict[str, Any], top: int = 8) -> list[str]:
    """Markdown lines of an OpenVINO per-layer profile: time per layer type (mean per run)."""
    total = profile["total_ms"] or 1.0
    lines = [
        f"`{path}` per-layer profile (OpenVINO counters, {profile['total_ms']:.1f} ms per run in layers):",
        "",
        "| layer type (kernel) | ms | share |",
        "|---|---:|---:|",
    ]
    for kind, ms in list(profile["by_type_ms"].items())[:top]:
        lines.append(f"| {kind} | {ms:.1f} | {100 * ms / total:.0f}% |")
    return lines


def update_section(path: str | Path, section: str, heading: str = SECTION) -> None:
    """Replace (or append) the section starting with ``heading`` in the markdown file ``path``."""
    from densemtl.analysis.profile import update_markdown_section

    update_markdown_section(path, section, heading)


def command_line(
    name: str,
    from_checkpoint: bool,
    size: str,
    runs: int,
    warmup: int,
    device: str,
    paths: str | None = None,
    threads: int | None = None,
) -> str:
    """The ``densemtl benchmark`` command line that reproduces a run (written into the report)."""
    command = (
        f"densemtl benchmark {'--ckpt' if from_checkpoint else '--model'} {name} --size {size} --runs {runs}"
    )
    command += f" --warmup {warmup} --device {device}"
    if paths:
        command += f" --paths {paths}"
    if threads:
        command += f" --threads {threads}"
    return command
