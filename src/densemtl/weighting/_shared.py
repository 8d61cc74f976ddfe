"""Helpers for gradient-based weightings (GradNorm, PCGrad): which parameters are shared, and the
averaging of their per-task statistics over DDP processes.

A gradient-based strategy needs the model; :meth:`attach` is called with it (the module does
``if hasattr(self.weighting, "attach"): self.weighting.attach(self.net)``). Shared parameters are
those of ``model.encoder`` (every densemtl architecture has one) unless given explicitly.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("gradient-based weighting needs a model with an `encoder` (the shared part)")
    return [p for p in encoder.parameters() if p.requires_grad]


def last_shared_layer(model: nn.Module) -> list[nn.Parameter]:
    """The weight of the encoder's last convolution (GradNorm's W; XTasC: last conv of layer4)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("gradient-based weighting needs a model with an `encoder` (the shared part)")
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return [convs[-1].weight]


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_over_processes_(tensor: torch.Tensor) -> torch.Tensor:
    """Average a detached tensor over the DDP processes, in place (identity in one process).

    DDP minimises the mean of the per-process losses, so the mean of per-process gradients
    (and losses) is the gradient (and loss) of the global batch: statistics computed from it are
    those of a single process on the whole batch, and identical on every process.
    """
    n = world_size()
    if n > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(n)
    return tensor
