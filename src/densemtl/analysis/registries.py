"""What is registered: one ``(name, summary)`` row per task, model, backbone, dataset or weighting.

The summary is the first line of the registered constructor's own docstring (a class's own, not
one inherited from its base), which by convention names the paper (models, backbones,
weightings) or the on-disk format (datasets). ``densemtl list KIND`` prints it.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from densemtl.errors import ConfigError

__all__ = ["KINDS", "NO_DOCSTRING", "describe", "registry_rows", "summary"]

NO_DOCSTRING = "(no docstring)"


def _registry(module: str, attribute: str, names: str | None = None) -> Callable[[], tuple[Any, list[str]]]:
    def load() -> tuple[Any, list[str]]:
        mod = importlib.import_module(module)
        registry = getattr(mod, attribute)
        # the package's names() helper imports every module that registers (models, datasets)
        return registry, list(getattr(mod, names)() if names else registry.names())

    return load


#: kind -> loader of ``(registry, names in display order)``
KINDS: dict[str, Callable[[], tuple[Any, list[str]]]] = {
    "tasks": _registry("densemtl.tasks", "TASKS", "task_names"),  # task_names: the canonical order
    "models": _registry("densemtl.models", "MODELS", "model_names"),
    "backbones": _registry("densemtl.models.backbones", "BACKBONES"),
    "datasets": _registry("densemtl.data.datasets", "DATASETS", "dataset_names"),
    "weightings": _registry("densemtl.weighting", "WEIGHTINGS"),
}


def describe(obj: Any) -> str:
    """First line of ``obj``'s own docstring (for a class: not an inherited one), else :data:`NO_DOCSTRING`."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if isinstance(obj, type) and not (doc and doc.strip()):
        doc = None
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    return lines[0] if lines and lines[0] else NO_DOCSTRING


def registry_rows(kind: str) -> list[tuple[str, str]]:
    """``(name, summary)`` for every entry registered under ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown registry {kind!r}; known: {', '.join(KINDS)}")
    registry, names = KINDS[kind]()
    return [(name, summary(registry.get(name))) for name in names]


_CITATION = re.compile(r"\b(19|20)\d{2}\b|et al\.|arXiv")


def summary(obj: Any) -> str:
    """:func:`describe`, or the first line of the defining module's docstring when only that one
    cites the paper (several strategies of one paper share a module, e.g. IMTL-G and IMTL-L)."""
    own = describe(obj)
    if own != NO_DOCSTRING and _CITATION.search(own):
        return own
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    lines = [line.strip() for line in ((module.__doc__ if module else None) or "").strip().splitlines()]
    if lines and lines[0] and _CITATION.search(lines[0]):
        return lines[0] if own == NO_DOCSTRING else f"{own} {lines[0]}"
    return own
