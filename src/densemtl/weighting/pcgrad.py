"""PCGrad, gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

Per-task gradients on the shared parameters are projected: when ``g_i . g_j < 0``,
``g_i <- g_i - (g_i . g_j / |g_j|^2) g_j`` for the other tasks in random order; the shared
gradient is the sum of the projected ones. Task-specific parameters get the plain sum.

Works with automatic optimisation: ``forward`` computes the per-task shared gradients with
``torch.autograd.grad`` and returns ``sum_i L_i + sum_p <sg(g_pc - g_sum)_p, p>``, whose gradient
on the shared parameters is exactly ``g_pc``. Non-task terms (an
architecture's extra losses) are treated as part of their task (``"depth:transfer"`` belongs to
``depth``). Costs one extra backward per task.

Under DDP (``sync=True``, the default) the per-task shared gradients are averaged over the
processes before the projection (one all-reduce of ``K * |shared|`` floats per step): every
process then adds the same correction ``g_pc(G) - sum_i G_i`` of the global-batch gradients ``G``,
and DDP's average of ``sum_i g_i + correction`` is exactly the PCGrad gradient of the global batch.
``sync=False`` projects each process's own gradients and lets DDP average the results: no extra
communication, but a different method (conflicts are judged on per-process batches), whose result
depends on the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._shared import average_over_processes_
from densemtl.weighting.base import Weighting


@WEIGHTINGS.register("pcgrad")
class PCGrad(Weighting):
    """PCGrad gradient surgery (Yu et al., NeurIPS 2020): project away conflicting task gradients."""

    shared_parameters = "all"

    def __init__(self, tasks: Sequence[str], seed: int = 0, sync: bool = True) -> None:
        super().__init__(tasks)
        self.sync = sync
        self._gen = torch.Generator().manual_seed(seed)

    @staticmethod
    def project(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[K, P] per-task flat gradients -> the PCGrad sum [P]."""
        out = grads.clone()
        k = grads.shape[0]
        for i in range(k):
            order = torch.randperm(k, generator=generator).tolist()
            for j in order:
                if j == i:
                    continue
                dot = torch.dot(out[i], grads[j])
                if dot < 0:
                    out[i] = out[i] - dot / grads[j].square().sum().clamp_min(1e-20) * grads[j]
        return out.sum(0)

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        per_task = terms.per_task(self.tasks)
        total = sum(per_task.values())
        if not self.active(total):
            return total
        if not shared_parameters:
            raise ValueError("pcgrad needs the shared parameters: pass shared_parameters")
        shared = list(shared_parameters)
        flat = []
        for t in self.tasks:
            g = torch.autograd.grad(per_task[t], shared, retain_graph=True, allow_unused=True)
            flat.append(
                torch.cat(
                    [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, shared)]
                )
            )
        grads = torch.stack(flat)
        if self.sync:
            # same seed on every process, so the random task orders agree as well
            average_over_processes_(grads)
        correction = self.project(grads, self._gen) - grads.sum(0)
        surrogate, offset = total.new_zeros(()), 0
        for p in shared:
            n = p.numel()
            surrogate = surrogate + (correction[offset : offset + n].view_as(p) * p).sum()
            offset += n
        return total + surrogate

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}
