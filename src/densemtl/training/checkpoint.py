"""Checkpoints: written atomically, read with ``weights_only=True``.

A run killed while writing leaves the previous checkpoint intact (write to a temporary file in
the same folder, fsync, then ``os.replace``), so ``--ckpt_path last`` always resumes from a
complete file.
"""

from __future__ import annotations

import inspect
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from densemtl.errors import DataError


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(path, f"not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(checkpoint, dict):
        raise DataError(path, f"checkpoint holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


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
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location if map_location is not None else "cpu")


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
