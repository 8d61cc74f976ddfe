"""FAMO, fast adaptive multitask optimization (Liu, Liu, Stone & Liu, NeurIPS 2023, Alg. 1).

Loss-based with O(1) memory and no per-task backward: task logits ``xi`` give weights
``z = softmax(xi)``; the training loss is ``sum_t z_t log(L_t - b_t) / c`` with ``c = sum_t z_t /
(L_t - b_t)`` held constant (Sec. 3; ``b_t`` the loss lower bounds, 0), which decreases every
``log L_t`` at the same rate to first order. After each step the logits follow the observed
improvements ``delta_t = log L_t(before) - log L_t(after)``: ``xi`` takes an Adam step (lr
``w_lr`` = 0.025, weight decay ``gamma`` = 0.001, the paper's values) on ``J_softmax(xi)^T delta``. As in the authors' lighter mode, "after" is the next training step's loss (no extra
forward pass). The Adam step is written out (hand-written: its moments are buffers, so a
checkpoint restores them and the module's optimiser never sees ``xi``).

Under DDP (``sync=True``) the losses are averaged over the processes first (one all-reduce of
``K`` floats): ``xi`` stays identical everywhere and the gradient is that of the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting._gradients import linearised
from densemtl.weighting._shared import average_over_processes_
from densemtl.weighting.base import Weighting


@WEIGHTINGS.register("famo")
class FAMO(Weighting):
    def __init__(
        self,
        tasks: Sequence[str],
        w_lr: float = 0.025,
        gamma: float = 0.001,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        sync: bool = True,
    ) -> None:
        super().__init__(tasks)
        self.w_lr, self.gamma, self.eps, self.sync = float(w_lr), float(gamma), float(eps), bool(sync)
        self.betas = tuple(float(b) for b in betas)
        k = len(self.tasks)
        for name in ("logits", "exp_avg", "exp_avg_sq", "previous"):
            self.register_buffer(name, torch.zeros(k))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))
        self.register_buffer("lower_bounds", torch.zeros(k))

    def update_logits(self, before: torch.Tensor, after: torch.Tensor) -> None:
        """One Adam step of ``xi`` on ``J_softmax^T delta``."""
        delta = (before - self.lower_bounds + 1e-8).log() - (after - self.lower_bounds + 1e-8).log()
        z = torch.softmax(self.logits, 0)
        grad = z * delta - z * (z * delta).sum() + self.gamma * self.logits  # + L2 (Adam's weight_decay)
        b1, b2 = self.betas
        self.adam_step += 1
        t = int(self.adam_step)
        self.exp_avg.mul_(b1).add_((1 - b1) * grad)
        self.exp_avg_sq.mul_(b2).add_((1 - b2) * grad.square())
        denom = (self.exp_avg_sq / (1 - b2**t)).sqrt() + self.eps
        self.logits.sub_(self.w_lr / (1 - b1**t) * self.exp_avg / denom)

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        losses = torch.stack(list(terms.per_task(self.tasks).values()))
        mean = losses.detach().float().clone()
        train = self.active(losses)
        if train:
            if self.sync:
                average_over_processes_(mean)
            if bool(self.has_previous):
                self.update_logits(self.previous, mean)
            self.previous.copy_(mean)
            self.has_previous.fill_(True)
        z = torch.softmax(self.logits, 0)
        gap = (mean - self.lower_bounds).clamp_min(1e-8)
        c = (z / gap).sum()
        return linearised(((z * gap.log()).sum() / c).to(losses.dtype), z / (c * gap), losses)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.softmax(self.logits, 0).tolist()))
