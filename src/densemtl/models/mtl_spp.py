"""MTL_SPP, "multi-task learning with SE and pyramid pooling" (Luo & Ye, Computer Science 2023) — a
RECONSTRUCTION from the paper's abstract and parameter column (docs/methods.md, Luo & Ye 2023).

What the abstract says: a shared backbone feature network plus task-specific sub-networks built from
squeeze-and-excitation (SE) modules, and pyramid pooling to enhance the features. Reconstruction:

* shared: dilated ResNet-50 stem .. ``layer3`` (``task_stages`` names the trailing backbone stages
  that are *not* shared; default the last one, ``layer4`` on a ResNet);
* task-specific sub-network: a per-task copy of those stages (initialised from the same, possibly
  pretrained, weights) whose residual blocks are SE-ResNet blocks (SE on the residual branch before
  the addition, reduction ``se_reduction`` = 16; any backbone whose blocks expose ``branch`` /
  ``merge``, see :mod:`densemtl.models.backbones.features`); ``se=False`` drops the SE modules;
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

from densemtl.errors import ConfigError
from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel
from densemtl.models.blocks.aspp import DeepLabHead, PyramidPooling, SEBlock, encoder_spec
from densemtl.models.blocks.stages import resolve_stages


class SEResidual(nn.Module):
    """A residual block whose branch SE rescales before the addition (SE-ResNet, Hu et al. 2018)."""

    def __init__(self, block: nn.Module, reduction: int = 16) -> None:
        super().__init__()
        self.block = block
        self.se = SEBlock(block.out_channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.merge(self.se(self.block.branch(x)), x)


def with_se(block: nn.Module, reduction: int) -> nn.Module:
    """``block`` as an SE-ResNet block if it is residual (has ``branch`` / ``merge``), else as is."""
    return SEResidual(block, reduction) if hasattr(block, "branch") else block


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
        task_stages: Sequence[int | str] = (-1,),
        se: bool = True,
        se_reduction: int = 16,
        head: str = "ppm",
        ppm_channels: int = 512,
        aspp_rates: Sequence[int] = (12, 24, 36),
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        if head not in ("ppm", "aspp"):
            raise ConfigError(f"mtl_spp: head must be 'ppm' or 'aspp', got {head!r}")
        self.encoder = build_encoder(encoder_spec(backbone))
        info = self.encoder.feature_info
        n = len(info.stages)
        own = resolve_stages("mtl_spp", "task_stages", info, task_stages)
        if own != list(range(n - len(own), n)):
            raise ConfigError(
                f"mtl_spp: task_stages must be trailing stages of the backbone (e.g. [-1]), got {list(task_stages)}"
            )
        channels = info.stages[-1].num_chs
        self.num_shared = n - len(own)  # stages 0..num_shared-1 are shared
        branches = {}
        for t in self.tasks:
            stages = []
            for i in own:
                blocks = copy.deepcopy(self.encoder.stage_blocks(i))
                if se:
                    blocks = [with_se(block, se_reduction) for block in blocks]
                stages.append(nn.Sequential(*blocks))
            branches[t] = nn.Sequential(*stages)
        self.encoder.remove_stages(self.num_shared)  # the shared copies are never run
        if not own and se:
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
            x = self.encoder.forward_stage(i, x)
        return x

    def task_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.shared_features(x)
        return {t: self.branches[t](shared) for t in self.tasks}

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.task_features(x)
        return {t: self.heads[t](feats[t]) for t in self.tasks}
