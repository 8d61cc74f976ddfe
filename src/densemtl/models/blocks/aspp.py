"""Building blocks shared by the DeepLab-style architectures: DeepLab-v3 ASPP head, SE block, PSPNet
pyramid pooling, and the default encoder spec (stage-wise access to encoders is the backbones' stage
API, :mod:`densemtl.models.backbones.features`; per-task stage mixing is :mod:`.stages`).

``DeepLabHead`` is the head of Vandenhende et al.'s Multi-Task-Learning-PyTorch
(``models/aspp.py``, itself torchvision's DeepLab-v3 head): ASPP (1x1, three 3x3 convs with
dilation 12/24/36, image pooling; 256 channels each; concat -> 1x1 -> BN -> ReLU -> Dropout 0.5)
-> 3x3 conv 256 + BN + ReLU -> 1x1 classifier. On a ResNet-50 (2048 channels) with 40 classes it
has 16,135,720 parameters, so that backbone + head = 39,643,752 (docs/methods.md, Luo & Ye 2023).

This module registers no architecture; the model files import from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: the default encoder of the DeepLab-style models: ResNet-50 dilated to output stride 8
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


class ExportableAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` that ONNX can export at any fixed input size.

    ONNX has no adaptive pooling, and PyTorch's exporter handles only output sizes that divide the
    input. While tracing at such a size (``torch.onnx.export``, ``torch.jit.trace``) this computes the
    same pooling as ``P_h @ x @ P_w^T``, the per-bin averaging matrices of the traced size (bin ``i``
    of ``b`` over ``n`` covers ``[floor(i n / b), ceil((i + 1) n / b))``, PyTorch's rule): two MatMuls,
    equal up to float summation order. Eager calls run ``nn.AdaptiveAvgPool2d`` itself (bit-identical;
    no parameters or buffers, so state dicts are unchanged). The matrices are constants of the traced
    size, so such a graph is only valid at that size.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins = self.output_size if isinstance(self.output_size, tuple) else (self.output_size,) * 2
        height, width = (int(n) for n in x.shape[-2:])
        bin_h, bin_w = (n if b is None else b for b, n in zip(bins, (height, width)))
        if not torch.jit.is_tracing() or (height % bin_h == 0 and width % bin_w == 0):
            return super().forward(x)
        return _bin_means(bin_h, height, x) @ x @ _bin_means(bin_w, width, x).T


def _bin_means(bins: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """``[bins, size]`` matrix averaging each adaptive-pooling bin (PyTorch's start / end rule)."""
    matrix = torch.zeros(bins, size, dtype=like.dtype, device=like.device)
    for i in range(bins):
        start, end = (i * size) // bins, -(-((i + 1) * size) // bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


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
                ExportableAdaptiveAvgPool2d(b),
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


def encoder_spec(backbone: str | Mapping[str, Any] | None) -> str | dict[str, Any]:
    """The backbone spec with the DeepLab-style default: ``None`` -> dilated ResNet-50 (output stride 8)."""
    if backbone is None:
        return dict(DEFAULT_BACKBONE)
    return backbone if isinstance(backbone, str) else dict(backbone)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
