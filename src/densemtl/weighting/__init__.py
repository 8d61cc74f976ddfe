"""Loss-weighting strategies, one file each: a plain ``nn.Module`` called with the per-task losses.

``weighting(losses: dict[str, Tensor]) -> Tensor`` returns the total loss; ``weights()`` gives the
current per-task weights for logging. A new strategy is one file plus one registry line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from densemtl.registry import Registry

WEIGHTINGS: Registry = Registry("weighting")

from densemtl.weighting import dwa, fixed, gradnorm, pcgrad, uncertainty, xtasc_groups  # noqa: E402, F401  (register on import)


def build_weighting(name: str, tasks: Sequence[str], **kwargs: Any) -> Any:
    return WEIGHTINGS.build(name, tasks=list(tasks), **kwargs)


__all__ = ["WEIGHTINGS", "build_weighting", "fixed", "uncertainty"]
