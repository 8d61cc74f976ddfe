"""GradDrop, gradient sign dropout (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov,
"Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout", NeurIPS 2020).

Per element of the shared gradient, the sign purity ``P = 1/2 (1 + sum_i g_i / sum_i |g_i|)``
picks a sign: with ``U ~ Uniform(0, 1)``, task ``i`` keeps its gradient where
``M_i = [P > U] [g_i > 0] + [P < U] [g_i < 0]``, and the update is ``sum_i M_i g_i``; with
``leak`` ``l_i`` it is ``sum_i (l_i + (1 - l_i) M_i) g_i``. A closed form, applied here to the
shared-parameter gradient elementwise (the paper applies it to a shared activation layer; on
parameters the draws of ``U`` come from a seeded generator, the same on every DDP process, after
the gradients are averaged: the result does not depend on the number of processes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import DirectionWeighting


@WEIGHTINGS.register("graddrop")
class GradDrop(DirectionWeighting):
    def __init__(self, tasks: Sequence[str], leak: float = 0.0, seed: int = 0, sync: bool = True) -> None:
        super().__init__(tasks, sync=sync)
        self.leak = float(leak)
        self._gen = torch.Generator().manual_seed(seed)

    def direction(self, grads: torch.Tensor) -> torch.Tensor:
        purity = 0.5 * (1 + grads.sum(0) / grads.abs().sum(0).clamp_min(1e-20))
        u = torch.rand(purity.shape, generator=self._gen).to(grads.device)
        keep = ((purity > u) & (grads > 0)) | ((purity < u) & (grads < 0))
        mask = self.leak + (1 - self.leak) * keep.to(grads.dtype)
        return (mask * grads).sum(0)
