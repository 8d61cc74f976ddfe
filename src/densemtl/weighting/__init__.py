"""Loss-weighting strategies, one file each: subclasses of :class:`~densemtl.weighting.base.Weighting`.

``weighting(terms, shared_parameters) -> Tensor`` returns the training loss; ``weights()`` gives
the current per-task weights for logging. A new strategy is one file (a ``Weighting`` subclass with
``@WEIGHTINGS.register("name")``) plus its module name in the import line below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from densemtl.registry import Registry

WEIGHTINGS: Registry = Registry("weighting")

from densemtl.weighting import (  # noqa: E402, F401  (register on import)
    aligned_mtl,
    cagrad,
    db_mtl,
    dwa,
    famo,
    fixed,
    gls,
    graddrop,
    gradnorm,
    gradvac,
    imtl,
    mgda,
    nash_mtl,
    pcgrad,
    rlw,
    uncertainty,
    upgrad,
    xtasc_groups,
)
from densemtl.weighting.base import Weighting, select_shared_parameters  # noqa: E402


def build_weighting(name: str, tasks: Sequence[str], **kwargs: Any) -> Weighting:
    return WEIGHTINGS.build(name, tasks=list(tasks), **kwargs)


__all__ = ["WEIGHTINGS", "Weighting", "build_weighting", "select_shared_parameters"]
