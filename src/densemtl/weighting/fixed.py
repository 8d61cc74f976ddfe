"""Fixed weights: ``L = sum_t w_t L_t`` (equal weighting by default).

Weights may name tasks or extra loss terms (``"depth:initial"``); unnamed terms weigh 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting.base import Weighting


@WEIGHTINGS.register("fixed")
class FixedWeighting(Weighting):
    """Fixed task weights, ``L = sum_t w_t L_t`` (equal weighting by default)."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = {k for k in weights if k.partition(":")[0] not in tasks}
        if unknown:
            raise ConfigError(
                f"loss weights given for unknown tasks {sorted(unknown)}; tasks are {list(tasks)}"
            )
        self.task_weights = {t: 1.0 for t in tasks} | {k: float(v) for k, v in weights.items()}

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        return sum(self.task_weights.get(t, 1.0) * loss for t, loss in terms.items())

    def weights(self) -> dict[str, float]:
        return dict(self.task_weights)
