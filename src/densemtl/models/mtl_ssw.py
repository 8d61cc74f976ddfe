"""MTL_SSW, "multi-task learning with SE and selective weights" (Luo & Ye, Computer Science 2023) — a
RECONSTRUCTION from the paper's abstract, its initialisation ablation and its parameter column
(docs/methods.md, Luo & Ye 2023).

MTL_SSW is MTL_SPP (see :mod:`densemtl.models.mtl_spp`) plus selective-weight (SW) modules through
which the segmentation and depth features of the task-specific sub-networks weight and guide each
other, with a trainable weight matrix initialised to (0.9, 0.1). Reconstruction of one SW module
(placed after the task-specific SE-ResNet stage, before the pyramid pooling: ``sw_positions``):

* a trainable ``T x T`` matrix ``W`` (``W[t, t] = sw_init[0]``, ``W[t, j] = sw_init[1]``);
* per task ``t`` a selective (SK-Net-style) channel attention over the task features: squeeze
  ``s = GAP(sum_j F_j)``, excite ``z_t = ReLU(FC1_t(s))`` (``C -> C / sw_reduction``), then
  ``FC2_t(z_t)`` (``C/r -> T*C``) and a softmax over the ``T`` sources per channel, ``a_tj``;
* ``F_t' = sum_j W[t, j] * T * a_tj * F_j`` (``T * a`` is 1 at uniform attention, so the module
  starts as the (0.9, 0.1) mix). ``sw_attention=False`` keeps only the matrix (cross-stitch-like
  scalars).

With ``sw_reduction=4`` one module at 2048 channels has 6 x 2048^2 / 4 = 6.0 Mi weights, the
difference between the paper's MTL_SSW (89.9) and MTL_SPP (83.9): default count 89.74 Mi (-0.2%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from densemtl.models import MODELS
from densemtl.models.base import trainable
from densemtl.models.mtl_spp import MTLSPP

SW_POSITIONS = ("branch", "head")


class SelectiveWeight(nn.Module):
    """Cross-task selective weighting of ``T`` task feature maps with a trainable ``T x T`` matrix."""

    def __init__(
        self,
        tasks: Sequence[str],
        channels: int,
        init: Sequence[float] = (0.9, 0.1),
        reduction: int = 4,
        attention: bool = True,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        n = len(self.tasks)
        self.weight = nn.Parameter(torch.full((n, n), float(init[1])).fill_diagonal_(float(init[0])))
        self.attention = None
        if attention and n > 1:
            hidden = max(1, channels // reduction)
            self.attention = nn.ModuleDict(
                {
                    t: nn.Sequential(
                        nn.Conv2d(channels, hidden, 1),
                        nn.ReLU(inplace=True),
                        nn.Conv2d(hidden, n * channels, 1),
                    )
                    for t in self.tasks
                }
            )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stacked = torch.stack([features[t] for t in self.tasks], dim=1)  # B, T, C, H, W
        b, n, c = stacked.shape[:3]
        squeeze = stacked.sum(dim=1).mean(dim=(2, 3), keepdim=True) if self.attention is not None else None
        out = {}
        for i, t in enumerate(self.tasks):
            mix = self.weight[i].view(1, n, 1, 1, 1)
            if self.attention is not None:
                att = torch.softmax(self.attention[t](squeeze).view(b, n, c, 1, 1), dim=1) * n
                mix = mix * att
            out[t] = (mix * stacked).sum(dim=1)
        return out


@MODELS.register("mtl_ssw")
class MTLSSW(MTLSPP):
    """MTL_SPP with selective-weight modules between the task sub-networks (see module docstring).

    Args:
        sw_positions: where SW modules go: ``"branch"`` (after the task-specific SE-ResNet stage,
            2048 channels) and/or ``"head"`` (after the pyramid pooling, 512 channels).
        sw_init: (self, other) initial entries of the trainable weight matrix; the paper's best is
            (0.9, 0.1), its ablations (0.2, 0.8), (0.8, 0.2), (0.5, 0.5), (0.1, 0.9).
        sw_reduction: channel reduction of the selective attention.
        sw_attention: use the selective channel attention (else only the weight matrix).
        **kwargs: :class:`~densemtl.models.mtl_spp.MTLSPP` options (``task_stages``, ``se``, ``head``...).
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        sw_positions: Sequence[str] = ("branch",),
        sw_init: Sequence[float] = (0.9, 0.1),
        sw_reduction: int = 4,
        sw_attention: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        unknown = set(sw_positions) - set(SW_POSITIONS)
        if unknown:
            raise ValueError(f"mtl_ssw: unknown sw_positions {sorted(unknown)}; choose from {SW_POSITIONS}")
        if "head" in sw_positions and not all(hasattr(h, "features") for h in self.heads.values()):
            raise ValueError("mtl_ssw: sw_positions 'head' needs head='ppm'")
        if len(sw_init) != 2:
            raise ValueError(f"mtl_ssw: sw_init is (self, other), got {sw_init}")
        names = list(self.tasks)
        self.sw = nn.ModuleDict()
        if "branch" in sw_positions:
            self.sw["branch"] = SelectiveWeight(
                names, self.branch_channels, sw_init, sw_reduction, sw_attention
            )
        if "head" in sw_positions:
            ppm_channels = next(iter(self.heads.values())).ppm.out_channels
            self.sw["head"] = SelectiveWeight(names, ppm_channels, sw_init, sw_reduction, sw_attention)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder, everything before the last SW module, and the SW weight matrices.

        A matrix's row ``t`` serves task ``t``, but it is one tensor, so every task's gradient
        reaches it; the last module's per-task attention serves one task each.
        """
        if not self.sw:
            return super().shared_parameters()
        upstream: list[nn.Module] = [self.encoder, self.branches]
        if "head" in self.sw:
            upstream += [head.ppm for head in self.heads.values()]
            if "branch" in self.sw:
                upstream.append(self.sw["branch"])
        return trainable(*upstream, [sw.weight for sw in self.sw.values()])

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.task_features(x)
        if "branch" in self.sw:
            feats = self.sw["branch"](feats)
        if "head" in self.sw:
            feats = self.sw["head"]({t: self.heads[t].features(f) for t, f in feats.items()})
            return {t: self.heads[t].classifier(feats[t]) for t in self.tasks}
        return {t: self.heads[t](feats[t]) for t in self.tasks}
