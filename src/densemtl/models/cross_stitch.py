"""Cross-stitch networks (Misra et al., CVPR 2016), as in Vandenhende et al.'s Multi-Task-Learning-PyTorch.

One dilated ResNet-50 + DeepLab-v3 ASPP head per task; after each of the five ResNet stages
(stem conv, layer1, layer2, layer3, layer4) a cross-stitch unit mixes the task features with
per-channel weights: ``x_i' = sum_j a_ij * x_j``, ``a_ii`` initialised to ``alpha`` (0.9) and
``a_ij`` to ``beta`` (0.1). 79,293,097 parameters for 40 classes + depth = 75.62 Mi (seed table: 75.8).
Recipe: SGD 1e-3 (configs/nyud_mtl_baselines.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.aspp import (
    RESNET_STAGES,
    DeepLabHead,
    encoder_spec,
    forward_task_stages,
    resnet_stage_channels,
)


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
class CrossStitchNetwork(MultiTaskModel):
    """Per-task encoders joined by cross-stitch units after the stages named in ``stages``."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        stages: Sequence[str] = RESNET_STAGES,
        alpha: float = 0.9,
        beta: float = 0.1,
        aspp_rates: Sequence[int] = (12, 24, 36),
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        unknown = set(stages) - set(RESNET_STAGES)
        if unknown:
            raise ValueError(f"cross_stitch: unknown stages {sorted(unknown)}; choose from {RESNET_STAGES}")
        self.encoders = nn.ModuleDict({t: build_encoder(encoder_spec(backbone)) for t in self.tasks})
        channels = resnet_stage_channels(next(iter(self.encoders.values())))
        self.stage_names = [s for s in RESNET_STAGES if s in stages]
        self.units = nn.ModuleDict(
            {
                s: CrossStitchUnit(list(self.tasks), channels[RESNET_STAGES.index(s)], alpha, beta)
                for s in self.stage_names
            }
        )
        self.heads = nn.ModuleDict(
            {t: DeepLabHead(channels[-1], c, aspp_rates) for t, c in self.tasks.items()}
        )

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = forward_task_stages(self.encoders, x, self.units)
        return {t: self.heads[t](feats[t]) for t in self.tasks}
