"""``python -m densemtl.cli.sweep_run RUN_DIR``: train (or resume) and test one sweep run.

The entry point of every sweep launcher (in-process, subprocess, submitit job): it builds the
LightningCLI from the run's spec, which is a command's job, so it lives here and the library
(:mod:`densemtl.analysis.sweep`) receives it as its ``runner``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from densemtl.analysis.sweep import PER_CLASS_FILE, RESULT_FILE, SPEC_FILE, RunSpec


def _per_class_callback() -> Any:
    """A callback saving the test split's per-class IoU before the module's epoch end resets it.

    Lightning calls callbacks' ``on_test_epoch_end`` before the module's; ``compute_per_class``
    all-reduces the confusion matrix, so every DDP rank calls it and rank 0 writes.
    """
    from lightning.pytorch.callbacks import Callback

    class PerClassIoU(Callback):
        def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            metrics = getattr(getattr(pl_module, "test_metrics", None), "metrics", None)
            semseg = metrics["semseg"] if metrics is not None and "semseg" in metrics else None
            if semseg is None or not hasattr(semseg, "compute_per_class"):
                return
            iou = [float(v) for v in semseg.compute_per_class().tolist()]
            names = list(getattr(pl_module.hparams, "class_names", None) or range(len(iou)))
            if trainer.is_global_zero and trainer.log_dir:
                values = {str(n): (None if v != v else v) for n, v in zip(names, iou)}
                Path(trainer.log_dir, PER_CLASS_FILE).write_text(json.dumps(values, indent=1))

    return PerClassIoU()


def run_one(run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume) and test the run whose spec is in ``run_dir``; its ``result.json`` content.

    The entry point of every launcher: in-process, subprocess and submitit job alike.
    """
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from densemtl.cli.lightning import build_cli
    from densemtl.training.checkpoint import read_checkpoint

    run_dir = Path(run_dir)
    spec = RunSpec.from_json(json.loads((run_dir / SPEC_FILE).read_text()))
    if os.environ.get("OMP_NUM_THREADS"):  # the launcher's share of the machine
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*directory .* exists and is not empty")
        cli = build_cli(spec.arguments(run_dir), run=False)
    trainer, module, data = cli.trainer, cli.model, cli.datamodule
    # The run's last.ckpt is this callback's alone, saved every checkpoint_every steps (the recipe's
    # best-checkpoint callback keeps best.ckpt); two writers of one last.ckpt would version it as last-v1.
    for callback in trainer.checkpoint_callbacks:
        callback.save_last = False
    trainer.callbacks.append(
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            every_n_train_steps=max(1, spec.checkpoint_every),
            save_last=True,
            save_top_k=0,
            enable_version_counter=False,
        )
    )
    trainer.callbacks.append(_per_class_callback())
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed_from = int(read_checkpoint(last).get("global_step", 0)) if last.is_file() else None
    start, start_cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*directory .* exists and is not empty")
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.is_file() else None)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    trainer.save_checkpoint(last)  # the final state, whatever the interval
    trainer.test(module, datamodule=data, verbose=False)
    result = {
        "config_hash": spec.config_hash(),
        "steps": int(trainer.global_step),
        "train_s": train_s,  # of the last attempt only, when it resumed
        "train_cpu_s": train_cpu_s,  # this process's threads (not DDP children)
        "resumed_from_step": resumed_from,
        "threads": torch.get_num_threads(),
    }
    if trainer.is_global_zero:
        (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    run_one(sys.argv[1])
