"""``densemtl profile``: parameters, MACs / FLOPs, latency, throughput and peak memory of a network.

Conventions (also written into every report):

* **params**: exact count of ``model.parameters()``; **params_mi** = params / 2^20, the "Mi" unit
  Luo & Ye 2023 report (so 1 Mi = 1,048,576 parameters, not 10^6).
* **MACs** (multiply-accumulates) per image, counted with ``torch.utils.flop_counter.FlopCounterMode``
  over one forward pass at batch 1. It counts convolutions, matmuls / linear layers and attention; it
  does not count normalisation, activations, pooling, interpolation or element-wise ops, like the
  usual paper tables. Its "FLOPs" are 2 x MACs; papers' "GFLOPs" are usually multiply-adds, i.e.
  our **GMACs** (ResNet-50 at 224x224: 4.09 GMACs = "4.1 GFLOPs" in most papers).
* **latency**: median and 90th percentile over ``runs`` timed forward passes after ``warmup``
  untimed ones, ``model.eval()`` under ``torch.inference_mode()`` (CUDA synchronised around each
  pass); **throughput** = batch / median latency, in images/s.
* **peak memory**, over the warm-up and timed passes (the first passes are the ones that allocate):
  on CUDA ``torch.cuda.max_memory_allocated`` (weights, input, activations and workspace held by
  tensors). On CPU the growth of the process's resident set (RSS) over its size just before the
  passes, i.e. what running the model adds on top of the loaded model (activations, workspace,
  kernel caches): freed heap is first handed back to the OS (glibc ``malloc_trim``), then the peak
  is read from ``/proc/self/status`` ``VmHWM`` after resetting it through ``/proc/self/clear_refs``
  (Linux); elsewhere from ``resource.getrusage`` ``ru_maxrss``, which only shows growth beyond the
  process's earlier peak. ``weights_mb`` gives the parameter and buffer bytes separately,
  ``peak_rss_mb`` the whole process's peak.

``--model`` is a backbone name (profiles its ``features_only`` encoder: ``forward_features`` without
the classifier), a YAML config (its ``model:`` section is passed to ``densemtl.models.build_model``)
or a registered model name (built with ``--tasks`` / ``--num-classes``). ``--all`` profiles every
registered backbone and model and rewrites the ``## Model cost (densemtl profile)`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from densemtl.errors import ConfigError, DataError

__all__ = [
    "BENCHMARK_SECTION",
    "benchmark_section",
    "count_flops",
    "machine_description",
    "parse_tasks",
    "print_result",
    "profile_model",
    "profile_registered",
    "registered_names",
    "resolve_model",
    "update_benchmarks_section",
]

BENCHMARK_SECTION = "## Model cost (densemtl profile)"
TASK_CHANNELS = {"semseg": None, "depth": 1, "normals": 3}  # semseg channels = --num-classes
JSON_KEYS = (
    "params",
    "params_mi",
    "macs",
    "flops",
    "latency_ms_median",
    "latency_ms_p90",
    "throughput",
    "peak_memory_mb",
)


# ----------------------------------------------------------------------------- measurement


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one ``model(example)`` as ``FlopCounterMode`` counts them (2 x MACs for conv / matmul)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(example)
    return int(counter.get_total_flops())


def _read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _read_status_kb("VmHWM") is not None
    except OSError:
        return False


def _release_free_heap() -> None:
    """Collect garbage and hand freed heap memory back to the OS (glibc ``malloc_trim``), so memory
    cached from earlier work does not hide the growth of the next measurement."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _maxrss_kb() -> int:
    try:
        import resource  # POSIX only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU. Every timer here calls it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_model(
    model: nn.Module,
    input_size: tuple[int, int] | Sequence[int] = (480, 640),
    batch: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 3,
    runs: int = 10,
) -> dict[str, Any]:
    """Measure ``model`` on random ``[batch, 3, H, W]`` images in [0, 1] (see the module docstring).

    The model is put in eval mode and moved to ``device``. Returns a JSON-ready dict with at least
    ``params``, ``params_mi``, ``macs``, ``flops`` (both per image), ``latency_ms_median``,
    ``latency_ms_p90``, ``throughput`` (images/s), ``peak_memory_mb`` and ``peak_memory_kind``.
    """
    h, w = (int(v) for v in input_size)
    if batch < 1 or runs < 1 or warmup < 0 or h < 1 or w < 1:
        raise ConfigError(
            f"profile: need batch >= 1, runs >= 1, warmup >= 0, size > 0 (got {batch}, {runs}, {warmup}, {h}x{w})"
        )
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("profile: --device cuda requested but CUDA is not available")
    model = model.eval().to(dev)
    params = sum(p.numel() for p in model.parameters())
    weights_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, h, w, generator=gen).to(dev)

    # peak memory spans warm-up and timed runs: the first passes are the ones that allocate
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        mem_kind, rss_before = "cuda_max_allocated", None
    else:
        _release_free_heap()
        rss_before = _read_status_kb("VmRSS")
        if rss_before is not None and _reset_peak_rss():
            mem_kind = "cpu_rss_growth"
        else:
            rss_before, mem_kind = _maxrss_kb(), "cpu_maxrss_growth"
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            synchronize(dev)
            t0 = time.perf_counter()
            model(x)
            synchronize(dev)
            times.append((time.perf_counter() - t0) * 1000.0)
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    elif mem_kind == "cpu_rss_growth":
        peak_mb = max(0, (_read_status_kb("VmHWM") or 0) - (rss_before or 0)) / 1024
    else:
        peak_mb = max(0, _maxrss_kb() - (rss_before or 0)) / 1024
    peak_rss_mb = (_read_status_kb("VmHWM") or _maxrss_kb()) / 1024
    flops = count_flops(model, x[:1])

    median = statistics.median(times)
    result: dict[str, Any] = {
        "params": params,
        "params_mi": params / 2**20,
        "macs": flops // 2,
        "flops": flops,
        "gmacs": flops / 2 / 1e9,
        "gflops": flops / 1e9,
        "latency_ms_median": median,
        "latency_ms_p90": float(np.percentile(times, 90)),
        "latency_ms_min": min(times),
        "throughput": batch * 1000.0 / median,
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": mem_kind,
        "weights_mb": weights_bytes / 2**20,
        "input_size": [h, w],
        "batch": batch,
        "device": str(dev),
        "warmup": warmup,
        "runs": runs,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "convention": "macs/flops per image; flops = 2 x macs (FlopCounterMode); params_mi = params / 2**20",
    }
    if dev.type == "cpu":
        result["peak_rss_mb"] = peak_rss_mb
    return result


# ----------------------------------------------------------------------------- model resolution


def parse_tasks(text: str | Sequence[str], num_classes: int = 40) -> dict[str, int]:
    """``"semseg,depth"`` -> ``{"semseg": num_classes, "depth": 1}`` (normals: 3 channels)."""
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t) for t in text]
    names = [t for t in names if t]
    unknown = [t for t in names if t not in TASK_CHANNELS]
    if unknown or not names:
        raise ConfigError(f"--tasks: unknown or empty task list {text!r}; known: {', '.join(TASK_CHANNELS)}")
    return {t: (num_classes if TASK_CHANNELS[t] is None else TASK_CHANNELS[t]) for t in names}


def _models_registry() -> tuple[Any, Any]:
    """The ``MODELS`` registry (fully populated) and ``build_model``, or (None, None) if unavailable."""
    try:
        import densemtl.models as models
    except ImportError:
        return None, None
    if not hasattr(models, "MODELS") or not hasattr(models, "build_model"):
        return None, None
    if callable(getattr(models, "model_names", None)):
        models.model_names()  # imports every architecture module, filling MODELS
    return models.MODELS, models.build_model


def _init_args(section: Any) -> Any:
    if isinstance(section, dict) and isinstance(section.get("init_args"), dict):
        return section["init_args"]  # LightningCLI class_path / init_args form
    return section


def _config_model(
    cfg: Any, path: Path, tasks: str | Sequence[str], num_classes: int
) -> tuple[str, dict[str, int], dict[str, Any]]:
    """(architecture name, task channels, build kwargs) from a config's ``model:`` section.

    Understands the training config (``model: {model: NAME, tasks: [...], num_classes: N,
    model_options: {...}}``, as ``densemtl fit`` reads it, optionally under ``init_args``) and a bare
    ``model: {name: NAME, tasks: ..., **kwargs}``. ``num_classes`` comes from the model section, else
    ``data:``, else the command line.
    """
    section = _init_args(cfg.get("model")) if isinstance(cfg, dict) else None
    if not isinstance(section, dict):
        raise DataError(path, "has no `model:` mapping to build a model from")
    data = _init_args(cfg.get("data"))
    if isinstance(section.get("model"), str):
        name = section["model"]
        kwargs = dict(section.get("model_options") or {})
    else:
        if isinstance(section.get("model"), dict):
            section = _init_args(section["model"])
        if not isinstance(section.get("name"), str):
            raise DataError(path, "`model:` section names no architecture (`model: NAME` or `name: NAME`)")
        name = section["name"]
        kwargs = {k: v for k, v in section.items() if k not in ("name", "tasks", "num_classes")}
    n = section.get("num_classes")
    if n is None and isinstance(data, dict):
        n = data.get("num_classes")
    n = int(n) if n is not None else num_classes
    tasks_cfg = section.get("tasks")
    channels = dict(tasks_cfg) if isinstance(tasks_cfg, dict) else parse_tasks(tasks_cfg or tasks, n)
    if isinstance(kwargs.get("backbone"), dict):
        kwargs["backbone"] = {**kwargs["backbone"], "weights": None}  # weights do not change the cost
    return name, channels, kwargs


def resolve_model(
    spec: str, tasks: str | Sequence[str] = "semseg,depth", num_classes: int = 40
) -> tuple[nn.Module, str]:
    """Build what ``--model`` names; returns (module, short description).

    A backbone name -> its ``features_only`` encoder; a ``.yaml`` / ``.yml`` path -> the model of its
    ``model:`` section (weights files named there are not loaded: they do not change the cost); any
    other name -> the registered model built with ``tasks``.
    """
    from densemtl.models.backbones import BACKBONES, build_backbone

    if spec in BACKBONES:
        return build_backbone(spec, features_only=True), "backbone"
    path = Path(spec)
    registry, build_model = _models_registry()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise DataError(path, "config file not found")
        import yaml

        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise DataError(path, f"invalid YAML ({' '.join(str(e).split())[:160]})") from None
        name, channels, kwargs = _config_model(cfg, path, tasks, num_classes)
        if build_model is None:
            raise ConfigError(
                "profile: densemtl.models.build_model is not available to build a config's model"
            )
        return build_model(name, tasks=channels, **kwargs), f"model {name} (config)"
    if registry is None or spec not in registry:
        models = ", ".join(registry.names()) if registry is not None else "(none available)"
        raise ConfigError(
            f"profile: unknown model {spec!r}; backbones: {', '.join(BACKBONES.names())}; "
            f"models: {models}; or the path of a .yaml config"
        )
    return build_model(spec, tasks=parse_tasks(tasks, num_classes)), "model"


# ----------------------------------------------------------------------------- reporting


def machine_description(device: str | torch.device = "cpu") -> str:
    """One line: CPU model, visible cores, torch threads, torch / Python versions (and the GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    text = (
        f"{cpu}, {cores} cores visible, torch threads: {torch.get_num_threads()}; "
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}"
    )
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def print_result(name: str, kind: str, res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    h, w = res["input_size"]
    table = Table(title=f"{name} ({kind}) at {h}x{w}, batch {res['batch']}, {res['device']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("params", f"{_fmt_int(res['params'])}  ({res['params_mi']:.2f} Mi = /2^20)")
    table.add_row("MACs / image", f'{res["gmacs"]:.3f} G  (papers\' "GFLOPs")')
    table.add_row("FLOPs / image", f"{res['gflops']:.3f} G  (= 2 x MACs)")
    table.add_row("latency median", f"{res['latency_ms_median']:.2f} ms")
    table.add_row("latency p90", f"{res['latency_ms_p90']:.2f} ms")
    table.add_row("throughput", f"{res['throughput']:.2f} images/s")
    table.add_row("peak memory", f"{res['peak_memory_mb']:.1f} MB ({res['peak_memory_kind']})")
    table.add_row("weights", f"{res['weights_mb']:.1f} MB")
    Console().print(table)


def _markdown_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | kind | params | params (Mi) | GMACs | GFLOPs | latency median (ms) | latency p90 (ms) "
        "| images/s | peak mem (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | {row['kind']} | error: {row['error']} |||||||| |")
            continue
        lines.append(
            f"| {row['name']} | {row['kind']} | {_fmt_int(row['params'])} | {row['params_mi']:.2f} "
            f"| {row['gmacs']:.2f} | {row['gflops']:.2f} | {row['latency_ms_median']:.1f} "
            f"| {row['latency_ms_p90']:.1f} | {row['throughput']:.2f} | {row['peak_memory_mb']:.0f} |"
        )
    return lines


def benchmark_section(rows: list[dict[str, Any]], command: str, machine: str) -> str:
    """The markdown of the ``## Model cost (densemtl profile)`` section."""
    first = next((r for r in rows if "error" not in r), None)
    mem = first["peak_memory_kind"] if first else "n/a"
    lines = [
        BENCHMARK_SECTION,
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Date: {_dt.date.today().isoformat()}",
        "",
        "Backbones are profiled as `features_only` encoders (no classifier); models with the tasks of "
        "the command. GMACs = multiply-accumulates per image counted by `torch.utils.flop_counter` "
        "(convolutions and matmuls; norms, activations, pooling and resizing not counted); GFLOPs = "
        '2 x GMACs. Papers\' "GFLOPs" are usually multiply-adds, i.e. the GMACs column. params (Mi) '
        "= params / 2^20, as Luo & Ye 2023 report. Latency: median / p90 of warm forward passes "
        "(eval, `torch.inference_mode`); it depends on the machine and its load, so compare rows of one "
        f"run only. Peak memory: `{mem}` (see `densemtl/analysis/profile.py`).",
        "",
        *_markdown_rows(rows),
        "",
    ]
    return "\n".join(lines)


def update_markdown_section(path: str | Path, section: str, heading: str) -> None:
    """Replace (or append) the section starting with ``heading`` in the markdown file ``path``."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else ["# Benchmarks", ""]
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    new = section.rstrip("\n").splitlines()
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *new]
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        tail = lines[end:]
        lines = lines[:start] + new + ([""] if tail else []) + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


def update_benchmarks_section(path: str | Path, section: str) -> None:
    """Replace (or append) the ``## Model cost (densemtl profile)`` section of ``path``, keeping the rest."""
    update_markdown_section(path, section, BENCHMARK_SECTION)


def registered_names() -> list[tuple[str, str]]:
    """``(name, "backbone" | "model")`` for every registered backbone, then every registered model."""
    from densemtl.models.backbones import BACKBONES

    registry, _ = _models_registry()
    names = [(n, "backbone") for n in BACKBONES.names()]
    return names + [(n, "model") for n in (registry.names() if registry is not None else [])]


def profile_registered(tasks: str, num_classes: int, log: Any = print, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`profile_model` of every registered backbone and model (``kwargs``: its options).

    A network that fails to build or run gets an ``error`` row instead of numbers.
    """
    rows: list[dict[str, Any]] = []
    for name, kind in registered_names():
        log(f"profiling {kind} {name} ...")
        try:
            model, _kind = resolve_model(name, tasks, num_classes)
            rows.append({"name": name, "kind": kind, **profile_model(model, **kwargs)})
            del model
        except Exception as e:  # one broken model must not hide the others' numbers
            reason = " ".join(str(e).split())[:200]
            rows.append({"name": name, "kind": kind, "error": f"{type(e).__name__}: {reason}"})
    return rows
