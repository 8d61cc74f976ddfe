"""Fixed task weights: ``L = sum_t w_t L_t`` (equal weighting by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.weighting import WEIGHTINGS


@WEIGHTINGS.register("fixed")
class FixedWeighting(nn.Module):
    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        weights = dict(weights or {})
        unknown = set(weights) - set(tasks)
        if unknown:
            raise ConfigError(f"task weights given for unknown tasks {sorted(unknown)}; tasks are {list(tasks)}")
        self.task_weights = {t: float(weights.get(t, 1.0)) for t in tasks}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.task_weights[t] * loss for t, loss in losses.items())

    def weights(self) -> dict[str, float]:
        return dict(self.task_weights)
