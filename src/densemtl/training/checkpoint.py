"""Checkpoints: written atomically, read with ``weights_only=True``.

A run killed while writing leaves the previous checkpoint intact (write to a temporary file in
the same folder, fsync, then ``os.replace``), so ``--ckpt_path last`` always resumes from a
complete file; the temporary files such a kill leaves behind are removed when the next run starts.
:class:`RunCheckpoint` keeps ``last.ckpt`` at the latest step (Lightning's ``save_last`` only
rewrites it together with an improved top-k checkpoint).
"""

from __future__ import annotations

import inspect
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from densemtl.errors import DataError

__all__ = [
    "AtomicCheckpointIO",
    "RunCheckpoint",
    "load_module",
    "read_checkpoint",
    "remove_stale_temporaries",
]

TEMPORARY_GLOB = ".*.ckpt.*.tmp"


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
            raise DataError(
                path,
                "not a readable checkpoint: refused, it holds pickled Python objects and loading "
                "them would run code (only plain tensors and containers are read)",
            ) from None
        raise DataError(path, f"not a readable checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # torch.load on a truncated or foreign file raises many types (KeyError, ...)
        raise DataError(path, f"not a readable checkpoint ({_first_line(exc)})") from None
    if not isinstance(checkpoint, dict):
        raise DataError(path, f"checkpoint holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:200] or exc.__class__.__name__


def _file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give (``mkstemp`` forces 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.<name>.ckpt.*.tmp`` files a run killed mid-save left in ``folder``."""
    removed = []
    for path in Path(folder).glob(TEMPORARY_GLOB):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that never leaves a half-written file and loads weights only."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, _file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location if map_location is not None else "cpu")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is the latest step: written at every checkpoint
    event (whether or not the monitored metric improved) and when ``fit`` ends.

    On setup it also removes the temporary files of a save that a killed run left behind.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        super().__init__(*args, **kwargs)
        self._last_written_step = -1

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath is not None:
            remove_stale_temporaries(self.dirpath)

    def _save_topk_checkpoint(self, trainer: Any, monitor_candidates: dict[str, Any]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        self._save_last_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer: Any, monitor_candidates: dict[str, Any]) -> None:
        if self._last_written_step == trainer.global_step and self.last_model_path:
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_written_step = trainer.global_step

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.save_last and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def load_module(path: str | Path, map_location: Any = "cpu") -> Any:
    """Rebuild a :class:`~densemtl.training.module.DenseMTLModule` from a checkpoint (no pickled code)."""
    from densemtl.training.module import DenseMTLModule

    checkpoint = read_checkpoint(path, map_location)
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise DataError(path, "not a densemtl training checkpoint (no state_dict / hyper_parameters)")
    accepted = set(inspect.signature(DenseMTLModule.__init__).parameters) - {"self"}
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    module = DenseMTLModule(**hparams)
    module.on_load_checkpoint(checkpoint)  # as Lightning does: e.g. a semi run's teacher -> net
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise DataError(path, f"weights do not match the model ({str(exc).splitlines()[0]})") from None
    return module.eval()
