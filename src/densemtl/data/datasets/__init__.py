"""Dataset registry: ``build_dataset(name, root=..., split=..., tasks=..., transform=...)``.

A new dataset is one file under ``densemtl/data/`` with ``@DATASETS.register("name")`` on its
class (constructor signature ``(root, split, tasks=None, transform=None, **options)``) plus its
module name in ``_DATASET_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Any

from densemtl.registry import Registry

DATASETS: Registry = Registry("dataset")

_DATASET_MODULES = (
    "densemtl.data.datasets.folder",
    "densemtl.data.datasets.nyuv2",
    "densemtl.data.datasets.nyud_mt",
    "densemtl.data.datasets.mtan",
    "densemtl.data.datasets.cityscapes",
    "densemtl.data.datasets.sunrgbd",
    "densemtl.data.datasets.kitti",
    "densemtl.data.datasets.scannet",
)
_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _DATASET_MODULES:
            importlib.import_module(module)
        _loaded = True


def build_dataset(name: str, **kwargs: Any) -> Any:
    _load_all()
    return DATASETS.build(name, **kwargs)


def dataset_class(name: str) -> type:
    """The class registered as ``name`` (a ConfigError naming the known ones otherwise)."""
    _load_all()
    return DATASETS.get(name)


def dataset_names() -> list[str]:
    _load_all()
    return DATASETS.names()
