"""The task table: one :class:`~densemtl.tasks.base.Task` per task, so the engine has no task ``if`` chains.

A new task is one file here with a :class:`Task` subclass under ``@TASKS.register("name")``, plus
its module in the import line below (the import order is the canonical task order: the order
datasets list their tasks and batches hold their labels).

Example::

    from densemtl.tasks import get_task, task_channels

    task_channels(["semseg", "depth"], num_classes=13)   # {"semseg": 13, "depth": 1}
    get_task("depth").valid_mask(batch["depth"])         # bool [B, H, W]
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from densemtl.errors import ConfigError
from densemtl.registry import Registry
from densemtl.tasks.base import LossSpec, Task


class TaskRegistry(Registry[type[Task]]):
    """A :class:`~densemtl.registry.Registry` of :class:`Task` classes that remembers the order
    of registration (``names()`` stays sorted, as for every registry)."""

    def __init__(self) -> None:
        super().__init__("task")
        self._order: list[str] = []

    def register(self, name: str) -> Callable[[type[Task]], type[Task]]:
        decorator = super().register(name)

        def remember(cls: type[Task]) -> type[Task]:
            cls = decorator(cls)
            self._order.append(name)
            return cls

        return remember

    def ordered_names(self) -> tuple[str, ...]:
        """Task names in registration order."""
        return tuple(self._order)


TASKS = TaskRegistry()

from densemtl.tasks import semseg, depth, normals  # noqa: E402, F401, I001  (register on import, in this order)
from densemtl.tasks import disparity  # noqa: E402, F401


@functools.cache
def get_task(name: str) -> Task:
    """The (shared, stateless) :class:`Task` instance registered as ``name``; ConfigError if unknown."""
    return TASKS.build(name)


def task_names() -> tuple[str, ...]:
    """Every registered task, in the canonical order (``("semseg", "depth", "normals", ...)``)."""
    return TASKS.ordered_names()


def task_channels(tasks: list[str] | tuple[str, ...], num_classes: int) -> dict[str, int]:
    """Output channels per task, e.g. ``{"semseg": 40, "depth": 1}``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; known: {', '.join(task_names())}")
    return {t: get_task(t).channels(num_classes) for t in tasks}


__all__ = [
    "TASKS",
    "LossSpec",
    "Task",
    "TaskRegistry",
    "get_task",
    "task_channels",
    "task_names",
]
