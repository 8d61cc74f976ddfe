"""MTI-Net (Vandenhende, Georgoulis & Van Gool, ECCV 2020), as in Multi-Task-Learning-PyTorch
``models/mti_net.py``, on the four feature levels of a dilated ResNet-50.

Per scale ``k`` (deepest first): initial predictions of every auxiliary task (two BasicBlocks on the
scale's features, concatenated from scale ``k-1`` on with the task features propagated from the
deeper scale, and a 1x1 decoder; deep-supervised in training as ``"<task>:scale_k"``); a feature
propagation module (FPM: task-attention over the concatenated task features, a BasicBlock reduction
and per-task SE) passes them to the next finer scale; multi-modal distillation (``SABlock``, each main
task from every other auxiliary task) per scale; each main task's head upsamples the distilled
features of all scales to the finest one, concatenates them and predicts with 1x1 conv + BN + ReLU +
1x1 conv (HRNet head). The auxiliary tasks are the main tasks plus ``auxiliary_tasks``
(``mti_net.yml``: none; ``mti_net+edges_normals.yml``: edge and normals).

MTI-Net was designed for HRNet-W18 (widths 18/36/72/144); on ResNet-50's 256/512/1024/2048 levels
the model would have 971,619,533 parameters (927 Mi, ``channels=None``), so ``channels`` adapts each
level with a 1x1 conv + BN + ReLU first; the reference has no ResNet version, the widths are our
choice. Counts for 40 classes + depth (seed table 81.8 Mi):

=========================================================  ===========  ======  =======
configuration                                              params       Mi      vs 81.8
=========================================================  ===========  ======  =======
``channels=(64, 128, 256, 512)`` (ResNet-50 / 4), default  84,246,141   80.34   -1.8%
same + ``auxiliary_tasks=("edge", "normals")``             163,311,741  155.75  +90%
``channels=(48, 96, 192, 384)`` (HRNet-W48 widths)         57,956,385   55.27   -32%
same + edge + normals                                      102,436,261  97.69   +19%
=========================================================  ===========  ======  =======

No faithful configuration lands within 1.5% of 81.8 Mi (docs/methods.md, Luo & Ye 2023);
``channels=None`` uses the raw levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.losses.compose import AuxiliaryTerm
from densemtl.models import MODELS, build_encoder
from densemtl.models.backbones.features import refuse
from densemtl.models.base import MultiTaskModel, conv_bn_relu, trainable
from densemtl.models.blocks.aspp import SEBlock, encoder_spec
from densemtl.models.pad_net import (
    InitialTaskPrediction,
    MultiModalDistillation,
    basic_block,
    initial_prediction_terms,
    resolve_auxiliary_tasks,
)


class FeaturePropagation(nn.Module):
    """FPM: per-channel softmax task attention over the concatenated task features, BasicBlock
    reduction to ``channels``, then per-task SE, added to each task's features."""

    def __init__(self, tasks: Sequence[str], channels: int) -> None:
        super().__init__()
        self.tasks = list(tasks)
        n = len(self.tasks)
        shared = n * channels
        self.non_linear = nn.Sequential(
            basic_block(shared, shared // 4),
            basic_block(shared // 4, shared // 4),
            nn.Conv2d(shared // 4, shared, 1),
        )
        self.reduce = basic_block(shared, channels)
        self.se = nn.ModuleDict({t: SEBlock(channels, 16) for t in self.tasks})

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        concat = torch.cat([feats[t] for t in self.tasks], dim=1)
        b, c, h, w = concat.shape
        n = len(self.tasks)
        mask = torch.softmax(self.non_linear(concat).view(b, c // n, n, h, w), dim=2)
        shared = self.reduce((mask * concat.view(b, c // n, n, h, w)).view(b, c, h, w))
        return {t: self.se[t](shared) + feats[t] for t in self.tasks}


class HighResolutionHead(nn.Module):
    def __init__(self, channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        total = sum(channels)
        self.last_layer = nn.Sequential(
            nn.Conv2d(total, total, 1),
            nn.BatchNorm2d(total),
            nn.ReLU(inplace=True),
            nn.Conv2d(total, out_channels, 1),
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        up = [feats[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]
        ]
        return self.last_layer(torch.cat(up, dim=1))


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (
        x
        if x.shape[-2:] == like.shape[-2:]
        else F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
    )


@MODELS.register("mti_net")
class MTINet(MultiTaskModel):
    """Multi-scale initial predictions, feature propagation, per-scale distillation, HRNet-style heads.

    Args:
        tasks: main tasks -> output channels.
        backbone: encoder spec (default: dilated ResNet-50, output stride 8).
        channels: per-level widths the encoder levels are adapted to (``None``: the raw levels).
        auxiliary_tasks: extra auxiliary tasks (``"edge"``, ``"normals"`` or name -> channels), as in
            Vandenhende's ``mti_net+edges_normals.yml``: they get initial predictions at every scale,
            take part in the FPM and feed every main task's distillation, but have no final head.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        channels: Sequence[int] | None = (64, 128, 256, 512),
        auxiliary_tasks: str | Sequence[str] | Mapping[str, int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.auxiliary_tasks = resolve_auxiliary_tasks(self.tasks, auxiliary_tasks)
        self.encoder = build_encoder(encoder_spec(backbone))
        levels = self.encoder.feature_info.channels()
        if channels is None:
            self.adapters = None
            ch = levels
        else:
            ch = [int(c) for c in channels]
            if len(ch) != len(levels):
                raise refuse(
                    "mti_net",
                    self.encoder,
                    f"it has {len(levels)} feature levels and channels has {len(ch)} entries; "
                    f"give {len(levels)} channels (one per level) or channels: null",
                )
            self.adapters = nn.ModuleList(conv_bn_relu(a, b, 1) for a, b in zip(levels, ch))
        names = list(self.auxiliary_tasks)
        last = len(ch) - 1
        self.initial = nn.ModuleList(
            InitialTaskPrediction(self.auxiliary_tasks, ch[k] if k == last else ch[k] + ch[k + 1], ch[k])
            for k in range(len(ch))
        )
        self.fpm = nn.ModuleList(
            FeaturePropagation(names, ch[k]) for k in range(1, len(ch))
        )  # fpm[k-1]: scale k
        self.distillation = nn.ModuleList(MultiModalDistillation(list(self.tasks), c, names) for c in ch)
        self.heads = nn.ModuleDict({t: HighResolutionHead(ch, c) for t, c in self.tasks.items()})

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder, the level adapters, every scale's initial-prediction features and the feature
        propagation modules (each main task is distilled from all auxiliary tasks' features, which
        also propagate to the next scale); the initial 1x1 predictions serve deep supervision only."""
        refinement = [initial.refinement for initial in self.initial]
        adapters = [] if self.adapters is None else [self.adapters]
        return trainable(self.encoder, *adapters, *refinement, self.fpm)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = self.encoder.forward_features(x)
        if self.adapters is not None:
            levels = [a(f) for a, f in zip(self.adapters, levels)]
        last = len(levels) - 1
        feats: list[dict[str, torch.Tensor]] = [{} for _ in levels]
        preds: list[dict[str, torch.Tensor]] = [{} for _ in levels]
        propagated: dict[str, torch.Tensor] | None = None
        for k in range(last, -1, -1):
            if propagated is None:
                inputs = {t: levels[k] for t in self.auxiliary_tasks}
            else:
                inputs = {
                    t: torch.cat([levels[k], _resize(propagated[t], levels[k])], dim=1)
                    for t in self.auxiliary_tasks
                }
            feats[k], preds[k] = self.initial[k](inputs)
            if k > 0:
                propagated = self.fpm[k - 1](feats[k])
        distilled = [self.distillation[k](feats[k]) for k in range(len(levels))]
        out = {t: self.heads[t]([d[t] for d in distilled]) for t in self.tasks}
        if self.returns_auxiliary:
            for k, p in enumerate(preds):
                out.update({f"{t}:scale_{k}": v for t, v in p.items()})
        return out

    def auxiliary_terms(self) -> dict[str, AuxiliaryTerm]:
        return initial_prediction_terms(
            self.auxiliary_tasks, [f"scale_{k}" for k in range(len(self.initial))]
        )
