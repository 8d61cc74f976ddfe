"""Multi-task models, built by name: ``build_model("hard_sharing", tasks={"semseg": 8, "depth": 1})``.

A new architecture is one file here with ``@MODELS.register("name")`` on its constructor; every
module of this package is imported on first use, so nothing else needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from torch import nn

from densemtl.models.base import MultiTaskModel
from densemtl.registry import Registry

MODELS: Registry = Registry("model")

_NOT_ARCHITECTURES = {"base", "blocks", "backbones"}
_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _NOT_ARCHITECTURES and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def build_model(name: str, tasks: Mapping[str, int], **kwargs: Any) -> MultiTaskModel:
    """Build a registered architecture for ``tasks`` (task -> output channels)."""
    _load_all()
    return MODELS.build(name, tasks=dict(tasks), **kwargs)


def model_names() -> list[str]:
    _load_all()
    return MODELS.names()


def build_encoder(backbone: str | Mapping[str, Any]) -> nn.Module:
    """A feature-only backbone from ``"resnet18"`` or ``{"name": ..., "weights": path, ...}``."""
    from densemtl.models.backbones import build_backbone

    spec = {"name": backbone} if isinstance(backbone, str) else dict(backbone)
    name = spec.pop("name")
    spec.setdefault("features_only", True)
    return build_backbone(name, **spec)


__all__ = ["MODELS", "MultiTaskModel", "build_encoder", "build_model", "model_names"]
