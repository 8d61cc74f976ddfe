"""PCGrad, gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

Per-task gradients on the shared parameters are projected: when ``g_i . g_j < 0``,
``g_i <- g_i - (g_i . g_j / |g_j|^2) g_j`` for the other tasks in random order; the shared
gradient is the sum of the projected ones. Task-specific parameters get the plain sum.

Works with automatic optimisation: ``forward`` computes the per-task shared gradients with
``torch.autograd.grad`` and returns ``sum_i L_i + sum_p <sg(g_pc - g_sum)_p, p>``, whose gradient
on the shared parameters is exactly ``g_pc``. Needs :meth:`attach`. Non-task terms (an
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

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._shared import average_over_processes_, shared_parameters


@WEIGHTINGS.register("pcgrad")
class PCGrad(nn.Module):
    def __init__(self, tasks: Sequence[str], seed: int = 0, sync: bool = True) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.sync = sync
        self._shared: list[nn.Parameter] | None = None
        self._gen = torch.Generator().manual_seed(seed)

    def attach(self, model: nn.Module) -> None:
        self._shared = shared_parameters(model)

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

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        per_task = {t: losses[t] for t in self.tasks}
        for key, value in losses.items():
            if key not in self.tasks:
                owner = key.partition(":")[0]
                owner = owner if owner in per_task else self.tasks[0]
                per_task[owner] = per_task[owner] + value
        total = sum(per_task.values())
        if not (self.training and torch.is_grad_enabled() and total.requires_grad):
            return total
        if self._shared is None:
            raise RuntimeError("pcgrad needs the model: call weighting.attach(model) first")
        flat = []
        for t in self.tasks:
            g = torch.autograd.grad(per_task[t], self._shared, retain_graph=True, allow_unused=True)
            flat.append(
                torch.cat(
                    [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, self._shared)]
                )
            )
        grads = torch.stack(flat)
        if self.sync:
            # same seed on every process, so the random task orders agree as well
            average_over_processes_(grads)
        correction = self.project(grads, self._gen) - grads.sum(0)
        surrogate, offset = total.new_zeros(()), 0
        for p in self._shared:
            n = p.numel()
            surrogate = surrogate + (correction[offset : offset + n].view_as(p) * p).sum()
            offset += n
        return total + surrogate

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}
