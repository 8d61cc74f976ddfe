"""UPGrad, unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for
Multi-Objective Optimization", arXiv 2406.16232, 2024).

Each task gradient is projected onto the dual cone of the gradients, ``{x : g_j . x >= 0 for all j}``,
and the projections are averaged: ``A(J) = 1/K sum_i pi_J(g_i)``. In weight form
``pi_J(g_i) = J^T v_i`` with ``v_i = argmin_{v >= e_i} v^T M v`` (``M = J J^T``), a bounded
least-squares problem ``min ||R v||^2, v >= e_i`` with ``M = R^T R``, solved with
``scipy.optimize.lsq_linear``. The result never conflicts with any task (``g_j . d >= 0``). Here the
projections are summed instead of averaged (preference vector 1 instead of 1/K), so that
non-conflicting gradients give the gradient of the sum of the losses (equal weighting).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting


def upgrad_weights(gram: np.ndarray) -> np.ndarray:
    """``sum_i v_i`` with ``v_i = argmin_{v >= e_i} v^T M v``."""
    k = gram.shape[0]
    lam, vec = np.linalg.eigh(gram)
    root = np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T  # R with R^T R = M
    total = np.zeros(k)
    for i in range(k):
        lower = np.eye(k)[i]
        result = lsq_linear(root, np.zeros(k), bounds=(lower, np.full(k, np.inf)), method="bvls")
        total += result.x
    return total


@WEIGHTINGS.register("upgrad")
class UPGrad(GramWeighting):
    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        return upgrad_weights(gram)
