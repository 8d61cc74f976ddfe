"""GradVac, gradient vaccine (Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and
Improving Multi-task Optimization in Massively Multilingual Models", ICLR 2021, Sec. 3).

For each task ``i`` and each other task ``j`` (random order), when the cosine similarity
``phi_ij = cos(g_i', g_j)`` is below its target ``phi^_ij``, ``g_i'`` is moved towards ``g_j``:

    ``g_i' <- g_i' + ||g_i'|| (phi^_ij sqrt(1 - phi_ij^2) - phi_ij sqrt(1 - phi^_ij^2))
                     / (||g_j|| sqrt(1 - phi^_ij^2)) g_j``

so that the new similarity is ``phi^_ij``; the targets follow an exponential moving average of the
observed similarities, ``phi^_ij <- (1 - beta) phi^_ij + beta phi_ij`` (initially 0: the first step is
PCGrad). The update is the sum of the ``g_i'``: a closed form, on the whole shared-parameter vector
(the paper's ``model``-level granularity). Under DDP the gradients are averaged first and the task
orders use the same seeded generator on every process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import DirectionWeighting


@WEIGHTINGS.register("gradvac")
class GradVac(DirectionWeighting):
    def __init__(self, tasks: Sequence[str], beta: float = 0.01, seed: int = 0, sync: bool = True) -> None:
        super().__init__(tasks, sync=sync)
        self.beta = float(beta)
        self._gen = torch.Generator().manual_seed(seed)
        self.register_buffer("targets", torch.zeros(len(self.tasks), len(self.tasks)))

    def direction(self, grads: torch.Tensor) -> torch.Tensor:
        out = grads.clone()
        k = grads.shape[0]
        norms = grads.norm(dim=1)
        for i in range(k):
            for j in torch.randperm(k, generator=self._gen).tolist():
                if j == i:
                    continue
                norm_i = out[i].norm()
                phi = float(torch.dot(out[i], grads[j]) / (norm_i * norms[j]).clamp_min(1e-20))
                target = float(self.targets[i, j])
                if phi < target:
                    scale = norm_i * (target * (1 - phi**2) ** 0.5 - phi * (1 - target**2) ** 0.5)
                    out[i] = out[i] + scale / (norms[j] * (1 - target**2) ** 0.5).clamp_min(1e-20) * grads[j]
                self.targets[i, j] = (1 - self.beta) * target + self.beta * phi
        return out.sum(0)
