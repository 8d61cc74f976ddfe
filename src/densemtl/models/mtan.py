"""MTAN, Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019), on a dilated ResNet-50
(other backbones work too, with BasicBlock refinement blocks where the backbone has no bottlenecks:
our extension for small CPU runs).

Follows the ResNet version of MTAN (Liu's ``MTANDeepLabv3`` in auto-lambda / Vandenhende et al.'s
``models/mtan.py``): a shared ResNet; at each of ``layer1`` .. ``layer4`` a task attention module
(1x1 conv ``C_in -> C/4`` + BN + ReLU, 1x1 conv ``C/4 -> C`` + BN + sigmoid) computes a mask from the
stage's features before its last bottleneck block and applies it to the output of that last block;
the attended task feature is refined by a *shared* bottleneck block (``C_i -> C_{i+1}``, with a
1x1 projection shortcut) and fed to the next stage's attention module; the last attended feature goes
to the task's DeepLab-v3 ASPP head. On any backbone the attention modules sit at the stages
``forward_features`` returns (``feature_info.out_indices``: ``layer1`` .. ``layer4`` on a ResNet);
where a stage's last block changes the width, the mask is computed from the narrower features
before it and the refinement block maps to that width.

``fusion`` says how the next attention module sees the previous attended feature:

* ``"add"`` (default): summed with the shared features, so every attention module has ``C`` inputs:
  70,041,533 parameters for 40 classes + depth = 66.80 Mi (seed table 67.0, -0.3%).
* ``"concat"``: concatenated (Liu's MTAN: ``2C`` inputs from ``layer2`` on): 72,052,713 = 68.72 Mi
  (+2.6%), which is why it is not the default here (docs/methods.md, Luo & Ye 2023).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.backbones.resnet import BasicBlock, Bottleneck
from densemtl.models.base import MultiTaskModel, trainable
from densemtl.models.blocks.aspp import DeepLabHead, encoder_spec


class AttentionLayer(nn.Sequential):
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, mid_channels, 1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 1),
            nn.BatchNorm2d(out_channels),
            nn.Sigmoid(),
        )


def refinement_block(in_channels: int, out_channels: int, bottleneck: bool = True) -> nn.Module:
    """One ResNet block ``in -> out`` with a 1x1 conv-BN shortcut: a bottleneck (width ``out/4``) on
    ResNet-50/101, as the reference; a BasicBlock on ResNet-18/34 (an extension, same role)."""
    shortcut = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
    )
    if bottleneck:
        return Bottleneck(in_channels, out_channels // 4, downsample=shortcut)
    return BasicBlock(in_channels, out_channels, downsample=shortcut)


@MODELS.register("mtan")
class MTAN(MultiTaskModel):
    """Shared encoder, per-task attention at its feature stages, shared refinement blocks, ASPP heads."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        fusion: str = "add",
        aspp_rates: Sequence[int] = (12, 24, 36),
        aspp_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        if fusion not in ("add", "concat"):
            raise ValueError(f"mtan: fusion must be 'add' or 'concat', got {fusion!r}")
        self.fusion = fusion
        self.encoder = build_encoder(encoder_spec(backbone))
        self.attention_stages = sorted(self.encoder.feature_info.out_indices)
        last = self.attention_stages[-1]
        bottleneck = isinstance(self.encoder.stage_blocks(last)[-1], Bottleneck)
        ch = [self.encoder.feature_info.stages[i].num_chs for i in self.attention_stages]
        # width of the features before each stage's last block (ch, except where that block widens)
        before = [self._channels_before_last_block(i) for i in self.attention_stages]
        self.attention = nn.ModuleDict(
            {
                t: nn.ModuleList(
                    AttentionLayer(b if (i == 0 or fusion == "add") else 2 * b, c // 4, c)
                    for i, (b, c) in enumerate(zip(before, ch))
                )
                for t in self.tasks
            }
        )
        self.refine = nn.ModuleList(
            refinement_block(ch[i], before[i + 1], bottleneck) for i in range(len(ch) - 1)
        )
        self.heads = nn.ModuleDict(
            {t: DeepLabHead(ch[-1], c, aspp_rates, aspp_channels) for t, c in self.tasks.items()}
        )

    def _channels_before_last_block(self, stage: int) -> int:
        channels = self.encoder.stage_block_channels(stage)
        if len(channels) > 1:
            return channels[-2]
        return self.encoder.feature_info.stages[stage - 1].num_chs if stage > 0 else 3

    def shared_parameters(self) -> list[torch.nn.Parameter]:
        """The encoder and the refinement blocks (every task's attended features pass through them)."""
        return trainable(self.encoder, self.refine)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = []  # (features before the last block, output of the last block) per attention stage
        for i in range(self.attention_stages[-1] + 1):
            if i not in self.attention_stages:
                x = self.encoder.forward_stage(i, x)
                continue
            blocks = self.encoder.stage_blocks(i)
            before = x
            for block in blocks[:-1]:
                before = block(before)
            x = blocks[-1](before)
            shared.append((before, x))
        out = {}
        for t in self.tasks:
            prev = None
            for i, (before, last) in enumerate(shared):
                if prev is None:
                    inp = before
                else:
                    prev = self.refine[i - 1](prev)
                    if prev.shape[-2:] != before.shape[-2:]:
                        prev = F.adaptive_max_pool2d(prev, before.shape[-2:])
                    inp = before + prev if self.fusion == "add" else torch.cat([before, prev], dim=1)
                prev = self.attention[t][i](inp) * last
            out[t] = self.heads[t](prev)
        return out
