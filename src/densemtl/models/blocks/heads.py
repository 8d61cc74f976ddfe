"""Task heads and light decoders shared by the baseline architectures."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.models.base import conv_bn_relu


class FPNDecoder(nn.Module):
    """A light Feature Pyramid Network decoder (Lin et al., CVPR 2017; Kirillov et al. "Panoptic FPN").

    Lateral 1x1 projections of every encoder level, top-down upsample-and-add, then each level is
    refined and upsampled to the finest level and summed (the semantic-FPN merge), giving one
    ``channels``-wide map at the finest encoder stride.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 128) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels) for _ in in_channels)
        self.out_channels = channels

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        laterals = [lat(f) for lat, f in zip(self.lateral, features)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="bilinear", align_corners=False
            )
        size = laterals[0].shape[-2:]
        merged = self.smooth[0](laterals[0])
        for i in range(1, len(laterals)):
            merged = merged + F.interpolate(
                self.smooth[i](laterals[i]), size=size, mode="bilinear", align_corners=False
            )
        return merged


class TaskHead(nn.Module):
    """3x3 conv-BN-ReLU then a 1x1 prediction conv."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_channels
        self.block = conv_bn_relu(in_channels, hidden)
        self.predict = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.block(x))
