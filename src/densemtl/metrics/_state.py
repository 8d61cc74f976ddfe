"""Sum-state constructors shared by the metrics (float64 sums and int64 counts)."""

from __future__ import annotations

import torch
from torch import Tensor


def float_state() -> Tensor:
    return torch.tensor(0.0, dtype=torch.float64)


def count_state() -> Tensor:
    return torch.tensor(0, dtype=torch.long)
