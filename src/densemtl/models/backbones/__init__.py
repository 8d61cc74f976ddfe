"""Encoders: torchvision-identical ResNets and MobileNetV2, and the MT-RefineNet MobileNet-v2.

Every backbone is a :class:`~densemtl.models.backbones.features.StageBackbone`: a declared stage
table, ``feature_info`` (a :class:`~densemtl.models.backbones.features.FeatureInfo`: channels and
reduction per returned level), ``forward_features(x)`` (a list of maps, strides 4/8/16/32 unless
dilated), ``forward_stage(i, x)`` for architectures that work between stages, and ``forward(x)``
(ImageNet logits, or the feature list when built with ``features_only=True``). See
``docs/backbones.md``.

    >>> from densemtl.models.backbones import build_backbone
    >>> enc = build_backbone("resnet50", weights="resnet50-0676ba61.pth", output_stride=8,
    ...                      features_only=True)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from densemtl.models.backbones.features import FeatureInfo, Stage, StageBackbone
from densemtl.models.backbones.mobilenetv2 import MobileNetV2, mobilenet_v2
from densemtl.models.backbones.mobilenetv2_refinenet import RefineNetMobileNetV2, mobilenet_v2_refinenet
from densemtl.models.backbones.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from densemtl.registry import Registry

__all__ = [
    "BACKBONES",
    "FeatureInfo",
    "MobileNetV2",
    "RefineNetMobileNetV2",
    "ResNet",
    "Stage",
    "StageBackbone",
    "build_backbone",
    "mobilenet_v2",
    "mobilenet_v2_refinenet",
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
BACKBONES.register("mobilenet_v2_refinenet")(mobilenet_v2_refinenet)


def build_backbone(name: str, weights: str | Path | None = None, **kwargs: Any) -> StageBackbone:
    """Build the backbone registered as ``name``; ``weights`` is a local checkpoint path or None.

    Keyword arguments go to the constructor (``features_only``, ``out_indices``, ``output_stride``,
    ``replace_stride_with_dilation``, ``num_classes``, ...). Unknown names raise ``ConfigError``.
    """
    model = BACKBONES.get(name)(weights=weights, **kwargs)
    model.backbone_name = name
    return model
