"""DB-MTL, dual-balancing multi-task learning (Lin, Ye, Xu, Shi & Zhang, "Dual-Balancing for
Multi-Task Learning", arXiv 2308.12029, 2023, Alg. 1).

* Loss-scale balancing: every task trains on ``log L_t`` (scale-invariant).
* Gradient-magnitude balancing: an exponential moving average of the shared gradients of
  the log losses, ``g^_t <- beta g^_t + (1 - beta) grad log L_t`` (``beta`` = 0.9; the first step
  takes the gradient itself), and the shared update ``sum_t (max_i ||g^_i|| / ||g^_t||) g^_t``: every
  task contributes with the norm of the largest. A closed form; the moving averages are a buffer
  of ``K x |shared|`` floats.

The task-specific parameters get the gradients of ``sum_t log L_t``. Under DDP (``sync=True``) the
raw gradients and losses are averaged over the processes and ``grad log L = grad L / L`` is taken of
the averages, so the result is that of the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import GradientWeighting, flat_gradients, linearised, surrogate
from densemtl.weighting._shared import average_over_processes_


@WEIGHTINGS.register("db_mtl")
class DBMTL(GradientWeighting):
    def __init__(self, tasks: Sequence[str], beta: float = 0.9, eps: float = 1e-8, sync: bool = True) -> None:
        super().__init__(tasks, sync=sync)
        self.beta, self.eps = float(beta), float(eps)
        self.register_buffer("averages", torch.zeros(0), persistent=False)

    def forward(self, terms: LossTerms, shared_parameters: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        losses = torch.stack(list(self.task_losses(terms).values()))
        values = losses.detach().float().clone()
        if not self.active(losses):
            return (losses + self.eps).log().sum()
        if not shared_parameters:
            raise ValueError("DBMTL needs the shared tensors: pass shared_parameters")
        shared = list(shared_parameters)
        grads = flat_gradients(list(losses), shared)
        if self.sync:
            average_over_processes_(grads)
            average_over_processes_(values)
        scale = 1.0 / (values + self.eps)
        log_grads = grads * scale[:, None]
        if self.averages.shape != log_grads.shape:
            self.averages = log_grads.clone()
        else:
            self.averages.mul_(self.beta).add_((1 - self.beta) * log_grads)
        norms = self.averages.norm(dim=1).clamp_min(1e-20)
        alpha = norms.max() / norms
        self.current.copy_(alpha)
        correction = alpha @ self.averages - log_grads.sum(0)
        total = linearised((values + self.eps).log().sum().to(losses.dtype), scale, losses)
        return total + surrogate(correction, shared)
