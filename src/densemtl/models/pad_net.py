"""PAD-Net (Xu et al., CVPR 2018), as in Vandenhende et al.'s Multi-Task-Learning-PyTorch ``models/padnet.py``.

Encoder (dilated ResNet-50, its last 2048-channel map) -> per task an initial prediction module
(BasicBlock ``C -> task_channels`` with a 1x1 projection shortcut, BasicBlock, 1x1 decoder giving
the *initial* prediction, deep-supervised in training as ``"<task>:initial"``) -> multi-modal
distillation (each task's features plus, from every other task, a spatial-attention-gated 3x3 conv
of that task's features, ``SABlock``) -> per task two bottleneck blocks and a 1x1 prediction.

Parameter count for 40 classes + depth: 40,199,826 = 38.34 Mi. The seed table says 66.9 Mi: the
reference PAD-Net (Vandenhende's, on a ResNet backbone) cannot reach it without changing the design
(docs/methods.md, seed 002, discusses candidates), so it is reported, not padded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.aspp import encoder_spec
from densemtl.models.backbones.resnet import BasicBlock, Bottleneck
from densemtl.models.base import MultiTaskModel


def basic_block(in_channels: int, out_channels: int) -> BasicBlock:
    shortcut = None
    if in_channels != out_channels:
        shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
    return BasicBlock(in_channels, out_channels, downsample=shortcut)


class InitialTaskPrediction(nn.Module):
    """Per task: two BasicBlocks ``in -> channels`` and a 1x1 decoder; returns features and predictions."""

    def __init__(self, tasks: Mapping[str, int], in_channels: int, channels: int) -> None:
        super().__init__()
        self.refinement = nn.ModuleDict(
            {
                t: nn.Sequential(basic_block(in_channels, channels), basic_block(channels, channels))
                for t in tasks
            }
        )
        self.decoders = nn.ModuleDict({t: nn.Conv2d(channels, c, 1) for t, c in tasks.items()})

    def forward(
        self, x: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        feats = {t: self.refinement[t](x[t]) for t in self.refinement}
        return feats, {t: self.decoders[t](f) for t, f in feats.items()}


class SABlock(nn.Module):
    """Spatial attention: ``conv3x3(x) * sigmoid(conv3x3(x))`` (no biases)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.Sigmoid()
        )
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.attention(x)


class MultiModalDistillation(nn.Module):
    """``out_t = f_t + sum_{a != t} SA_{t,a}(f_a)``."""

    def __init__(self, tasks: Sequence[str], channels: int) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.sa = nn.ModuleDict(
            {
                t: nn.ModuleDict({a: SABlock(channels, channels) for a in self.tasks if a != t})
                for t in self.tasks
            }
        )

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for t in self.tasks:
            y = feats[t]
            for a, block in self.sa[t].items():
                y = y + block(feats[a])
            out[t] = y
        return out


@MODELS.register("pad_net")
class PADNet(MultiTaskModel):
    """Encoder -> initial task predictions -> multi-modal distillation -> final task heads."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        task_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoder = build_encoder(encoder_spec(backbone))
        in_channels = self.encoder.feature_info[-1]["num_chs"]
        self.initial = InitialTaskPrediction(self.tasks, in_channels, task_channels)
        self.distillation = MultiModalDistillation(list(self.tasks), task_channels)
        self.heads = nn.ModuleDict(
            {
                t: nn.Sequential(
                    Bottleneck(task_channels, task_channels // 4),
                    Bottleneck(task_channels, task_channels // 4),
                    nn.Conv2d(task_channels, c, 1),
                )
                for t, c in self.tasks.items()
            }
        )

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder.forward_features(x)[-1]
        feats, initial = self.initial({t: features for t in self.tasks})
        distilled = self.distillation(feats)
        out = {t: self.heads[t](distilled[t]) for t in self.tasks}
        if self.training:
            out.update({f"{t}:initial": p for t, p in initial.items()})
        return out
