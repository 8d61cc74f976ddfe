"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019, Eq. 7): ``w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T)``,
``r_k(t-1) = L_k(t-1) / L_k(t-2)`` with ``L_k(t)`` the mean training loss of task k over period t.

Liu et al. average over epochs; here a period is ``period`` training calls (set it to the steps per
epoch to reproduce them) or ends when :meth:`end_period` is called. The first two periods use
weight 1. Non-task terms are added unweighted. Weights are not learned (no parameters, DDP-safe;
every rank sees its own losses, which differ only by sampling noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting.base import Weighting


@WEIGHTINGS.register("dwa")
class DynamicWeightAverage(Weighting):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, Eq. 7)."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0, period: int | None = 100) -> None:
        super().__init__(tasks)
        self.temperature = float(temperature)
        self.period = period
        k = len(self.tasks)
        self.register_buffer("history", torch.zeros(2, k))  # mean losses of periods t-2, t-1
        self.register_buffer("periods_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("running", torch.zeros(k))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("current", torch.ones(k))

    def end_period(self) -> None:
        if int(self.count) == 0:
            return
        mean = self.running / self.count
        self.history[0] = self.history[1]
        self.history[1] = mean
        self.periods_done += 1
        self.running.zero_()
        self.count.zero_()
        if int(self.periods_done) >= 2:
            ratio = self.history[1] / self.history[0].clamp_min(1e-12)
            self.current = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.running += torch.stack([terms[t].detach().float() for t in self.tasks]).to(self.running)
                self.count += 1
        w = self.current.clone()
        total = self.add_extra_terms(sum(w[i] * terms[t] for i, t in enumerate(self.tasks)), terms)
        if self.training and torch.is_grad_enabled() and self.period and int(self.count) >= self.period:
            self.end_period()
        return total

    def weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(self.tasks, self.current)}
