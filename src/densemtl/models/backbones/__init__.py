"""Encoders: torchvision-identical ResNets and MobileNetV2 with a timm-like multi-scale API.

Every backbone has ``feature_info`` (``num_chs`` / ``reduction`` per level), ``forward_features(x)``
(a list of maps, strides 4/8/16/32 unless dilated) and ``forward(x)`` (ImageNet logits, or the
feature list when built with ``features_only=True``). See ``docs/backbones.md``.

    >>> from densemtl.models.backbones import build_backbone
    >>> enc = build_backbone("resnet50", weights="resnet50-0676ba61.pth", output_stride=8,
    ...                      features_only=True)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from densemtl.models.backbones.mobilenetv2 import MobileNetV2, mobilenet_v2
from densemtl.models.backbones.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from densemtl.registry import Registry

__all__ = [
    "BACKBONES",
    "MobileNetV2",
    "ResNet",
    "build_backbone",
    "mobilenet_v2",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]

BACKBONES: Registry = Registry("backbone")
BACKBONES.register("resnet18")(resnet18)
BACKBONES.register("resnet34")(resnet34)
BACKBONES.register("resnet50")(resnet50)
BACKBONES.register("resnet101")(resnet101)
BACKBONES.register("mobilenet_v2")(mobilenet_v2)


def build_backbone(name: str, weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name``; ``weights`` is a local checkpoint path or None.

    Keyword arguments go to the constructor (``features_only``, ``out_indices``, ``output_stride``,
    ``replace_stride_with_dilation``, ``num_classes``, ...). Unknown names raise ``ConfigError``.
    """
    return BACKBONES.get(name)(weights=weights, **kwargs)
