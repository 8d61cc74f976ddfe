"""Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, ICML 2022).

The update ``d = sum_i alpha_i g_i`` is the Nash bargaining solution of the tasks: ``alpha > 0`` with
``M alpha = 1 / alpha`` (Sec. 3; ``M = G G^T`` the Gram matrix), i.e. every task gets
``g_i . d = 1 / alpha_i``. That is the stationarity condition of the strictly convex problem

    ``min_{alpha > 0}  1/2 alpha^T M alpha - sum_i log alpha_i``,

solved here with ``scipy.optimize.minimize`` (L-BFGS-B, bounds ``alpha >= 1e-8``) instead of the
paper's sequence of convex programs (Sec. 3.3, cvxpy). As in the authors' code, ``M`` is divided
by its Frobenius norm first (the weights are then scale-free) and the update is clipped to
``max_norm`` (1.0; 0 disables it); ``update_weights_every`` reuses the weights between solves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting


def nash_weights(gram: np.ndarray) -> np.ndarray:
    """``alpha > 0`` with ``M alpha = 1 / alpha`` for the normalised Gram matrix ``M``."""
    k = gram.shape[0]
    m = gram / max(np.linalg.norm(gram), 1e-20)
    start = 1.0 / np.sqrt(np.clip(np.diag(m), 1e-8, None))
    result = minimize(
        lambda a: (0.5 * a @ m @ a - np.log(a).sum(), m @ a - 1.0 / a),
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(1e-8, None)] * k,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500},
    )
    return result.x


@WEIGHTINGS.register("nash_mtl")
class NashMTL(GramWeighting):
    def __init__(
        self,
        tasks: Sequence[str],
        max_norm: float = 1.0,
        update_weights_every: int = 1,
        sync: bool = True,
        level: str | None = None,
    ) -> None:
        super().__init__(tasks, sync=sync, level=level)
        self.max_norm = float(max_norm)
        self.update_weights_every = int(update_weights_every)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        if int(self.step) % self.update_weights_every == 0:
            alpha = nash_weights(gram)
        else:
            alpha = self.current.double().cpu().numpy()
        self.step += 1
        norm = float(np.sqrt(max(alpha @ gram @ alpha, 0.0)))
        if self.max_norm > 0 and norm > self.max_norm:
            alpha = alpha * (self.max_norm / norm)
        return alpha
