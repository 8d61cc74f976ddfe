"""MTL_SPP, "multi-task learning with SE and pyramid pooling" (Luo & Ye, Computer Science 2023) — a
RECONSTRUCTION from the paper's abstract and parameter column (docs/methods.md, seed 002).

What the abstract says: a shared backbone feature network plus task-specific sub-networks built from
squeeze-and-excitation (SE) modules, and pyramid pooling to enhance the features. Reconstruction:

* shared: dilated ResNet-50 stem .. ``layer3`` (``task_stages`` names the trailing ResNet stages that
  are *not* shared);
* task-specific sub-network: a per-task copy of ``layer4`` (initialised from the same, possibly
  pretrained, weights) whose bottlenecks are SE-ResNet blocks (SE on the residual branch before the
  addition, reduction ``se_reduction`` = 16); ``se=False`` drops the SE modules;
* per-task head: PSPNet pyramid pooling (bins 1/2/3/6, 2048 -> 4 x 512, concat, 3x3 conv -> 512,
  BN, ReLU, Dropout 0.1) + 1x1 classifier (``head="ppm"``), or the DeepLab-v3 ASPP head (``"aspp"``).

Counts for 40 classes + depth, in Mi (2^20): default 83.73 (paper 83.91, -0.2%);
``task_stages=[], se=False`` = the paper's "MTL_PP" ablation, 66.45 (paper 66.43).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.aspp import (
    DeepLabHead,
    PyramidPooling,
    SEBlock,
    encoder_spec,
    resnet_stage,
    resnet_stage_channels,
)

LAYERS = ("layer1", "layer2", "layer3", "layer4")


class SEResidual(nn.Module):
    """Wraps a torchvision-style ResNet block so that SE rescales its residual branch (SE-ResNet)."""

    def __init__(self, block: nn.Module, reduction: int = 16) -> None:
        super().__init__()
        self.block = block
        last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
        self.se = SEBlock(last_bn.num_features, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        out = b.relu(b.bn1(b.conv1(x)))
        if hasattr(b, "conv3"):
            out = b.relu(b.bn2(b.conv2(out)))
            out = b.bn3(b.conv3(out))
        else:
            out = b.bn2(b.conv2(out))
        identity = b.downsample(x) if b.downsample is not None else x
        return b.relu(self.se(out) + identity)


class PPMHead(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, channels: int = 512) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_channels, channels)
        self.classifier = nn.Conv2d(channels, out_channels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.ppm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.ppm(x))


@MODELS.register("mtl_spp")
class MTLSPP(MultiTaskModel):
    """Shared ResNet trunk -> per-task SE-ResNet stage(s) -> per-task pyramid-pooling head."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        task_stages: Sequence[str] = ("layer4",),
        se: bool = True,
        se_reduction: int = 16,
        head: str = "ppm",
        ppm_channels: int = 512,
        aspp_rates: Sequence[int] = (12, 24, 36),
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        task_stages = list(task_stages)
        if any(s not in LAYERS for s in task_stages) or task_stages != list(
            LAYERS[len(LAYERS) - len(task_stages) :]
        ):
            raise ValueError(
                f"mtl_spp: task_stages must be trailing ResNet layers, e.g. ['layer4'], got {task_stages}"
            )
        if head not in ("ppm", "aspp"):
            raise ValueError(f"mtl_spp: head must be 'ppm' or 'aspp', got {head!r}")
        self.encoder = build_encoder(encoder_spec(backbone))
        channels = resnet_stage_channels(self.encoder)[-1]
        self.num_shared = 5 - len(task_stages)  # stages 0..num_shared-1 are shared
        branches = {}
        for t in self.tasks:
            stages = []
            for name in task_stages:
                layer = copy.deepcopy(getattr(self.encoder, name))
                if se:
                    layer = nn.Sequential(*(SEResidual(block, se_reduction) for block in layer))
                stages.append(layer)
            branches[t] = nn.Sequential(*stages)
        for name in task_stages:  # the shared copies are never run: drop them
            setattr(self.encoder, name, nn.Identity())
        if not task_stages and se:
            branches = {t: nn.Sequential(SEBlock(channels, se_reduction)) for t in self.tasks}
        self.branches = nn.ModuleDict(branches)
        self.heads = nn.ModuleDict(
            {
                t: PPMHead(channels, c, ppm_channels)
                if head == "ppm"
                else DeepLabHead(channels, c, aspp_rates)
                for t, c in self.tasks.items()
            }
        )
        self.branch_channels = channels

    def shared_features(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_shared):
            x = resnet_stage(self.encoder, i, x)
        return x

    def task_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.shared_features(x)
        return {t: self.branches[t](shared) for t in self.tasks}

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.task_features(x)
        return {t: self.heads[t](feats[t]) for t in self.tasks}
