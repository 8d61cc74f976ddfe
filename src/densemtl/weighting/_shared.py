"""Helpers for gradient-based weightings: averaging their per-task statistics over DDP processes."""

from __future__ import annotations

import torch
import torch.distributed as dist


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
