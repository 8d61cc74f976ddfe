"""The task table: what the engine needs to know about each task, so it has no task ``if`` chains."""

from __future__ import annotations

from dataclasses import dataclass

from densemtl.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    default_loss: str
    fixed_channels: int | None  # None: number of classes

    def channels(self, num_classes: int) -> int:
        return self.fixed_channels if self.fixed_channels is not None else num_classes


TASK_SPECS: dict[str, TaskSpec] = {
    "semseg": TaskSpec("semseg", "cross_entropy", None),
    "depth": TaskSpec("depth", "l1", 1),
    "normals": TaskSpec("normals", "cosine", 3),
}


def task_channels(tasks: list[str] | tuple[str, ...], num_classes: int) -> dict[str, int]:
    """Output channels per task, e.g. ``{"semseg": 40, "depth": 1}``."""
    unknown = [t for t in tasks if t not in TASK_SPECS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; known: {', '.join(TASK_SPECS)}")
    return {t: TASK_SPECS[t].channels(num_classes) for t in tasks}
