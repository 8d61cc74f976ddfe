"""``densemtl benchmark --train``: steps/s of the real ``fit`` loop against the bare optimiser step.

::

    densemtl benchmark --train --config configs/demo.yaml --output docs/benchmarks.md

One process, one ``Trainer.fit`` of the config (its data module, validation, logging, image panels,
checkpointing and progress output, as ``densemtl fit`` would run them). Two paths are timed:

* **bare**: a copy of the module taken before the first training step, one training batch taken
  from the train loader and kept, then ``forward -> losses -> weighting -> backward -> optimiser
  step -> zero_grad -> scheduler step`` on that batch, with the optimiser and scheduler of the copy's
  ``configure_optimizers``. No data loading, no logging, no callbacks: the model's own cost.
* **loop**: the wall time between the starts of consecutive training batches of the fit itself, so
  each step carries one batch fetch, the training step, logging, callbacks and (when it falls there)
  validation with its checkpoint. The difference to the bare step is what the data pipeline and the
  engine cost.

The paths are interleaved in rounds inside the one fit (``bare, loop, bare, loop, ...``): before
the loop's round ``r`` a callback runs bare round ``r`` (``--steps`` timed steps after one untimed
one), so a slow spell of a shared machine hits both alike. The first ``--warmup_steps`` steps of
each path are not timed. Per round: steps/s of each path and the ratio loop / bare; reported are
the medians over the rounds and their ranges. The loop's rate excludes validation (each validation
is timed from its start to the next training batch: the validation loop, its panels and the
checkpoint it triggers); with validation is that rate with the measured validation time spread
over the config's validation interval (``val_check_interval``). The fit runs
``warmup + rounds x steps + 1`` optimiser steps (the config's ``max_steps`` is replaced, so the
learning-rate schedule is shorter than the recipe's; the cost of a step is not). ``--steps`` defaults to the
config's ``log_every_n_steps``: each round then holds one write of the logged metrics.

For the whole measurement glibc's malloc keeps freed memory (fixed mmap and trim thresholds,
:func:`keep_freed_memory`). Left dynamic, whether the gradients and optimiser temporaries freed in
a step go back to the OS, to be page-faulted in again by the next step, depends on what else lies
above them in the heap: in one small test config the repeated bare step faulted in ~60 MB per step
and the fit loop almost none (after a change of order in the bare step, both did), a 10 %
difference that belongs to neither path. The minor page faults per step of both paths are reported,
so a remaining difference of that kind shows.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import datetime as _dt
import json
import os
import resource
import shlex
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from densemtl.analysis.profile import synchronize
from densemtl.errors import ConfigError, DenseMTLError

__all__ = [
    "SECTION",
    "ThroughputTimer",
    "check_counts",
    "command_line",
    "keep_freed_memory",
    "markdown_section",
    "measure_train_throughput",
    "throughput_overrides",
    "update_subsection",
    "write_json",
]

SECTION = "## Training throughput (densemtl benchmark --train)"
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Fix glibc malloc's trim threshold (1 GiB) and mmap threshold (32 MiB, its maximum), so freed
    heap memory is reused instead of returned to the OS and faulted in again; False where the C
    library is not glibc (nothing changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return False
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def check_counts(steps: int, warmup_steps: int, rounds: int) -> None:
    if steps < 1:
        raise ConfigError(f"benchmark --train: --steps must be >= 1, got {steps}")
    if rounds < 1:
        raise ConfigError(f"benchmark --train: --rounds must be >= 1, got {rounds}")
    if warmup_steps < 0:
        raise ConfigError(f"benchmark --train: --warmup_steps must be >= 0, got {warmup_steps}")


def throughput_overrides(config: str | Path, root: str | Path, extra: Sequence[str] = ()) -> list[str]:
    """LightningCLI arguments of a throughput run: the config, its overrides and a scratch
    ``default_root_dir`` (logs and checkpoints go there)."""
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"--config {config}: file not found")
    return ["--config", str(path), *extra, "--trainer.default_root_dir", str(root)]


def _clone_batch(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.clone()
    if isinstance(batch, dict):
        return {k: _clone_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_clone_batch(v) for v in batch)
    return copy.deepcopy(batch)


def _optimizer_and_scheduler(configured: Any) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser and (per-step) scheduler of a ``configure_optimizers`` return value."""
    if isinstance(configured, torch.optim.Optimizer):
        return configured, None
    if isinstance(configured, dict):
        scheduler = configured.get("lr_scheduler")
        if isinstance(scheduler, dict):
            scheduler = scheduler.get("scheduler")
        return configured["optimizer"], scheduler
    if isinstance(configured, (list, tuple)) and configured:
        optimizers = configured[0] if isinstance(configured[0], (list, tuple)) else [configured[0]]
        schedulers = configured[1] if len(configured) > 1 else []
        scheduler = schedulers[0] if schedulers else None
        return optimizers[0], scheduler.get("scheduler") if isinstance(scheduler, dict) else scheduler
    raise DenseMTLError(
        f"benchmark --train: cannot read configure_optimizers()'s {type(configured).__name__}"
    )


def _parameter_vector(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().float().cpu() for p in module.parameters()])


class ThroughputTimer(Callback):
    """Times the fit's training batches and, before each round of them, a round of bare steps.

    Batch ``b`` of the fit (0-based): the first ``warmup_steps`` are the loop's warm-up; the bare
    path warms up with as many untimed steps before its first round. Loop round ``r`` is batches
    ``warmup + r * steps ... + steps - 1``; bare round ``r`` runs at the start of its first batch.
    """

    def __init__(self, steps: int, warmup_steps: int, rounds: int) -> None:
        check_counts(steps, warmup_steps, rounds)
        self.steps, self.warmup_steps, self.rounds = steps, warmup_steps, rounds
        self.batches = 0
        self.loop_train_s = [0.0] * rounds
        self.loop_total_s = [0.0] * rounds
        self.loop_counted = [0] * rounds
        self.validation_s: list[float] = []
        self.loop_faults = 0
        self.bare_faults = 0
        self.bare_s: list[float] = []
        self.bare_steps = 0
        self.bare_module: Any = None
        self.initial_parameters: torch.Tensor | None = None
        self._bare_step: Callable[[], None] | None = None
        self._mark = 0.0
        self._mark_faults = 0
        self._validation_start: float | None = None
        self._device = torch.device("cpu")

    @property
    def timed_end(self) -> int:
        return self.warmup_steps + self.rounds * self.steps

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        b = self.batches
        offset = b - self.warmup_steps
        boundary = offset >= 0 and offset % self.steps == 0
        if boundary:
            synchronize(self._device)
        now = time.perf_counter()
        if b > 0:
            self._close_step(b - 1, now)
        if b == 0:
            self._prepare_bare(trainer, pl_module, batch)
        if boundary and offset // self.steps < self.rounds:
            self._bare_round(self.warmup_steps if offset == 0 else 1)
        self.batches += 1
        self._validation_start = None
        self._mark_faults = _faults()
        self._mark = time.perf_counter()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking and self.batches:
            self._validation_start = time.perf_counter()

    def _close_step(self, step: int, now: float) -> None:
        if not self.warmup_steps <= step < self.timed_end:
            return
        total = now - self._mark
        train = total if self._validation_start is None else self._validation_start - self._mark
        r = (step - self.warmup_steps) // self.steps
        self.loop_faults += _faults() - self._mark_faults
        self.loop_train_s[r] += train
        self.loop_total_s[r] += total
        self.loop_counted[r] += 1
        if self._validation_start is not None:
            self.validation_s.append(now - self._validation_start)

    def _prepare_bare(self, trainer: Any, pl_module: Any, batch: Any) -> None:
        self._device = pl_module.device
        bare = copy.deepcopy(pl_module)  # LightningModule.__getstate__ drops the trainer reference
        bare.trainer = trainer  # configure_optimizers reads trainer.estimated_stepping_batches
        try:
            optimizer, scheduler = _optimizer_and_scheduler(bare.configure_optimizers())
        finally:
            bare.trainer = None
        bare.train()
        kept = _clone_batch(batch)
        precision = trainer.precision_plugin
        self.bare_module = bare
        self.initial_parameters = _parameter_vector(bare)

        def step() -> None:
            with torch.enable_grad():
                with precision.train_step_context():
                    terms = bare.compute_losses(bare(kept["image"]), kept)
                    loss = bare.weighted_loss(terms)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            self.bare_steps += 1

        self._bare_step = step

    def _bare_round(self, warmup: int) -> None:
        assert self._bare_step is not None
        for _ in range(warmup):
            self._bare_step()
        synchronize(self._device)
        faults, start = _faults(), time.perf_counter()
        for _ in range(self.steps):
            self._bare_step()
        synchronize(self._device)
        self.bare_s.append(time.perf_counter() - start)
        self.bare_faults += _faults() - faults

    def weight_change(self) -> float:
        """Relative L2 change of the bare copy's parameters since the copy was taken."""
        if self.bare_module is None or self.initial_parameters is None:
            return 0.0
        now = _parameter_vector(self.bare_module)
        return float((now - self.initial_parameters).norm() / self.initial_parameters.norm().clamp_min(1e-12))


def _validation_every(trainer: Any) -> float | None:
    """Training batches between two validations of ``trainer`` (None: none, or time-based)."""
    if getattr(trainer, "_val_check_time_interval", None) is not None or not trainer.limit_val_batches:
        return None
    every = trainer.val_check_batch
    if every is None or every == float("inf"):
        return None
    return float(every) * float(trainer.check_val_every_n_epoch or 1)


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": list(values),
    }


def _settings(trainer: Any, module: Any, data: Any) -> dict[str, Any]:
    hp, dp = module.hparams, getattr(data, "hparams", {})
    options = hp.get("model_options") or {}
    backbone = options.get("backbone")
    if isinstance(backbone, dict):
        backbone = backbone.get("name")
    return {
        "model": hp.get("model"),
        "backbone": backbone,
        "tasks": list(hp.get("tasks", [])),
        "optimizer": hp.get("optimizer"),
        "weighting": hp.get("weighting"),
        "dataset": dp.get("dataset"),
        "image_size": list(dp.get("image_size", [])),
        "batch_size": dp.get("batch_size"),
        "num_workers": dp.get("num_workers"),
        "cache_in_memory": dp.get("cache_in_memory"),
        "log_images": hp.get("log_images"),
        "log_every_n_steps": trainer.log_every_n_steps,
        "validation_every": _validation_every(trainer),
        "precision": str(trainer.precision),
        "device": str(module.device),
        "train_batches_per_epoch": trainer.num_training_batches,
    }


def measure_train_throughput(
    trainer: Any, module: Any, data: Any, steps: int | None, warmup_steps: int, rounds: int
) -> dict[str, Any]:
    """Fit ``module`` on ``data`` with ``trainer`` (built from :func:`throughput_overrides`) for
    ``warmup_steps + rounds * steps + 1`` optimiser steps while timing both paths; returns the
    JSON-able results (steps/s medians, ratios, settings).

    ``steps=None``: the trainer's ``log_every_n_steps``, so that every round holds one write of
    the logged metrics (a round without one would make the loop look cheaper than it is).
    """
    steps = int(trainer.log_every_n_steps) if steps is None else steps
    check_counts(steps, warmup_steps, rounds)
    if int(getattr(trainer, "accumulate_grad_batches", 1)) != 1:
        raise ConfigError(
            "benchmark --train compares one batch to one optimiser step: set accumulate_grad_batches 1"
        )
    if getattr(trainer, "world_size", 1) != 1:
        raise ConfigError("benchmark --train times one process: set --trainer.devices 1")
    timer = ThroughputTimer(steps, warmup_steps, rounds)
    trainer.callbacks.append(timer)
    # the recipe's budget would run on: stop one step after the timed ones
    trainer.fit_loop.epoch_loop.max_steps = timer.timed_end + 1
    trainer.fit_loop.max_epochs = -1
    kept_memory = keep_freed_memory()
    load_before = os.getloadavg()
    trainer.fit(module, datamodule=data)
    load_after = os.getloadavg()
    if timer.loop_counted != [steps] * rounds or len(timer.bare_s) != rounds:
        raise DenseMTLError(
            f"benchmark --train: the fit stopped after {timer.batches} training batches, before the "
            f"{timer.timed_end} the measurement needs (check the config's max_time / limit_train_batches)"
        )
    bare = [steps / s for s in timer.bare_s]
    loop = [steps / s for s in timer.loop_train_s]
    ratios = [lo / ba for lo, ba in zip(loop, bare)]
    settings = _settings(trainer, module, data)
    result: dict[str, Any] = {
        "steps": steps,
        "warmup_steps": warmup_steps,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "date": _dt.date.today().isoformat(),
        "malloc_keeps_freed_memory": kept_memory,
        "settings": settings,
        "bare": {
            "steps_per_s": _spread(bare),
            "steps_run": timer.bare_steps,
            "weight_change": timer.weight_change(),
            "page_faults_per_step": timer.bare_faults / (steps * rounds),
        },
        "loop": {
            "steps_per_s": _spread(loop),
            "steps_run": int(trainer.global_step),
            "timed_steps": sum(timer.loop_counted),
            "page_faults_per_step": timer.loop_faults / (steps * rounds),
            "validations": len(timer.validation_s),
            "validation_s": timer.validation_s,
        },
        "ratio": _spread(ratios),
    }
    every = settings["validation_every"]
    if timer.validation_s and every:
        per_step = statistics.mean(timer.validation_s) / every
        with_validation = 1.0 / (1.0 / statistics.median(loop) + per_step)
        result["loop"]["with_validation_steps_per_s"] = with_validation
        result["ratio_with_validation"] = with_validation / statistics.median(bare)
    return result


def command_line(
    config: str, steps: int, warmup_steps: int, rounds: int, threads: int | None, extra: Sequence[str]
) -> str:
    """The ``densemtl benchmark --train`` command that reproduces a run (written into the report)."""
    command = f"densemtl benchmark --train --config {config} --steps {steps} --warmup_steps {warmup_steps} --rounds {rounds}"
    if threads:
        command += f" --threads {threads}"
    if extra:
        command += " -- " + " ".join(shlex.quote(a) for a in extra)
    return command


def _rate(spread: dict[str, Any]) -> tuple[str, str]:
    return f"{spread['median']:.2f}", f"{spread['min']:.2f}-{spread['max']:.2f}"


def subsection_heading(config: str, result: dict[str, Any]) -> str:
    s = result["settings"]
    h, w = s["image_size"] or ("?", "?")
    model = s["model"] + (f" ({s['backbone']})" if s.get("backbone") else "")
    return f"### {Path(config).name}: {model}, {s['dataset']} at {h}x{w}, batch {s['batch_size']}"


def markdown_section(result: dict[str, Any], config: str, command: str, machine: str) -> str:
    """A ``### <config>`` subsection: command, machine, settings and the table of both paths."""
    s, loop = result["settings"], result["loop"]
    every = s["validation_every"]
    cache = ", decoded once into memory" if s["cache_in_memory"] else ", decoded per sample"
    validation = f"validation every {every:g} steps" if every else "no validation"
    load = result["load_average"]
    lines = [
        subsection_heading(config, result),
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; load average {load[0]:.2f} at the start, {load[1]:.2f} at the end  ",
        f"Date: {result['date']}",
        "",
        f"{s['dataset']}{cache}, {s['num_workers']} loader workers; {s['optimizer']}, {s['weighting']} "
        f"weighting; {validation}, {s['log_images']} image panels per validation, metrics logged every "
        f"{s['log_every_n_steps']} steps; precision {s['precision']}, {s['device']}. "
        f"{result['rounds']} rounds of {result['steps']} steps per path, interleaved, after "
        f"{result['warmup_steps']} warm-up steps.",
        "",
        "| path | steps/s (median) | range over rounds | x bare (median, range) |",
        "|---|---:|---:|---:|",
    ]
    bare, bare_range = _rate(result["bare"]["steps_per_s"])
    lines.append(f"| bare step (one kept batch) | {bare} | {bare_range} | 1.00 |")
    rate, rate_range = _rate(loop["steps_per_s"])
    ratio = result["ratio"]
    lines.append(
        f"| fit loop, validation excluded | {rate} | {rate_range} "
        f"| {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) |"
    )
    if "with_validation_steps_per_s" in loop:
        mean = statistics.mean(loop["validation_s"])
        lines.append(
            f"| fit loop with validation ({mean:.1f} s every {every:g} steps) "
            f"| {loop['with_validation_steps_per_s']:.2f} | | {result['ratio_with_validation']:.2f} |"
        )
    else:
        lines.append("| fit loop with validation | not measured: no validation inside the timed steps | | |")
    kept = "kept by malloc" if result.get("malloc_keeps_freed_memory") else "malloc left as it is"
    lines += [
        "",
        f"Minor page faults per step (freed memory {kept}): bare {result['bare']['page_faults_per_step']:.0f}, "
        f"loop {loop['page_faults_per_step']:.0f}.",
    ]
    return "\n".join(lines) + "\n"


def update_subsection(path: str | Path, subsection: str, parent: str = SECTION) -> None:
    """Replace (or add) the ``### `` subsection of ``path`` whose heading is ``subsection``'s first
    line, inside the ``## `` section ``parent`` (added at the end of the file when absent)."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else ["# Benchmarks"]
    new = subsection.rstrip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == parent), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", parent, "", *new]
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        own = next((j for j in range(start + 1, end) if lines[j].strip() == new[0]), None)
        if own is None:
            body = lines[start:end]
            while body and not body[-1].strip():
                body.pop()
            block = [*body, "", *new]
        else:
            stop = next((j for j in range(own + 1, end) if lines[j].startswith(("### ", "## "))), end)
            block = [*lines[start:own], *new, *([""] if stop < end else []), *lines[stop:end]]
        tail = lines[end:]
        lines = lines[:start] + block + ([""] if tail else []) + tail
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


def write_json(path: str | Path, result: dict[str, Any], machine: str, command: str) -> None:
    Path(path).write_text(json.dumps({"machine": machine, "command": command, **result}, indent=2) + "\n")
