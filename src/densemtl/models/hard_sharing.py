"""Hard parameter sharing (Caruana, 1997; the "MTL baseline" of Vandenhende et al., TPAMI 2021).

One shared encoder, one decoder and head per task.

Example::

    model = build_model("hard_sharing", tasks={"semseg": 40, "depth": 1}, backbone="resnet18")
    out = model(torch.rand(1, 3, 240, 320))  # {"semseg": [1,40,240,320], "depth": [1,1,240,320]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.heads import FPNDecoder, TaskHead


class HardSharing(MultiTaskModel):
    """Shared encoder -> per-task FPN decoder -> per-task head."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] = "resnet18",
        decoder_channels: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoder = build_encoder(backbone)
        in_channels = self.encoder.feature_info.channels()
        self.decoders = nn.ModuleDict({t: FPNDecoder(in_channels, decoder_channels) for t in self.tasks})
        self.heads = nn.ModuleDict({t: TaskHead(decoder_channels, c) for t, c in self.tasks.items()})

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder.forward_features(x)
        return {t: self.heads[t](self.decoders[t](features)) for t in self.tasks}


MODELS.register("hard_sharing")(HardSharing)
