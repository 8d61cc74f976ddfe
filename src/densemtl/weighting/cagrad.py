"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021).

Maximise the worst task improvement in a ball around the average gradient ``g_0`` (Sec. 3); its dual
is a problem on the simplex,

    ``w* = argmin_{w in simplex} g_w . g_0 + sqrt(phi) ||g_w||``,  ``phi = c^2 ||g_0||^2``,

solved on the Gram matrix with ``scipy.optimize.minimize`` (SLSQP, as the authors' code), and the
update is ``d = g_0 + (sqrt(phi) / ||g_w||) g_w`` (Alg. 1), divided by ``1 + c^2`` (their
``rescale=1``). ``c`` = 0.4 (NYUv2 in the paper); ``c = 0`` is equal weighting. Here ``d`` is
scaled by ``K`` so that it matches the gradient of the *sum* of the task losses that the
task-specific parameters get (the paper averages).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting, minimize_on_simplex


def cagrad_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """The coefficients ``d = sum_i lambda_i g_i`` of CAGrad's update (times ``K``)."""
    k = gram.shape[0]
    mean = np.full(k, 1.0 / k)
    sqrt_phi = c * np.sqrt(max(float(mean @ gram @ mean), 0.0))
    if sqrt_phi == 0.0:
        return np.ones(k)
    w = minimize_on_simplex(
        lambda w: float(w @ gram @ mean) + sqrt_phi * np.sqrt(max(float(w @ gram @ w), 1e-20)), k
    )
    gw_norm = np.sqrt(max(float(w @ gram @ w), 1e-20))
    return k * (mean + sqrt_phi / gw_norm * w) / (1.0 + c**2)


@WEIGHTINGS.register("cagrad")
class CAGrad(GramWeighting):
    def __init__(
        self, tasks: Sequence[str], c: float = 0.4, sync: bool = True, level: str | None = None
    ) -> None:
        super().__init__(tasks, sync=sync, level=level)
        self.c = float(c)

    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        return cagrad_weights(gram, self.c)
