"""Single-task baselines (the STL rows of Vandenhende et al., TPAMI 2021): one encoder-decoder network per task.

With one task this is the plain single-task network Δ_MTL is measured against; with several,
the networks share nothing (the "STL" row of multi-task tables), so it trains them side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.heads import FPNDecoder, TaskHead


class SingleTask(MultiTaskModel):
    """One ``encoder -> FPN decoder -> head`` network per task, no shared parameters."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] = "resnet18",
        decoder_channels: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoders = nn.ModuleDict({t: build_encoder(backbone) for t in self.tasks})
        self.decoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for task, channels in self.tasks.items():
            in_channels = self.encoders[task].feature_info.channels()
            self.decoders[task] = FPNDecoder(in_channels, decoder_channels)
            self.heads[task] = TaskHead(decoder_channels, channels)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Nothing is shared: an empty list (gradient-based weightings have nothing to work on)."""
        return []

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](self.decoders[t](self.encoders[t].forward_features(x))) for t in self.tasks}


MODELS.register("single_task")(SingleTask)
