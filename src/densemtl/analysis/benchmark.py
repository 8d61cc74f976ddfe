"""``densemtl benchmark``: batch-1 inference latency of a model along several deployment paths.

::

    densemtl benchmark --model mt_refinenet --size 480x640 --runs 30 --output docs/benchmarks.md

Paths (``--paths``, comma-separated; default: every path of the device):

* CPU: ``eager`` (fp32, NCHW), ``channels_last`` (fp32, NHWC memory format), ``compile``
  (``torch.compile``, inductor, on channels-last), ``torchscript`` (traced, ``torch.jit.freeze`` +
  ``optimize_for_inference``), ``onnxruntime`` (ONNX export, ORT CPU, all graph optimisations),
  ``onnxruntime_int8`` (the same graph statically quantised to int8 by ORT's quantiser, calibrated on
  the benchmark image: its latency is real, its ``max |diff|`` is not an accuracy measure; score a
  calibrated ``densemtl export --int8`` file with ``densemtl predict --onnx`` + ``densemtl evaluate``).
* CUDA: ``eager``, ``channels_last``, ``compile``, ``fp16`` / ``bf16`` (half-precision weights and
  input, channels-last), ``fp16_cudagraph`` (the fp16 path captured in a CUDA graph).

Every path sees the same random image (RGB in [0, 1], batch 1); latency = median and 90th percentile of
``--runs`` timed passes after ``--warmup`` untimed ones, under ``torch.inference_mode`` (CUDA
synchronised around each pass). ``max |diff|`` is the largest abs difference of any output against the
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

import argparse
import datetime as _dt
import json
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

from densemtl.errors import ConfigError

__all__ = ["CPU_PATHS", "CUDA_PATHS", "SECTION", "add_arguments", "matmul_gflops", "run", "run_benchmark"]

SECTION = "## Deployment latency (densemtl benchmark)"
CPU_PATHS = ("eager", "channels_last", "compile", "torchscript", "onnxruntime", "onnxruntime_int8")
CUDA_PATHS = ("eager", "channels_last", "compile", "fp16", "bf16", "fp16_cudagraph")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
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
    """A zero-argument callable running one batch-1 inference along ``name``; returns task outputs."""
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
    if name in ("onnxruntime", "onnxruntime_int8"):
        from densemtl.inference.export import export_onnx, onnx_session, quantize_onnx_int8

        if dev.type != "cpu":
            raise ConfigError(f"{name} path runs on CPU only")
        path = tmp / "model.onnx"
        export_onnx(_clone(model), path, tuple(x.shape[-2:]))
        if name == "onnxruntime_int8":
            # calibrated on the benchmark image: the latency does not depend on the calibration data
            path = quantize_onnx_int8(path, tmp / "model_int8.onnx", [x.numpy()])
        session = onnx_session(path, threads)
        feed = {"image": x.numpy()}
        return lambda: tuple(torch.from_numpy(o) for o in session.run(None, feed))
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
        f"unknown benchmark path {name!r}; CPU: {', '.join(CPU_PATHS)}; CUDA: {', '.join(CUDA_PATHS)}"
    )


def _clone(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()


def run_benchmark(
    model: nn.Module,
    size: tuple[int, int] = (480, 640),
    paths: Sequence[str] | None = None,
    runs: int = 20,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    matmul_size: int = 1024,
) -> dict[str, Any]:
    """Time ``model`` along ``paths``; returns ``{"matmul_gflops", "macs", "rows": [...]}``."""
    from densemtl.analysis.profile import count_flops

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("benchmark: --device cuda requested but CUDA is not available")
    if runs < 1 or warmup < 0:
        raise ConfigError("benchmark: need --runs >= 1 and --warmup >= 0")
    paths = list(paths or (CUDA_PATHS if dev.type == "cuda" else CPU_PATHS))
    threads = torch.get_num_threads()
    model = model.eval().to(dev)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(dev)
    macs = count_flops(model, x) // 2
    with torch.inference_mode():
        reference = tuple(model(x)[t].float() for t in model.tasks)
    gflops_mm_before = matmul_gflops(matmul_size, device=dev)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in paths:
            row: dict[str, Any] = {"path": name}
            try:
                with torch.inference_mode():
                    fn = _build_path(name, model, x, Path(tmp), threads)
                    outs = fn()  # first call: compilation / graph capture, not timed
                    row["max_abs_diff"] = max(
                        float((o.float().to(r.device) - r).abs().max()) for o, r in zip(outs, reference)
                    )
                    times = _time(fn, runs, warmup, dev)
            except Exception as e:  # one failing path must not hide the others
                row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
                rows.append(row)
                continue
            median = statistics.median(times)
            eff = 2.0 * macs / (median / 1000.0) / 1e9
            row.update(
                latency_ms_median=median,
                latency_ms_p90=float(np.percentile(times, 90)),
                effective_gflops=eff,
            )
            rows.append(row)
    gflops_mm_after = matmul_gflops(matmul_size, device=dev)
    gflops_mm = max(gflops_mm_before, gflops_mm_after)
    for row in rows:
        if "effective_gflops" in row:
            row["fraction_of_matmul"] = row["effective_gflops"] / gflops_mm
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
        "rows": rows,
    }


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
        f"{result['warmup']} warm-up runs.",
        "",
        "| path | median (ms) | p90 (ms) | effective GFLOP/s | % matmul | max abs diff vs eager |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['path']} | error: {row['error']} | | | | |")
        else:
            lines.append(
                f"| {row['path']} | {row['latency_ms_median']:.1f} | {row['latency_ms_p90']:.1f} "
                f"| {row['effective_gflops']:.1f} | {100 * row['fraction_of_matmul']:.0f}% "
                f"| {row['max_abs_diff']:.1e} |"
            )
    return "\n".join(lines) + "\n"


def update_section(path: str | Path, section: str, heading: str = SECTION) -> None:
    """Replace (or append) the section starting with ``heading`` in the markdown file ``path``."""
    from densemtl.analysis.profile import update_markdown_section

    update_markdown_section(path, section, heading)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--model", default=None, help="registered model name or YAML config (default mt_refinenet)"
    )
    what.add_argument("--ckpt", default=None, help="training checkpoint to benchmark instead")
    parser.add_argument("--num-classes", type=int, default=40, help="semseg classes for --model (default 40)")
    parser.add_argument("--tasks", default="semseg,depth", help="tasks for --model (default semseg,depth)")
    parser.add_argument("--size", default="480x640", help="input HEIGHTxWIDTH (default 480x640)")
    parser.add_argument(
        "--paths",
        default=None,
        help=f"comma-separated paths (CPU default: {','.join(CPU_PATHS)}; "
        f"CUDA default: {','.join(CUDA_PATHS)})",
    )
    parser.add_argument("--runs", type=int, default=20, help="timed passes per path (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes per path (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch / ORT CPU threads (default: torch's)"
    )
    parser.add_argument(
        "--matmul-size", type=int, default=1024, help="n of the n x n matmul reference (default 1024)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown file whose benchmark section to rewrite"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    from densemtl.analysis.profile import machine_description, parse_size
    from densemtl.inference.export import load_for_export

    if args.threads:
        torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    name = args.ckpt or args.model or "mt_refinenet"
    model, _ = load_for_export(args.ckpt, None if args.ckpt else name, args.num_classes, args.tasks)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()] if args.paths else None
    result = run_benchmark(model, size, paths, args.runs, args.warmup, args.device, args.matmul_size)
    machine = machine_description(args.device)
    command = f"densemtl benchmark {'--ckpt' if args.ckpt else '--model'} {name} --size {args.size} --runs {args.runs}"
    command += f" --warmup {args.warmup} --device {args.device}"
    if args.paths:
        command += f" --paths {args.paths}"
    if args.threads:
        command += f" --threads {args.threads}"
    section = markdown_section(result, name, command, machine)
    print(section)
    if args.output:
        update_section(args.output, section)
        print(f"updated {args.output}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "command": command, **result}, indent=2) + "\n")
    return 1 if any("error" in r for r in result["rows"]) else 0
