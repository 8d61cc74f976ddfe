"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

Learned task weights ``w_i`` (init 1, renormalised to sum to K): the training loss is
``sum_i w_i L_i``; the weights get the gradient of
``L_grad = sum_i | G_i - mean(G) * r_i^alpha |`` (Eq. 6, target detached), with
``G_i = ||grad_W w_i L_i||_2`` on the last shared layer ``W`` and ``r_i = (L_i / L_i(0)) / mean``.

Implemented with automatic optimisation: ``forward`` computes ``grad_w L_grad`` with
``torch.autograd.grad`` and returns ``sum_i sg(w_i) L_i + sum_i w_i sg(grad_{w_i} L_grad)``, so the
optimiser step gives the network the weighted-loss gradient and the weights the GradNorm gradient.
Needs the last shared layer (``shared_parameters = "last"``). Non-task terms are added unweighted.
alpha: 1.5 (NYU in the paper); XTasC-Net uses 0.16.

Under DDP (``sync=True``, the default) the per-task gradients on ``W`` and the losses are averaged
over the processes before ``G_i``, ``r_i`` and ``L_i(0)`` are computed, so the weights get the
GradNorm gradient of the global batch, the same on every process (one all-reduce of
``K * |W| + K`` floats per step). ``sync=False`` computes them on each process's own batch and lets
DDP average the weight gradients: cheaper, but the norm of a mean is not the mean of the norms, so
the result then depends on the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._shared import average_over_processes_
from densemtl.weighting.base import Weighting


@WEIGHTINGS.register("gradnorm")
class GradNorm(Weighting):
    """GradNorm (Chen et al., ICML 2018, Eq. 6): learned weights that balance gradient norms."""

    shared_parameters = "last"

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5, sync: bool = True) -> None:
        super().__init__(tasks)
        self.alpha = float(alpha)
        self.sync = sync
        self.task_weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial", torch.zeros(len(self.tasks)))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        k = len(self.tasks)
        with torch.no_grad():  # renormalise after the previous optimiser step
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(k / self.task_weights.sum())
        task_losses = torch.stack([terms[t] for t in self.tasks])
        w = self.task_weights
        total = (w.detach() * task_losses).sum()
        extra = list(terms.extra().values())
        if extra:
            total = total + sum(extra)
        if not self.active(task_losses):
            return total
        if not shared_parameters:
            raise ValueError("gradnorm needs the last shared layer: pass shared_parameters")
        layer = list(shared_parameters)
        grads = []
        for i in range(k):
            g = torch.autograd.grad(task_losses[i], layer, retain_graph=True, allow_unused=True)
            grads.append(
                torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, layer)])
            )
        # one all-reduce for the [K, |W|] gradients and the K losses
        stats = torch.cat([torch.stack(grads).float().flatten(), task_losses.detach().float()])
        if self.sync:
            average_over_processes_(stats)
        grads_t, losses_t = stats[:-k].view(k, -1), stats[-k:]
        if not bool(self.initialised):
            self.initial.copy_(losses_t)
            self.initialised.fill_(True)
        norms = grads_t.norm(dim=1)
        norms_t = w * norms.to(w.dtype)  # G_i = w_i ||grad L_i||
        ratio = losses_t.to(w.dtype) / self.initial.clamp_min(1e-12)
        ratio = ratio / ratio.mean()
        target = (norms_t.mean() * ratio**self.alpha).detach()
        grad_loss = (norms_t - target).abs().sum()
        (grad_w,) = torch.autograd.grad(grad_loss, w)
        return total + (w * grad_w.detach()).sum()

    def weights(self) -> dict[str, float]:
        return {t: float(x) for t, x in zip(self.tasks, self.task_weights.detach())}
