"""Fault injection for the resume tests: a callback that SIGKILLs its own ``densemtl fit`` process.

``DENSEMTL_TEST_KILL`` picks the point: ``step:N`` (after optimiser step N), ``save:N`` (halfway
through writing ``last.ckpt`` at step N: a partial temporary file is left behind).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
import torch

import densemtl.training.checkpoint as checkpoint_module


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    def __init__(self) -> None:
        kind, _, step = os.environ.get("DENSEMTL_TEST_KILL", ":").partition(":")
        self.kind, self.step = kind, int(step or -1)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.kind != "save":
            return
        real_save, real_write = torch.save, checkpoint_module.AtomicCheckpointIO.save_checkpoint
        writing: list[str] = []

        def write(io: Any, checkpoint: dict, path: Any, *args: Any, **kwargs: Any) -> None:
            writing[:] = [os.path.basename(str(path))]
            real_write(io, checkpoint, path, *args, **kwargs)

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if writing == ["last.ckpt"] and isinstance(obj, dict) and obj.get("global_step") == self.step:
                import io

                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                _die()
            real_save(obj, f, *args, **kwargs)

        checkpoint_module.torch.save = save  # type: ignore[attr-defined]
        checkpoint_module.AtomicCheckpointIO.save_checkpoint = write  # type: ignore[method-assign]

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.kind == "step" and trainer.global_step == self.step:
            _die()
