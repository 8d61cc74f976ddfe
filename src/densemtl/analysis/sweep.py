"""Resumable sweeps: one Lightning run per (model, weighting, seed), each in its own folder.

A run folder (``<output>/runs/<model>[/<weighting>]/seed_<s>/``) holds ``sweep_run.json`` (the run's
spec and its config hash, written before it starts), the LightningCLI ``config.yaml``, the
CSVLogger's ``metrics.csv``, ``checkpoints/last.ckpt`` (saved every ``checkpoint_every`` optimiser
steps, so a sweep that dies loses at most one interval), ``test_metrics.json`` (written by the
module when testing ends), ``per_class_iou.json`` and ``result.json`` (steps, wall and CPU training
time of the last attempt, the step it resumed from, threads).

Rerunning a sweep looks at each folder: **finished** (``test_metrics.json`` exists and the recorded
hash is the spec's) is skipped; **partial** (same hash, no test metrics) resumes from its
``checkpoints/last.ckpt`` (an explicit path: ``fit(ckpt_path=...)``); a folder made with another
config is an error rather than a silent mix of two recipes.

Launchers: :func:`launch_local` runs the runs one after another in this process, or N at a time as
subprocesses (``python -m densemtl.cli.sweep_run RUN_DIR``), each pinned to its share of CPU threads
(``OMP_NUM_THREADS`` and ``torch.set_num_threads``) or GPUs (``CUDA_VISIBLE_DEVICES``);
:func:`launch_slurm` submits each run as a Slurm job with submitit (its local executor runs the same
code path on this machine). A run on several GPUs is Lightning DDP inside its job
(``--trainer.devices N`` in the overrides).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from densemtl.errors import ConfigError

__all__ = [
    "SPEC_FILE",
    "RunSpec",
    "launch_local",
    "launch_slurm",
    "prepare_runs",
    "run_state",
]

SPEC_FILE = "sweep_run.json"
RESULT_FILE = "result.json"
METRICS_FILE = "test_metrics.json"
PER_CLASS_FILE = "per_class_iou.json"


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep: the shared recipe plus what this run changes."""

    model: str
    seed: int
    config: str
    weighting: str | None = None
    max_steps: int | None = None
    overrides: tuple[str, ...] = ()
    model_options: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 50

    @property
    def label(self) -> str:
        return self.model if self.weighting is None else f"{self.model}+{self.weighting}"

    def folder(self, output: str | Path) -> Path:
        parts = [self.model] + ([self.weighting] if self.weighting else [])
        return Path(output, "runs", *parts, f"seed_{self.seed}")

    def config_hash(self) -> str:
        """SHA-256 (16 hex digits) of everything that changes the run's numbers.

        The recipe's text (not its path), model, weighting, seed, step budget, overrides and model
        options; not the checkpoint interval or the launcher, which change only how it is run.
        """
        content = {
            "recipe": Path(self.config).read_text(),
            "model": self.model,
            "weighting": self.weighting,
            "seed": self.seed,
            "max_steps": self.max_steps,
            "overrides": list(self.overrides),
            "model_options": self.model_options,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def arguments(self, run_dir: Path) -> list[str]:
        """LightningCLI arguments of this run (the recipe, then this run's changes, then overrides)."""
        logger = {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(run_dir), "name": "", "version": ""},
        }
        arguments = ["--config", self.config, "--model.model", self.model]
        arguments += ["--seed_everything", str(self.seed)]
        arguments += ["--trainer.default_root_dir", str(run_dir), "--trainer.logger", json.dumps(logger)]
        if self.weighting is not None:
            arguments += ["--model.weighting", self.weighting]
        if self.max_steps is not None:
            arguments += ["--trainer.max_steps", str(self.max_steps)]
        if self.model_options:  # the recipe's model_options with this model's own on top
            import yaml

            recipe = yaml.safe_load(Path(self.config).read_text()) or {}
            base = dict((recipe.get("model") or {}).get("model_options") or {})
            arguments += ["--model.model_options", json.dumps({**base, **self.model_options})]
        return arguments + list(self.overrides)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "overrides": list(self.overrides), "config_hash": self.config_hash()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        fields = {k: v for k, v in data.items() if k != "config_hash"}
        return cls(**{**fields, "overrides": tuple(fields.get("overrides", ()))})


def run_state(spec: RunSpec, run_dir: Path) -> str:
    """``"finished"``, ``"partial"`` (started, not tested) or ``"new"``; ConfigError on another config."""
    spec_file = run_dir / SPEC_FILE
    if not spec_file.is_file():
        return "new"
    recorded = json.loads(spec_file.read_text()).get("config_hash")
    if recorded != spec.config_hash():
        raise ConfigError(
            f"sweep: {run_dir} was made with another config (hash {recorded}, now {spec.config_hash()}); "
            "remove that folder or use another --output"
        )
    return "finished" if (run_dir / METRICS_FILE).is_file() else "partial"


def prepare_runs(
    specs: Sequence[RunSpec], output: str | Path, log: Callable[[str], None] = print
) -> tuple[list[Path], list[Path]]:
    """Write each run's spec file; ``(all run folders, the ones still to run)`` in ``specs`` order."""
    folders, todo = [], []
    for spec in specs:
        run_dir = spec.folder(output)
        state = run_state(spec, run_dir)
        folders.append(run_dir)
        if state == "finished":
            log(f"[sweep] {spec.label} seed {spec.seed}: finished, skipped")
            continue
        if state == "new":
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=1))
        last = run_dir / "checkpoints" / "last.ckpt"
        resuming = state == "partial" and last.is_file()
        log(f"[sweep] {spec.label} seed {spec.seed}: " + (f"resumes from {last}" if resuming else "to run"))
        todo.append(run_dir)
    return folders, todo


def thread_shares(parallel: int) -> list[int]:
    """CPU threads for each of ``parallel`` concurrent runs (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [max(1, cores // parallel)] * parallel


def gpu_shares(parallel: int) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each concurrent run: the visible GPUs split evenly (None: no GPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
    else:
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
    if not ids:
        return [None] * parallel
    per = max(1, len(ids) // parallel)
    return [",".join(ids[(i * per + j) % len(ids)] for j in range(per)) for i in range(parallel)]


def _wants_several_devices(overrides: Sequence[str]) -> bool:
    """Whether the overrides ask for DDP (Lightning relaunches the command: not in this process)."""
    for i, item in enumerate(overrides):
        key, _, value = item.partition("=")
        if key == "--trainer.devices":
            value = value or (overrides[i + 1] if i + 1 < len(overrides) else "1")
            return value.strip() not in ("1", "auto")
    return False


#: the module whose ``python -m`` entry runs one folder (it builds the LightningCLI, a command's job)
RUN_MODULE = "densemtl.cli.sweep_run"


def launch_local(
    run_dirs: Sequence[Path],
    runner: Callable[[str | Path], Any],
    parallel: int = 1,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Run ``run_dirs``: in this process one after another, or ``parallel`` subprocesses at a time.

    A DDP run (``--trainer.devices`` > 1) always gets a subprocess, because Lightning relaunches the
    command line of the process it is in. Returns the folders whose run failed.
    """
    if parallel < 1:
        raise ConfigError(f"sweep: --parallel must be >= 1, got {parallel}")
    specs = {d: RunSpec.from_json(json.loads((d / SPEC_FILE).read_text())) for d in run_dirs}
    if parallel == 1 and not any(_wants_several_devices(s.overrides) for s in specs.values()):
        for run_dir in run_dirs:
            log(f"[sweep] running {specs[run_dir].label} seed {specs[run_dir].seed}")
            runner(run_dir)
        return []
    threads, gpus = thread_shares(parallel), gpu_shares(parallel)
    pending, running, failed = list(run_dirs), {}, []
    free = list(range(parallel))
    while pending or running:
        while pending and free:
            slot, run_dir = free.pop(0), pending.pop(0)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads[slot]), MKL_NUM_THREADS=str(threads[slot]))
            if gpus[slot] is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
            log(f"[sweep] starting {specs[run_dir].label} seed {specs[run_dir].seed} (slot {slot})")
            with open(run_dir / "stdout.log", "ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", RUN_MODULE, str(run_dir)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running[process] = (slot, run_dir)
        time.sleep(0.2)
        for process in [p for p in running if p.poll() is not None]:
            slot, run_dir = running.pop(process)
            free.append(slot)
            if process.returncode != 0:
                failed.append(run_dir)
                log(f"[sweep] {run_dir} failed (exit {process.returncode}); see {run_dir / 'stdout.log'}")
    return failed


def launch_slurm(
    run_dirs: Sequence[Path],
    runner: Callable[[str | Path], Any],
    folder: str | Path,
    partition: str | None = None,
    time_min: int = 240,
    gpus_per_job: int = 0,
    array_parallelism: int = 64,
    cpus_per_job: int | None = None,
    cluster: str | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Submit each run as one Slurm job (a job array) with submitit, wait, return the failed folders.

    ``cluster="local"``: submitit's local executor, which runs the same pickled ``runner`` in
    subprocesses on this machine (how the tests exercise this path).
    """
    try:
        import submitit
    except ImportError:
        raise ConfigError("sweep: --launcher slurm needs submitit (pip install submitit)") from None
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params: dict[str, Any] = {"timeout_min": int(time_min), "slurm_array_parallelism": int(array_parallelism)}
    if gpus_per_job:
        params["gpus_per_node"] = int(gpus_per_job)
    if cpus_per_job:
        params["cpus_per_task"] = int(cpus_per_job)
    if partition:
        params["slurm_partition"] = partition
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(runner, str(d)) for d in run_dirs]
    log(f"[sweep] submitted {len(jobs)} job(s) to {executor.cluster}: {', '.join(j.job_id for j in jobs)}")
    failed = []
    for run_dir, job in zip(run_dirs, jobs):
        try:
            job.result()
        except Exception as exc:  # a failed job is reported, the others still count
            failed.append(Path(run_dir))
            log(f"[sweep] {run_dir} failed: {str(exc).splitlines()[-1] if str(exc) else exc!r}")
    return failed
