"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Pure PyTorch, a drop-in for ``torchvision.models.mobilenet_v2``: same module tree, state-dict keys
and shapes (``features.0.0.weight`` ... ``features.18.1.running_var``, ``classifier.1.weight``),
initialisation and ``forward`` (ImageNet logits), so torchvision checkpoints load as-is. It is the
encoder of Multi-Task Light-Weight RefineNet (Nekrasov et al. 2019).

Stage API (:mod:`densemtl.models.backbones.features`, ``docs/backbones.md``): stage ``i`` ends with
the last block of a resolution, timm's numbering of levels; ``forward_features(x)`` returns the
stages in ``out_indices``::

    stage  name    modules           channels  reduction
    0      stage0  features.0 .. 1   16        2
    1      stage1  features.2 .. 3   24        4      <- default
    2      stage2  features.4 .. 6   32        8      <- default
    3      stage3  features.7 .. 13  96        16     <- default
    4      stage4  features.14 .. 17 320       32     <- default
    5      stage5  features.18       1280      32     (the final 1x1 conv of the classifier path)

The default ``out_indices=(1, 2, 3, 4)`` gives strides 4/8/16/32 with 24/32/96/320 channels, as
timm's ``features_only`` and the dense-prediction literature; the 1280-channel conv exists for the
classifier and is rarely used by decoders (it adds 410k parameters and a 320->1280 conv at stride 32),
so it is opt-in with index 5. With ``features_only=True`` modules no requested level needs
(``features.18`` unless index 5 is asked for, and ``classifier``) are not built.

``output_stride`` (16 or 8) replaces the last stride-2 downsamplings with dilation of the depthwise
convs (as DeepLabv3+ / torchvision's segmentation MobileNetV3 do); it adds no parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from densemtl.errors import ConfigError
from densemtl.models.backbones.features import Stage, StageBackbone

__all__ = ["ConvBNReLU6", "InvertedResidual", "MobileNetV2", "mobilenet_v2"]

#: (expansion t, channels c, repeats n, stride s) per stage, Table 2 of Sandler et al. 2018.
INVERTED_RESIDUAL_SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]

#: stage index -> index of ``features`` whose output ends the stage
_TAPS: tuple[int, ...] = (1, 3, 6, 13, 17, 18)


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without going below 90% (torchvision / TF)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def features_stages(
    taps: Sequence[int], channels: Sequence[int], reductions: Sequence[int], dilations: Sequence[int]
) -> list[Stage]:
    """Stages of a ``features`` Sequential: stage ``i`` runs ``features.(taps[i-1]+1) .. taps[i]``."""
    stages, start = [], 0
    for i, j in enumerate(taps):
        names = tuple(f"features.{k}" for k in range(start, j + 1))
        stages.append(Stage(f"stage{i}", names, channels[j], reductions[j], dilations[j]))
        start = j + 1
    return stages


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU6; keys ``0.weight``, ``1.*`` like torchvision's
    ``Conv2dNormActivation``."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(
                in_planes,
                out_planes,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )
        self.out_channels = out_planes


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck: 1x1 expand -> 3x3 depthwise -> 1x1 project (no ReLU)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        self.stride = stride
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden_dim, kernel_size=1))
        layers.extend(
            [
                ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, dilation=dilation),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (expand, depthwise, linear projection)."""
        return self.conv(x)

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``x + out`` where the block is residual, else ``out`` (linear bottleneck: no activation)."""
        return x + out if self.use_res_connect else out

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(self.branch(x), x)


class MobileNetV2(StageBackbone):
    """MobileNetV2 (Sandler et al. 2018) with torchvision's module names, init and ``forward``.

    Args:
        num_classes: size of the classifier (``classifier.1``).
        width_mult: channel multiplier (torchvision's argument; checkpoints exist for 1.0 only).
        dropout: dropout before the classifier (0.2 as torchvision).
        features_only: build only what ``forward_features`` needs; ``forward`` returns the feature list.
        out_indices: levels returned by ``forward_features`` (see the module docstring). Default
            (1, 2, 3, 4): strides 4/8/16/32, channels 24/32/96/320.
        output_stride: 32 (default), 16 or 8; strides beyond it become dilation.
    """

    output_strides = (8, 16, 32)

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        features_only: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        output_stride: int = 32,
        round_nearest: int = 8,
    ) -> None:
        super().__init__()
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in range(len(_TAPS)) for i in out_indices):
            raise ConfigError(
                f"mobilenet_v2 out_indices must be a non-empty subset of 0..5, got {out_indices}"
            )
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"mobilenet_v2 output_stride must be 8, 16 or 32, got {output_stride}")
        self.out_indices = out_indices
        self.features_only = features_only

        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU6(3, input_channel, stride=2)]
        current_stride, dilation = 2, 1
        channels = [input_channel]
        reductions = [2]
        dilations = [1]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                block_dilation = dilation
                if stride > 1 and current_stride >= output_stride:
                    # keep the previous dilation where the stride was, the new one after it
                    dilation *= stride
                    stride = 1
                else:
                    current_stride *= stride
                features.append(InvertedResidual(input_channel, output_channel, stride, t, block_dilation))
                input_channel = output_channel
                channels.append(output_channel)
                reductions.append(current_stride)
                dilations.append(dilation)
        need_last = not features_only or 5 in out_indices
        if need_last:
            features.append(ConvBNReLU6(input_channel, self.last_channel, kernel_size=1))
        channels.append(self.last_channel)
        reductions.append(current_stride)
        dilations.append(dilation)
        self.features = nn.Sequential(*features)

        #: state-dict prefixes of the torchvision network this instance does not build
        self.dropped_prefixes: tuple[str, ...] = ()
        if features_only:
            self.dropped_prefixes = ("classifier.",) + (() if need_last else ("features.18.",))
        else:
            self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

        self._set_stages(
            features_stages(_TAPS[: 6 if need_last else 5], channels, reductions, dilations), out_indices
        )
        self.num_features = self.last_channel

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:  # type: ignore[override]
        """ImageNet logits ``[B, num_classes]`` as torchvision; the feature list if ``features_only``."""
        if self.features_only:
            return self.forward_features(x)
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


def mobilenet_v2(weights: str | Path | None = None, num_classes: int = 1000, **kwargs: object) -> MobileNetV2:
    """MobileNetV2 (Sandler et al. 2018): 3,504,872 parameters with the 1000-class head.

    ``weights`` is the path of a local checkpoint (``.pth`` / ``.pt`` / ``.safetensors``, e.g.
    torchvision's ``mobilenet_v2-b0353104.pth``); nothing is ever downloaded. Other keyword arguments
    (``features_only``, ``out_indices``, ``output_stride``, ``width_mult``, ``dropout``) go to
    :class:`MobileNetV2`.
    """
    model = MobileNetV2(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
    if weights is not None:
        from densemtl.models.backbones.weights import load_pretrained

        load_pretrained(model, weights)
    return model
