"""MGDA-UB (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The shared update is the min-norm point of the convex hull of the task gradients (the QP of Sec. 3.2):

    ``min_{alpha in simplex} || sum_i alpha_i g_i ||^2``

a Pareto-stationary descent direction. For two tasks the closed form (Alg. 1)
``alpha = clip(((g_2 - g_1) . g_2) / ||g_1 - g_2||^2, 0, 1)``; for ``K > 2`` the QP on the Gram
matrix ``alpha^T M alpha`` is solved with ``scipy.optimize.minimize`` (SLSQP) instead of the
paper's Frank-Wolfe (Alg. 2), which converges to the same point. ``mgda`` works on the shared
parameters; ``mgda_ub`` (Sec. 3.3) on the gradients w.r.t. the shared representation ``Z``,
which upper-bounds the parameter-level objective and costs one backward through the heads per
task instead of through the whole encoder. ``normalize`` rescales ``g_i`` before the solve as in the
authors' code (``"l2"``: ``g_i / ||g_i||``; ``"loss"``: ``g_i / L_i``); the update then combines the
unnormalised gradients with the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from densemtl.errors import ConfigError
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting, minimize_on_simplex

NORMALIZATIONS = ("none", "l2", "loss")


def min_norm_weights(gram: np.ndarray) -> np.ndarray:
    """``argmin_{alpha in simplex} alpha^T M alpha`` for a ``[K, K]`` Gram matrix ``M``."""
    k = gram.shape[0]
    if k == 1:
        return np.ones(1)
    if k == 2:  # Alg. 1: the closed form on the segment [g_1, g_2]
        denom = gram[0, 0] + gram[1, 1] - 2 * gram[0, 1]
        a = 0.5 if denom <= 1e-20 else float(np.clip((gram[1, 1] - gram[0, 1]) / denom, 0.0, 1.0))
        return np.array([a, 1.0 - a])
    return minimize_on_simplex(lambda a: float(a @ gram @ a), k)


@WEIGHTINGS.register("mgda")
class MGDA(GramWeighting):
    def __init__(
        self, tasks: Sequence[str], normalize: str = "none", sync: bool = True, level: str | None = None
    ) -> None:
        super().__init__(tasks, sync=sync, level=level)
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"mgda normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.normalize = normalize

    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        if self.normalize == "none":
            scale = np.ones(len(losses))
        elif self.normalize == "l2":
            scale = 1.0 / np.sqrt(np.clip(np.diag(gram), 1e-20, None))
        else:
            scale = 1.0 / np.clip(losses, 1e-12, None)
        return min_norm_weights(gram * np.outer(scale, scale)) * scale


@WEIGHTINGS.register("mgda_ub")
class MGDAUB(MGDA):
    shared_parameters = "representation"
