"""Per-task losses, built by name. Every loss is ``fn(pred, target, valid) -> scalar`` where
``valid`` is the boolean pixel mask [B, H, W]; a batch with no valid pixel gives a zero that is
still connected to the graph (so DDP sees every parameter used)."""

from __future__ import annotations

from typing import Any

from densemtl.registry import Registry

LOSSES: Registry = Registry("loss")

from densemtl.losses import depth, normals, semseg, xtasc  # noqa: E402, F401  (register on import)


def build_loss(name: str, **kwargs: Any) -> Any:
    return LOSSES.build(name, **kwargs)


__all__ = ["LOSSES", "build_loss", "depth", "normals", "semseg"]
