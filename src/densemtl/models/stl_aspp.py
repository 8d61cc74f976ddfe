"""STL_ASPP: one dilated ResNet-50 + DeepLab-v3 ASPP network per task (Luo & Ye 2023, single-task row).

Vandenhende et al.'s single-task NYUD baseline (Multi-Task-Learning-PyTorch, ``configs/nyud/resnet50``):
39,643,752 parameters for the 40-class segmentation network (37.81 Mi). With several tasks the
networks share nothing and simply train side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.aspp import DeepLabHead, encoder_spec


@MODELS.register("stl_aspp")
class STLASPP(MultiTaskModel):
    """Independent ``encoder -> DeepLabHead`` per task."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoders = nn.ModuleDict({t: build_encoder(encoder_spec(backbone)) for t in self.tasks})
        self.heads = nn.ModuleDict(
            {
                t: DeepLabHead(self.encoders[t].feature_info.channels()[-1], c, aspp_rates, aspp_channels)
                for t, c in self.tasks.items()
            }
        )

    def shared_parameters(self) -> list[nn.Parameter]:
        """Nothing is shared: an empty list (gradient-based weightings have nothing to work on)."""
        return []

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](self.encoders[t].forward_features(x)[-1]) for t in self.tasks}
