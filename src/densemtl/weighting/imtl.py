"""IMTL, impartial multi-task learning (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021).

* IMTL-G (Sec. 3.2, the closed form): the update ``g = sum_i alpha_i g_i`` has equal projections on every
  unit task gradient ``u_i = g_i / ||g_i||``. With ``D = [g_1 - g_2, ..., g_1 - g_K]`` and
  ``U = [u_1 - u_2, ..., u_1 - u_K]`` (rows), ``alpha_{2:K} = g_1 U^T (D U^T)^{-1}`` and
  ``alpha_1 = 1 - sum alpha_{2:K}``: a closed form (``numpy.linalg.lstsq`` on the ``K - 1``
  system), computed from the Gram matrix. The paper takes the gradients w.r.t. the shared feature
  ``z`` (the default here, ``level="representation"``); ``level="parameters"`` uses the shared
  parameters (for architectures without a shared encoder, e.g. cross-stitch).
* IMTL-L (Sec. 3.3): learned loss scales, ``L = sum_t (e^{s_t} L_t - s_t)``, ``s_t`` init 0.
* ``imtl`` (the hybrid, Alg. 1): IMTL-G on the gradients of the IMTL-L scaled losses; the
  task-specific parameters and ``s`` get the plain gradients of the scaled losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GramWeighting
from densemtl.weighting.base import Weighting


def imtl_g_weights(gram: np.ndarray) -> np.ndarray:
    """IMTL-G's ``alpha`` (closed form) from the ``[K, K]`` Gram matrix of the task gradients."""
    k = gram.shape[0]
    norms = np.sqrt(np.clip(np.diag(gram), 1e-20, None))
    gu = gram / norms[None, :]  # g_a . u_b
    # D U^T: (g_1 - g_i) . (u_1 - u_j) and g_1 U^T: g_1 . (u_1 - u_j), for i, j = 2..K
    rows = np.arange(1, k)
    du = gu[0, 0] - gu[0, rows][None, :] - gu[rows, 0][:, None] + gu[np.ix_(rows, rows)]
    gU = gu[0, 0] - gu[0, rows]
    alpha = np.linalg.lstsq(du.T, gU, rcond=None)[0]  # alpha D U^T = g_1 U^T
    return np.concatenate([[1.0 - alpha.sum()], alpha])


class _LossScales(nn.Module):
    """IMTL-L's learned ``s_t``: ``e^{s_t} L_t - s_t`` for each task."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.log_scales = nn.Parameter(torch.zeros(k))

    def scaled(self, losses: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.exp(s) * loss - s for s, loss in zip(self.log_scales, losses)]


@WEIGHTINGS.register("imtl_g")
class IMTLG(GramWeighting):
    shared_parameters = "representation"

    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        return imtl_g_weights(gram)


@WEIGHTINGS.register("imtl")
class IMTL(IMTLG):
    def __init__(self, tasks: Sequence[str], sync: bool = True, level: str | None = None) -> None:
        super().__init__(tasks, sync=sync, level=level)
        self.scales = _LossScales(len(self.tasks))

    def task_losses(self, terms: LossTerms) -> dict[str, torch.Tensor]:
        per_task = terms.per_task(self.tasks)
        return dict(zip(self.tasks, self.scales.scaled(list(per_task.values()))))


@WEIGHTINGS.register("imtl_l")
class IMTLL(Weighting):
    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.scales = _LossScales(len(self.tasks))

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        return sum(self.scales.scaled(list(terms.per_task(self.tasks).values())))

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.exp(self.scales.log_scales.detach()).tolist()))
