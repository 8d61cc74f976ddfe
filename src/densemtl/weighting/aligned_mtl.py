"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for
Multi-Task Learning", CVPR 2023).

The task gradients are aligned to an orthogonal system with equal magnitudes, removing conflicts
and dominance (the condition number of the linear system becomes 1; Sec. 4, Alg. 1): with the
eigendecomposition of the Gram matrix ``M = G G^T = V Lambda V^T`` (rank ``r``, eigenvalues above
``max(Lambda) K eps``), ``B = sqrt(lambda_min) V Lambda^{-1/2} V^T`` and the update
``d = (B G)^T 1 = sum_i (B 1)_i g_i``: a closed form (``numpy.linalg.eigh``). ``aligned_mtl``
works on the shared parameters; ``aligned_mtl_ub`` on the shared representation (Aligned-MTL-UB,
Sec. 4.2, the paper's cheaper variant).
"""

from __future__ import annotations

import numpy as np

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting


def aligned_weights(gram: np.ndarray) -> np.ndarray:
    """``B 1`` of Alg. 1 for a ``[K, K]`` Gram matrix."""
    lam, v = np.linalg.eigh(gram)
    keep = lam > lam.max() * gram.shape[0] * np.finfo(np.float32).eps
    if not keep.any():
        return np.ones(gram.shape[0])
    lam, v = lam[keep], v[:, keep]
    b = np.sqrt(lam.min()) * (v / np.sqrt(lam)) @ v.T
    return b.sum(axis=0)


@WEIGHTINGS.register("aligned_mtl")
class AlignedMTL(GramWeighting):
    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        return aligned_weights(gram)


@WEIGHTINGS.register("aligned_mtl_ub")
class AlignedMTLUB(AlignedMTL):
    shared_parameters = "representation"
