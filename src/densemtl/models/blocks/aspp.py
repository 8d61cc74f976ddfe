"""Building blocks shared by the seed-002 architectures (issue 6): DeepLab-v3 ASPP head, SE block,
PSPNet pyramid pooling, and stage-wise access to our ResNet encoders.

``DeepLabHead`` is the head of Vandenhende et al.'s Multi-Task-Learning-PyTorch
(``models/aspp.py``, itself torchvision's DeepLab-v3 head): ASPP (1x1, three 3x3 convs with
dilation 12/24/36, image pooling; 256 channels each; concat -> 1x1 -> BN -> ReLU -> Dropout 0.5)
-> 3x3 conv 256 + BN + ReLU -> 1x1 classifier. On a ResNet-50 (2048 channels) with 40 classes it
has 16,135,720 parameters, so that backbone + head = 39,643,752 (docs/methods.md, seed 002).

This module registers no architecture; the model files import from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: the encoder of every seed-002 model: ResNet-50 dilated to output stride 8
DEFAULT_BACKBONE: dict[str, Any] = {"name": "resnet50", "output_stride": 8}


class ASPPConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ASPPPooling(nn.Sequential):
    """Image-level pooling branch (global average pool -> 1x1 conv -> BN -> ReLU -> upsample)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLab-v3 (Chen et al., 2017)."""

    def __init__(
        self,
        in_channels: int,
        rates: Sequence[int] = (12, 24, 36),
        out_channels: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
        ]
        branches += [ASPPConv(in_channels, out_channels, r) for r in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP -> 3x3 conv-BN-ReLU -> 1x1 prediction (Vandenhende's / torchvision's DeepLab-v3 head)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rates: Sequence[int] = (12, 24, 36),
        channels: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(
            ASPP(in_channels, rates, channels, dropout),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, 1),
        )


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): ``x * sigmoid(W2 relu(W1 GAP(x)))``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module and its 3x3 fusion conv (Zhao et al., CVPR 2017; hszhao/semseg).

    Bins ``(1, 2, 3, 6)``, each average-pooled map -> 1x1 conv ``in/len(bins)`` -> BN -> ReLU ->
    upsample, concatenated with the input, then 3x3 conv -> ``out_channels`` -> BN -> ReLU -> Dropout.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 512,
        bins: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        reduced = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, reduced, 1, bias=False),
                nn.BatchNorm2d(reduced),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels + reduced * len(bins), out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages
        ]
        return self.fuse(torch.cat([x, *pooled], dim=1))


# ----------------------------------------------------------------------------- ResNet stages

#: stage names of Vandenhende's ResNet wrappers: stem conv, maxpool + layer1, layer2..4
RESNET_STAGES = ("conv", "layer1_without_conv", "layer2", "layer3", "layer4")


def resnet_stage_channels(encoder: nn.Module) -> list[int]:
    """Output channels of the five stages of :data:`RESNET_STAGES`."""
    e = int(encoder.num_features) // 512
    return [64, 64 * e, 128 * e, 256 * e, 512 * e]


def resnet_stage(encoder: nn.Module, index: int, x: torch.Tensor) -> torch.Tensor:
    """Run stage ``index`` (0..4) of a densemtl ResNet encoder on ``x``."""
    if index == 0:
        return encoder.relu(encoder.bn1(encoder.conv1(x)))
    if index == 1:
        return encoder.layer1(encoder.maxpool(x))
    return getattr(encoder, f"layer{index}")(x)


def forward_task_stages(
    encoders: nn.ModuleDict, x: torch.Tensor, mixers: nn.ModuleDict
) -> dict[str, torch.Tensor]:
    """One ResNet encoder per task, run stage by stage on ``x``, task features mixed between stages.

    After each stage of :data:`RESNET_STAGES` that names a module in ``mixers``, that module maps
    the ``{task: features}`` dict to the mixed one (cross-stitch units, NDDR layers); the forward of
    Vandenhende et al.'s ``models/cross_stitch.py`` and ``models/nddr_cnn.py``. Returns the last
    stage's features per task.
    """
    feats = {t: x for t in encoders}
    for i, stage in enumerate(RESNET_STAGES):
        feats = {t: resnet_stage(encoder, i, feats[t]) for t, encoder in encoders.items()}
        if stage in mixers:
            feats = mixers[stage](feats)
    return feats


def encoder_spec(backbone: str | Mapping[str, Any] | None) -> str | dict[str, Any]:
    """The backbone spec with seed-002 defaults: ``None`` -> dilated ResNet-50 (output stride 8)."""
    if backbone is None:
        return dict(DEFAULT_BACKBONE)
    return backbone if isinstance(backbone, str) else dict(backbone)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
