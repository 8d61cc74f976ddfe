"""PAD-Net (Xu et al., CVPR 2018), as in Vandenhende et al.'s Multi-Task-Learning-PyTorch ``models/padnet.py``.

Encoder (dilated ResNet-50, its last 2048-channel map) -> per *auxiliary* task an initial prediction
module -> multi-modal distillation -> per main task two bottleneck blocks and a 1x1 prediction.

* Initial prediction (``padnet.py`` ``InitialTaskPredictionModule``): two ResNet **Bottleneck**
  blocks, ``Bottleneck(C_in, 64)`` with a 1x1 conv + BN projection shortcut to 256 channels and
  ``Bottleneck(256, 64)``, then a 1x1 conv decoder giving the *initial* prediction, deep-supervised
  in training as ``"<task>:initial"``. ``initial_block="basic"`` uses MTI-Net's module instead (two
  BasicBlocks ``C_in -> 256``, ``mti_net.py``); that was this file's design before and is kept
  for comparison only.
* Multi-modal distillation (``MultiTaskDistillationModule``): for each main task ``t``,
  ``f_t + sum_{a != t} SA_{t,a}(f_a)`` over all auxiliary tasks ``a``, ``SA`` = spatial-attention
  gated 3x3 conv (``layers.py`` ``SABlock``).
* The auxiliary tasks are the main tasks plus ``auxiliary_tasks`` (Vandenhende's NYUD configs:
  ``pad_net.yml`` uses semseg + depth only, ``pad_net+edges_normals.yml`` adds edge (1 channel)
  and normals (3)). Extra auxiliary tasks get their own initial-prediction branch, feed the
  distillation of every main task and have no final head; their ``"<task>:initial"`` outputs are
  deep-supervised only when the batch holds labels for them (see :func:`initial_prediction_terms`).

Parameter counts for 40 classes + depth (Mi = params / 2^20; seed table: 66.9 Mi):

=====================================================  ==========  ========
configuration                                          params      Mi
=====================================================  ==========  ========
reference (bottleneck, aux = semseg + depth), default  27,730,578  26.45
reference + ``auxiliary_tasks=("edge", "normals")``    34,010,774  32.44
``initial_block="basic"``                              40,199,826  38.34
``initial_block="basic"`` + edge + normals             58,949,270  56.22
=====================================================  ==========  ========

No configuration faithful to ``padnet.py`` on a ResNet-50 reaches 66.9 Mi, so the table's count
is reported, not matched (docs/methods.md, Luo & Ye 2023, explains why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.losses.compose import AuxiliaryTerm
from densemtl.models import MODELS, build_encoder
from densemtl.models.backbones.resnet import BasicBlock, Bottleneck
from densemtl.models.base import MultiTaskModel, trainable
from densemtl.models.blocks.aspp import encoder_spec

#: output channels of auxiliary tasks that are not main tasks (Vandenhende's ``utils/config.py``)
AUXILIARY_CHANNELS: dict[str, int] = {"depth": 1, "normals": 3, "edge": 1}
INITIAL_BLOCKS = ("bottleneck", "basic")


def _projection(in_channels: int, out_channels: int) -> nn.Module | None:
    """1x1 conv + BN shortcut where the block changes the width (ResNet's ``downsample``)."""
    if in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


def basic_block(in_channels: int, out_channels: int) -> BasicBlock:
    """BasicBlock ``in -> out`` with a projection shortcut when the widths differ."""
    return BasicBlock(in_channels, out_channels, downsample=_projection(in_channels, out_channels))


def bottleneck_block(in_channels: int, out_channels: int) -> Bottleneck:
    """Bottleneck ``in -> out`` (inner width ``out / 4``) with a projection shortcut when needed."""
    return Bottleneck(in_channels, out_channels // 4, downsample=_projection(in_channels, out_channels))


def resolve_auxiliary_tasks(
    tasks: Mapping[str, int], auxiliary_tasks: str | Sequence[str] | Mapping[str, int]
) -> dict[str, int]:
    """The tasks that get an initial prediction: the main tasks, then the extra auxiliary ones.

    ``auxiliary_tasks`` names extra tasks (channels from :data:`AUXILIARY_CHANNELS`) or maps names to
    output channels; names that are main tasks are ignored.
    """
    if isinstance(auxiliary_tasks, str):
        auxiliary_tasks = [auxiliary_tasks]
    if isinstance(auxiliary_tasks, Mapping):
        extra = {str(t): int(c) for t, c in auxiliary_tasks.items()}
    else:
        unknown = [t for t in auxiliary_tasks if t not in tasks and t not in AUXILIARY_CHANNELS]
        if unknown:
            raise ValueError(
                f"auxiliary tasks {unknown} need their output channels: pass a mapping, e.g. {{'{unknown[0]}': 1}}"
            )
        extra = {str(t): AUXILIARY_CHANNELS[t] for t in auxiliary_tasks if t not in tasks}
    return dict(tasks) | {t: c for t, c in extra.items() if t not in tasks}


def initial_prediction_terms(
    auxiliary_tasks: Mapping[str, int], suffixes: Sequence[str]
) -> dict[str, AuxiliaryTerm]:
    """Deep supervision of every auxiliary task's initial predictions ``"<task>:<suffix>"``.

    Each is scored against its task's label with the task's training loss (or, for an
    auxiliary-only task, the task's default loss); an auxiliary-only task whose label the batch
    lacks (e.g. edges, which the data sets here do not provide) is left unsupervised.
    """
    return {f"{t}:{s}": AuxiliaryTerm(t) for s in suffixes for t in auxiliary_tasks}


class InitialTaskPrediction(nn.Module):
    """Per task: two residual blocks ``in -> channels`` and a 1x1 decoder; returns features and predictions.

    ``block="basic"``: two BasicBlocks (MTI-Net's ``InitialTaskPredictionModule``);
    ``block="bottleneck"``: two Bottlenecks of inner width ``channels / 4`` (PAD-Net's).
    """

    def __init__(
        self, tasks: Mapping[str, int], in_channels: int, channels: int, block: str = "basic"
    ) -> None:
        super().__init__()
        if block not in INITIAL_BLOCKS:
            raise ValueError(f"initial block must be one of {INITIAL_BLOCKS}, got {block!r}")
        make = basic_block if block == "basic" else bottleneck_block
        self.refinement = nn.ModuleDict(
            {t: nn.Sequential(make(in_channels, channels), make(channels, channels)) for t in tasks}
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
    """``out_t = f_t + sum_{a != t} SA_{t,a}(f_a)`` for each main task ``t`` over the auxiliary tasks ``a``."""

    def __init__(self, tasks: Sequence[str], channels: int, sources: Sequence[str] | None = None) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.sources = list(sources) if sources is not None else list(self.tasks)
        self.sa = nn.ModuleDict(
            {
                t: nn.ModuleDict({a: SABlock(channels, channels) for a in self.sources if a != t})
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
    """Encoder -> initial (auxiliary) task predictions -> multi-modal distillation -> final task heads.

    Args:
        tasks: main tasks -> output channels.
        backbone: encoder spec (default: dilated ResNet-50, output stride 8).
        task_channels: width of the task features (256 in ``padnet.py``).
        auxiliary_tasks: extra auxiliary tasks, names (``"edge"``, ``"normals"``) or name -> channels.
        initial_block: ``"bottleneck"`` (``padnet.py``) or ``"basic"`` (MTI-Net's module).
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] | None = None,
        task_channels: int = 256,
        auxiliary_tasks: str | Sequence[str] | Mapping[str, int] = (),
        initial_block: str = "bottleneck",
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        self.auxiliary_tasks = resolve_auxiliary_tasks(self.tasks, auxiliary_tasks)
        self.encoder = build_encoder(encoder_spec(backbone))
        in_channels = self.encoder.feature_info.channels()[-1]
        self.initial = InitialTaskPrediction(self.auxiliary_tasks, in_channels, task_channels, initial_block)
        self.distillation = MultiModalDistillation(
            list(self.tasks), task_channels, list(self.auxiliary_tasks)
        )
        self.heads = nn.ModuleDict(
            {
                t: nn.Sequential(
                    bottleneck_block(task_channels, task_channels),
                    bottleneck_block(task_channels, task_channels),
                    nn.Conv2d(task_channels, c, 1),
                )
                for t, c in self.tasks.items()
            }
        )

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder and every auxiliary task's initial-prediction features (each main task is
        distilled from all of them); the initial 1x1 predictions serve deep supervision only."""
        return trainable(self.encoder, self.initial.refinement)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder.forward_features(x)[-1]
        feats, initial = self.initial({t: features for t in self.auxiliary_tasks})
        distilled = self.distillation(feats)
        out = {t: self.heads[t](distilled[t]) for t in self.tasks}
        if self.returns_auxiliary:
            out.update({f"{t}:initial": p for t, p in initial.items()})
        return out

    def auxiliary_terms(self) -> dict[str, AuxiliaryTerm]:
        return initial_prediction_terms(self.auxiliary_tasks, ["initial"])
