"""XTasC-Net consistency losses: the ``authors`` and ``corrected`` SSIM / KL variants against
values computed here, with loops, from the formulas (methods.md §3.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densemtl.losses import build_loss
from densemtl.losses.xtasc import consistency_kl, masked_ssim, smoothed_one_hot

C1, C2 = 0.01**2, 0.03**2


def _ssim_dissim(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """clamp((1 - SSIM) / 2, 0, 1) of every full 3x3 window of two 2-D maps (valid positions)."""
    h, w = x.shape
    out = np.zeros((h - 2, w - 2))
    for i in range(h - 2):
        for j in range(w - 2):
            a, b = x[i : i + 3, j : j + 3], y[i : i + 3, j : j + 3]
            mx, my = a.mean(), b.mean()
            vx, vy = (a * a).mean() - mx**2, (b * b).mean() - my**2
            cxy = (a * b).mean() - mx * my
            s = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
            out[i, j] = min(max((1 - s) / 2, 0.0), 1.0)
    return out


def _fixed(h: int = 6, w: int = 7, keep: float = 0.7) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    pred = torch.rand(2, 1, h, w, generator=g, dtype=torch.float64) * 3
    target = torch.rand(2, 1, h, w, generator=g, dtype=torch.float64) * 3
    valid = torch.rand(2, h, w, generator=g) < keep
    return pred, target, valid


@pytest.mark.parametrize("keep", [1.1, 0.7])
def test_ssim_authors_variant_masks_the_maps_without_padding(keep: float) -> None:
    pred, target, valid = _fixed(keep=keep)
    p, t, m = pred.numpy()[:, 0], target.numpy()[:, 0], valid.numpy().astype(float)
    total = sum(_ssim_dissim(p[b] * m[b], t[b] * m[b]).sum() for b in range(2))
    expected = total / m.sum()  # sum over (H-2)x(W-2), divided by the mask sum over HxW
    assert float(masked_ssim(pred, target, valid, "authors")) == pytest.approx(expected, rel=1e-9)
    if keep > 1:  # no mask: (H-2)(W-2)/(HW) of the mean of the valid-pooling map
        assert expected < float(masked_ssim(pred, target, valid, "corrected"))


@pytest.mark.parametrize("keep", [1.1, 0.7])
def test_ssim_corrected_variant_is_a_masked_mean_of_the_reflection_padded_map(keep: float) -> None:
    pred, target, valid = _fixed(keep=keep)
    p, t, m = pred.numpy()[:, 0], target.numpy()[:, 0], valid.numpy().astype(float)
    per_image = []
    for b in range(2):
        d = _ssim_dissim(np.pad(p[b], 1, mode="reflect"), np.pad(t[b], 1, mode="reflect"))
        per_image.append((d * m[b]).sum() / m[b].sum())
    got = masked_ssim(pred, target, valid, "corrected")
    assert float(got) == pytest.approx(np.mean(per_image), rel=1e-9)
    # the default of the loss and of the function
    assert torch.equal(got, masked_ssim(pred, target, valid))
    loss = build_loss("xtasc_depth_consistency", kind="ssim")
    assert torch.equal(loss(pred, target, valid), got)
    authors = build_loss("xtasc_depth_consistency", kind="ssim", variant="authors")
    assert torch.equal(authors(pred, target, valid), masked_ssim(pred, target, valid, "authors"))


def _kl_reference(
    logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, eps: float, authors: bool
) -> float:
    b, c, h, w = logits.shape
    total = 0.0
    for n in range(b):
        # authors: `.view(N, H*W, C)` reads the C x H x W block in memory order, C values a row
        rows = logits[n].reshape(h * w, c) if authors else logits[n].reshape(c, h * w).T
        flat_labels, flat_mask = labels[n].reshape(-1), mask[n].reshape(-1)
        for i in range(h * w):
            z = rows[i]
            log_p = z - z.max() - math.log(np.exp(z - z.max()).sum())
            other = eps / (c - 2) if authors else eps / (c - 1)
            q = np.full(c, other)
            q[flat_labels[i]] = 1 - eps
            kl = sum(qk * (math.log(qk) - lk) for qk, lk in zip(q, log_p) if qk > 0)
            total += kl * flat_mask[i]
    return total / b


@pytest.mark.parametrize("variant", ["authors", "corrected"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_kl_variants_match_the_written_formula(variant: str, eps: float) -> None:
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 7, 3, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 7, (2, 3, 4), generator=g)
    valid = torch.rand(2, 3, 4, generator=g) < 0.7
    expected = _kl_reference(logits.numpy(), labels.numpy(), valid.numpy(), eps, variant == "authors")
    got = consistency_kl(logits.float(), labels, valid, eps, variant)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_kl_authors_quirks_are_visible() -> None:
    # smoothing eps / (C - 2): the target sums to 1.02 for C = 7, eps = 0.1
    q = smoothed_one_hot(torch.tensor([[[2]]]), 7, 0.1, others=5)
    assert float(q.sum()) == pytest.approx(1.02)
    # the view mixes pixels and channels: the same logits transposed per pixel differ
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(1, 7, 4, 4, generator=g)
    labels = logits.argmax(1)
    ones = torch.ones(1, 4, 4, dtype=torch.bool)
    assert float(consistency_kl(logits, labels, ones, 0.0, "corrected")) < float(
        consistency_kl(logits, labels, ones, 0.0, "authors")
    )


def test_seg_consistency_kl_masks_ignored_pixels_and_defaults_to_corrected() -> None:
    g = torch.Generator().manual_seed(7)
    logits, direct = torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 5, 4, 4, generator=g)
    valid = torch.ones(2, 4, 4, dtype=torch.bool)
    valid[:, :2] = False
    loss = build_loss("xtasc_seg_consistency", kind="kl", label_smoothing=0.1)
    got = loss(logits, direct, valid)
    assert torch.equal(got, consistency_kl(logits, direct.argmax(1), valid, 0.1, "corrected"))
    # masked pixels contribute nothing: changing their logits leaves the loss unchanged
    changed = logits.clone()
    changed[:, :, :2] += 5.0
    assert torch.equal(loss(changed, direct, valid), got)
    with pytest.raises(ValueError, match="variant"):
        build_loss("xtasc_seg_consistency", kind="kl", variant="paper")
