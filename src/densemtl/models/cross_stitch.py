"""Cross-stitch networks (Misra et al., CVPR 2016), as in Vandenhende et al.'s Multi-Task-Learning-PyTorch.

One dilated ResNet-50 + DeepLab-v3 ASPP head per task; after each of the five ResNet stages
(stem conv, layer1, layer2, layer3, layer4; every stage of any other backbone) a cross-stitch unit mixes the task features with
per-channel weights: ``x_i' = sum_j a_ij * x_j``, ``a_ii`` initialised to ``alpha`` (0.9) and
``a_ij`` to ``beta`` (0.1). 79,293,097 parameters for 40 classes + depth = 75.62 Mi (seed table: 75.8).
Recipe: SGD 1e-3 (configs/nyud_mtl_baselines.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS
from densemtl.models.blocks.stages import MixedStagesNetwork


class CrossStitchUnit(nn.Module):
    """Per-channel linear combination of the task features (``weights[i][j]``: from task j into task i)."""

    def __init__(self, tasks: Sequence[str], channels: int, alpha: float = 0.9, beta: float = 0.1) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.weights = nn.ParameterDict(
            {
                f"{ti}__{tj}": nn.Parameter(torch.full((channels,), alpha if ti == tj else beta))
                for ti in self.tasks
                for tj in self.tasks
            }
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            ti: sum(self.weights[f"{ti}__{tj}"].view(1, -1, 1, 1) * features[tj] for tj in self.tasks)  # type: ignore[misc]
            for ti in self.tasks
        }


@MODELS.register("cross_stitch")
class CrossStitchNetwork(MixedStagesNetwork):
    """Per-task encoders joined by cross-stitch units after the stages in ``stages``.

    Args:
        backbone / stages / aspp_rates / aspp_channels: see :class:`~densemtl.models.blocks.stages.MixedStagesNetwork`
            (default: every stage of a dilated ResNet-50).
        alpha / beta: initial self / cross weights of the units.
    """

    model_name = "cross_stitch"

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        stages: Sequence[int | str] | None = None,
        alpha: float = 0.9,
        beta: float = 0.1,
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            tasks,
            backbone,
            stages,
            aspp_rates,
            lambda names, channels: CrossStitchUnit(names, channels, alpha, beta),
            "units",
            aspp_channels,
            **kwargs,
        )
