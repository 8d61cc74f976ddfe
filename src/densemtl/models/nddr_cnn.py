"""NDDR-CNN (Gao et al., CVPR 2019), as in Vandenhende et al.'s Multi-Task-Learning-PyTorch.

One dilated ResNet-50 + DeepLab-v3 ASPP head per task; after each of the five ResNet stages (every
stage of any other backbone) an NDDR layer per task concatenates all task features and reduces them
with a 1x1 conv (``T*C -> C``, no bias) + BN + ReLU. The conv is initialised to ``alpha * I`` on its own task's channels and ``beta * I`` on
the others' (0.9 / 0.1). 101,591,721 parameters for 40 classes + depth = 96.89 Mi (seed table: 96.9).
Recipe: SGD 1e-3 (configs/nyud_mtl_baselines.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS
from densemtl.models.blocks.stages import MixedStagesNetwork


class NDDRLayer(nn.Module):
    """Neural discriminative dimensionality reduction over the concatenated task features."""

    def __init__(
        self,
        tasks: Sequence[str],
        channels: int,
        alpha: float = 0.9,
        beta: float = 0.1,
        bn_momentum: float = 0.05,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        n = len(self.tasks)
        self.layers = nn.ModuleDict(
            {
                t: nn.Sequential(
                    nn.Conv2d(n * channels, channels, 1, bias=False),
                    nn.BatchNorm2d(channels, momentum=bn_momentum),
                    nn.ReLU(inplace=True),
                )
                for t in self.tasks
            }
        )
        eye = torch.eye(channels)
        with torch.no_grad():
            for i, t in enumerate(self.tasks):
                weight = torch.cat([eye * (alpha if j == i else beta) for j in range(n)], dim=1)
                self.layers[t][0].weight.copy_(weight.view(channels, n * channels, 1, 1))

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([features[t] for t in self.tasks], dim=1)
        return {t: self.layers[t](x) for t in self.tasks}


@MODELS.register("nddr_cnn")
class NDDRCNN(MixedStagesNetwork):
    """Per-task encoders joined by NDDR layers after the stages in ``stages``.

    Args:
        backbone / stages / aspp_rates / aspp_channels: see :class:`~densemtl.models.blocks.stages.MixedStagesNetwork`
            (default: every stage of a dilated ResNet-50).
        alpha / beta: initial self / cross weights of the NDDR convolutions.
    """

    model_name = "nddr_cnn"

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
            lambda names, channels: NDDRLayer(names, channels, alpha, beta),
            "nddr",
            aspp_channels,
            **kwargs,
        )
