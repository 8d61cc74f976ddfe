"""MTL, hard parameter sharing (Luo & Ye 2023, NYUD-v2 table): one dilated ResNet-50, an ASPP head per task.

Vandenhende et al.'s "MTL baseline" (Multi-Task-Learning-PyTorch ``models/models.py``
``MultiTaskModel``): 55,769,449 parameters for 40 classes + depth (53.18 Mi).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.aspp import DeepLabHead, encoder_spec


@MODELS.register("mtl_hps")
class MTLHardSharing(MultiTaskModel):
    """Shared encoder -> per-task ``DeepLabHead`` on the last feature map."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoder = build_encoder(encoder_spec(backbone))
        channels = self.encoder.feature_info.channels()[-1]
        self.heads = nn.ModuleDict(
            {t: DeepLabHead(channels, c, aspp_rates, aspp_channels) for t, c in self.tasks.items()}
        )

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder.forward_features(x)[-1]
        return {t: self.heads[t](features) for t in self.tasks}
