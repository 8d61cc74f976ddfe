"""Geometric loss strategy (Chennupati, Sistu, Yogamani & Rawashdeh, "MultiNet++: Multi-Stream
Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPRW 2019).

``L = (prod_t L_t)^(1/K)``: scale-invariant in every task (its gradient is
``sum_t L / (K L_t) grad L_t``, so a task whose loss is small gets a larger weight). A task's extra
terms join its loss. Loss-based, no parameters. Under DDP (``sync=True``) the weights
``L / (K L_t)`` are computed from the losses averaged over the processes (one all-reduce of ``K``
floats), which makes the gradient that of the global batch.
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


@WEIGHTINGS.register("gls")
class GeometricLossStrategy(Weighting):
    def __init__(self, tasks: Sequence[str], sync: bool = True) -> None:
        super().__init__(tasks)
        self.sync = bool(sync)
        self.register_buffer("current", torch.ones(len(self.tasks)))

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        losses = torch.stack(list(terms.per_task(self.tasks).values()))
        mean = losses.detach().float().clone()
        if self.sync and self.active(losses):
            average_over_processes_(mean)
        value = mean.clamp_min(1e-12).log().mean().exp()
        weights = value / (len(self.tasks) * mean.clamp_min(1e-12))
        if self.active(losses):
            self.current.copy_(weights)
        return linearised(value.to(losses.dtype), weights, losses)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.current.tolist()))
