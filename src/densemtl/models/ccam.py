"""CCAM: cross-channel attention between a segmentation and a depth branch (Bansal et al., arXiv 2206.10562; reconstruction).

Bansal, Ji, Yuan & Xu, "Semantics-Depth-Symbiosis: Deeply Coupled Semi-Supervised Learning of
Semantics and Depth", arXiv 2206.10562. Only the abstract is public ("feature sharing along each
channel between the two tasks ... with a negligible increase in trainable parameters"); this file
builds the hypothesis of methods.md §1.1, every choice a flag:

For the two branches' features ``F_s, F_d`` (``C x N``, N = HW) at the same decoder scale,
``A_{s<-d} = softmax_row(F_s F_d^T)`` (C x C channel affinity; DANet's channel attention made
cross-task), ``F_s' = F_s + gamma_s A_{s<-d} F_d`` and symmetrically for depth, ``gamma`` initialised
at 0. Two scalars per insertion point, so the module adds a negligible number of parameters.

Architecture around it (also a reconstruction): a shared ResNet encoder, one U-Net-style decoder
per task (at each of the strides 32 -> 16 -> 8 -> 4: upsample, concatenate the encoder skip,
3x3 conv-BN-ReLU at ``decoder_channels``), CCAM after the decoder stages listed in
``ccam_stages`` (0 = stride 32 .. 3 = stride 4), and a 3x3+1x1 head per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.models import MODELS, build_encoder
from densemtl.models.base import MultiTaskModel, conv_bn_relu, trainable
from densemtl.models.blocks.heads import TaskHead

DIRECTIONS = ("both", "seg_from_depth", "depth_from_seg")


class CrossChannelAttention(nn.Module):
    """Cross-task channel attention between two equally shaped feature maps ``[B, C, H, W]``.

    Args:
        direction: ``both`` (default), ``seg_from_depth`` (only seg receives) or ``depth_from_seg``.
        max_trick: DANet's ``max(energy) - energy`` before the softmax.
        scale_energy: divide the energy by ``sqrt(N)`` (a softer softmax; off = DANet).
        init_gamma: the residual scales' initial value (0: the module starts as the identity).
    """

    def __init__(
        self,
        direction: str = "both",
        max_trick: bool = False,
        scale_energy: bool = False,
        init_gamma: float = 0.0,
    ) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"ccam direction must be one of {DIRECTIONS}, got {direction!r}")
        self.direction, self.max_trick, self.scale_energy = direction, max_trick, scale_energy
        self.gamma_seg = nn.Parameter(torch.full((1,), float(init_gamma)))
        self.gamma_depth = nn.Parameter(torch.full((1,), float(init_gamma)))

    def _attend(self, query: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        b, c = query.shape[:2]
        q = query.reshape(b, c, -1).float()
        o = other.reshape(b, other.shape[1], -1).float()
        energy = torch.bmm(q, o.transpose(1, 2))  # [B, C, C']
        if self.scale_energy:
            energy = energy / q.shape[-1] ** 0.5
        if self.max_trick:
            energy = energy.amax(dim=-1, keepdim=True) - energy
        attention = torch.softmax(energy, dim=-1)
        return torch.bmm(attention, o).reshape(query.shape).to(query.dtype)

    def forward(self, seg: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new_seg, new_depth = seg, depth
        if self.direction in ("both", "seg_from_depth"):
            new_seg = seg + self.gamma_seg * self._attend(seg, depth)
        if self.direction in ("both", "depth_from_seg"):
            new_depth = depth + self.gamma_depth * self._attend(depth, seg)
        return new_seg, new_depth


class UNetDecoder(nn.Module):
    """Top-down decoder: ``x = conv(cat(up(x), skip))`` from stride 32 to stride 4, returned per stage."""

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        c = list(in_channels)
        self.top = conv_bn_relu(c[-1], channels)
        self.fuse = nn.ModuleList(conv_bn_relu(channels + skip, channels) for skip in reversed(c[:-1]))

    def stages(self) -> int:
        return 1 + len(self.fuse)

    def stage(self, i: int, x: torch.Tensor | None, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if i == 0:
            return self.top(features[-1])
        skip = features[-1 - i]
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse[i - 1](torch.cat([x, skip], 1))


class CCAMNet(MultiTaskModel):
    """Shared encoder, seg and depth U-Net decoders coupled by CCAM, one head each.

    Args:
        backbone: encoder name or spec (default ``resnet50``).
        decoder_channels: decoder width.
        ccam_stages: decoder stages after which CCAM couples the branches (0 = stride 32,
            3 = stride 4); ``[]`` gives the uncoupled baseline with identical layers.
        ccam_direction / ccam_max_trick / ccam_scale_energy: see :class:`CrossChannelAttention`.
    Tasks other than ``semseg`` / ``depth`` (e.g. ``normals``) get an uncoupled decoder.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] = "resnet50",
        decoder_channels: int = 128,
        ccam_stages: Sequence[int] = (1, 2, 3),
        ccam_direction: str = "both",
        ccam_max_trick: bool = False,
        ccam_scale_energy: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        if not {"semseg", "depth"} <= set(self.tasks):
            raise ValueError(f"ccam needs tasks semseg and depth, got {sorted(self.tasks)}")
        self.encoder = build_encoder(backbone)
        in_channels = self.encoder.feature_info.channels()
        self.decoders = nn.ModuleDict({t: UNetDecoder(in_channels, decoder_channels) for t in self.tasks})
        n_stages = len(in_channels)
        stages = sorted({int(s) for s in ccam_stages})
        if any(s not in range(n_stages) for s in stages):
            raise ValueError(f"ccam_stages must be in 0..{n_stages - 1}, got {list(ccam_stages)}")
        self.ccam_stages = stages
        self.ccam_direction = ccam_direction
        self.ccam = nn.ModuleDict(
            {str(s): CrossChannelAttention(ccam_direction, ccam_max_trick, ccam_scale_energy) for s in stages}
        )
        self.heads = nn.ModuleDict({t: TaskHead(decoder_channels, c) for t, c in self.tasks.items()})

    def ccam_parameters(self) -> int:
        return sum(p.numel() for p in self.ccam.parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder and what CCAM carries into the other branch: the decoder stages of a sending
        branch up to the last CCAM stage, and (both directions) the gammas of every CCAM stage but
        the last. CCAM's gammas start at 0, so at initialisation only the encoder has gradients
        from both tasks; this is the list once they move."""
        shared: list[nn.Module] = [self.encoder]
        if self.ccam_stages:
            last = self.ccam_stages[-1]
            direction = self.ccam_direction
            for task, receiver in (("depth", "seg_from_depth"), ("semseg", "depth_from_seg")):
                if direction in (receiver, "both"):
                    shared += [self.decoders[task].top, *self.decoders[task].fuse[:last]]
            if direction == "both":
                shared += [self.ccam[str(s)] for s in self.ccam_stages[:-1]]
        return trainable(*shared)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder.forward_features(x)
        state: dict[str, torch.Tensor | None] = dict.fromkeys(self.tasks)
        for i in range(len(features)):
            for t in self.tasks:
                state[t] = self.decoders[t].stage(i, state[t], features)
            if str(i) in self.ccam:
                state["semseg"], state["depth"] = self.ccam[str(i)](state["semseg"], state["depth"])
        return {t: self.heads[t](state[t]) for t in self.tasks}


MODELS.register("ccam")(CCAMNet)
