"""One encoder per task, run stage by stage, the task features mixed between stages.

The common part of cross-stitch networks (Misra et al., CVPR 2016) and NDDR-CNN (Gao et al., CVPR
2019) as in Vandenhende et al.'s Multi-Task-Learning-PyTorch (``models/cross_stitch.py``,
``models/nddr_cnn.py``): after each chosen stage of the backbone's stage table
(:mod:`densemtl.models.backbones.features`) a mixer maps ``{task: features}`` to the mixed
features; a DeepLab-v3 ASPP head per task reads the last stage. Works with every backbone.

This module registers no architecture; the model files subclass :class:`MixedStagesNetwork`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.models import build_encoder
from densemtl.models.backbones.features import FeatureInfo
from densemtl.models.base import MultiTaskModel, last_conv, trainable
from densemtl.models.blocks.aspp import DeepLabHead, encoder_spec


def resolve_stages(model: str, option: str, info: FeatureInfo, keys: Sequence[int | str]) -> list[int]:
    """Stage keys (index, stage name or module name) -> sorted stage indices."""
    try:
        return sorted({info.stage_index(k) for k in keys})
    except ConfigError as err:
        raise ConfigError(f"{model}: {option}: {err}") from None


class MixedStagesNetwork(MultiTaskModel):
    """Per-task encoders joined by mixers after the stages in ``stages`` (default: every stage).

    Args:
        backbone: encoder spec (default: dilated ResNet-50, output stride 8); one copy per task.
        stages: stages followed by a mixer: indices, stage names (ResNet: ``conv``,
            ``layer1_without_conv``, ``layer2`` .. ``layer4``) or module names; ``None`` = all.
        aspp_rates / aspp_channels: dilation rates and width of the per-task DeepLab-v3 heads.
        mixer: ``(tasks, channels) -> module`` mapping ``{task: [B, C, H, W]}`` to the mixed dict;
            every parameter of a mixer must serve one output task (the shared-parameter rule below).
        mixer_name: attribute holding the mixers (``units`` / ``nddr``, the state-dict prefix).
    """

    model_name = "mixed_stages"

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None,
        stages: Sequence[int | str] | None,
        aspp_rates: Sequence[int],
        mixer: Callable[[list[str], int], nn.Module],
        mixer_name: str,
        aspp_channels: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.encoders = nn.ModuleDict({t: build_encoder(encoder_spec(backbone)) for t in self.tasks})
        info = next(iter(self.encoders.values())).feature_info
        all_stages = range(len(info.stages))
        self.mixed_stages = resolve_stages(
            self.model_name, "stages", info, all_stages if stages is None else stages
        )
        self.stage_names = [info.stages[i].name for i in self.mixed_stages]
        self.mixer_name = mixer_name
        mixers = nn.ModuleDict(
            {info.stages[i].name: mixer(list(self.tasks), info.stages[i].num_chs) for i in self.mixed_stages}
        )
        setattr(self, mixer_name, mixers)
        channels = info.stages[-1].num_chs
        self.heads = nn.ModuleDict(
            {t: DeepLabHead(channels, c, aspp_rates, aspp_channels) for t, c in self.tasks.items()}
        )

    @property
    def mixers(self) -> nn.ModuleDict:
        return getattr(self, self.mixer_name)

    def forward_task_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every task's last-stage features, mixed after the chosen stages."""
        feats = {t: x for t in self.encoders}
        stages = next(iter(self.encoders.values())).feature_info.stages
        mixers = self.mixers
        for i, stage in enumerate(stages):
            feats = {t: encoder.forward_stage(i, feats[t]) for t, encoder in self.encoders.items()}
            if stage.name in mixers:
                feats = mixers[stage.name](feats)
        return feats

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.forward_task_stages(x)
        return {t: self.heads[t](feats[t]) for t in self.tasks}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every encoder's stages up to the last mixed one, and the mixers before it.

        The last mixer's parameters each serve one output task, and so do the encoder stages after
        it and the heads; without a mixer nothing is shared.
        """
        if not self.mixed_stages:
            return []
        last = self.mixed_stages[-1]
        stages = [
            p for enc in self.encoders.values() for i in range(last + 1) for p in enc.stage_parameters(i)
        ]
        mixers = [self.mixers[name] for i, name in zip(self.mixed_stages, self.stage_names) if i < last]
        return trainable(stages, *mixers)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The last convolution of the last mixed stage, in every task's encoder."""
        if not self.shared_parameters():
            return []
        last = self.mixed_stages[-1]
        return [last_conv(nn.Sequential(*enc.stage_blocks(last))).weight for enc in self.encoders.values()]
