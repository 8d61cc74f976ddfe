"""Every dataset-level metric keeps sum states: merging two ranks' states equals one process."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from densemtl.metrics import DepthMetrics, NormalsMetrics, SegmentationMetrics

# ----------------------------------------------------------------------------- DDP-style merge


def _halves() -> list[tuple[type, dict, tuple[torch.Tensor, torch.Tensor]]]:
    gen = torch.Generator().manual_seed(0)
    seg_t = torch.randint(0, 4, (6, 5, 7), generator=gen)
    seg_t[0, 0] = 255
    seg_p = torch.randn(6, 4, 5, 7, generator=gen)
    dep_g = torch.rand(6, 1, 5, 7, generator=gen) * 5
    dep_g[dep_g < 1] = 0  # unequal valid counts per image
    dep_p = torch.rand(6, 1, 5, 7, generator=gen) * 5 + 0.1
    nor_g = torch.randn(6, 3, 5, 7, generator=gen)
    nor_g[:, :, 0] = 0
    nor_p = torch.randn(6, 3, 5, 7, generator=gen)
    return [
        (SegmentationMetrics, {"num_classes": 4}, (seg_p, seg_t)),
        (DepthMetrics, {}, (dep_p, dep_g)),
        (DepthMetrics, {"per_image": True, "max_depth": 4.0}, (dep_p, dep_g)),
        (NormalsMetrics, {}, (nor_p, nor_g)),
    ]


@pytest.mark.parametrize("case", range(4))
def test_ddp_style_merge_equals_single_process(case: int) -> None:
    cls, kwargs, (preds, target) = _halves()[case]
    whole, rank0, rank1 = cls(**kwargs), cls(**kwargs), cls(**kwargs)
    whole.update(preds[:4], target[:4])
    whole.update(preds[4:], target[4:])  # smaller last batch
    rank0.update(preds[:3], target[:3])
    rank1.update(preds[3:], target[3:])
    assert all(fx is dim_zero_sum for fx in rank0._reductions.values())  # states reduce by "sum"
    rank0.merge_state(rank1)  # = what DDP's all-reduce(sum) does to every state
    for name, value in whole.compute().items():
        assert float(rank0.compute()[name]) == pytest.approx(float(value), rel=1e-6, nan_ok=True), name
