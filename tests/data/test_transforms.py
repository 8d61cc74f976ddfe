"""Augmentations keep depth, normals, labels and intrinsics consistent with the image."""

from __future__ import annotations

import random

import pytest
import torch

from densemtl.data.transforms import (
    ColorJitter,
    RandomHorizontalFlip,
    RandomScaleCrop,
    Resize,
    build_transforms,
    resize_sample,
)

H, W = 12, 16


def _sample(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    semseg = torch.randint(0, 5, (H, W), generator=g)
    semseg[0] = 255
    depth = torch.full((1, H, W), 4.0)
    depth[0, :, :3] = 0.0  # invalid strip
    depth[0, 6:] = 6.0
    normals = torch.zeros(3, H, W)
    normals[:, 2:] = torch.tensor([0.6, -0.8, 0.0]).view(3, 1, 1)  # row 0..1 invalid
    normals[:, 7:] = torch.tensor([0.0, 0.0, -1.0]).view(3, 1, 1)
    return {
        "image": torch.rand(3, H, W, generator=g),
        "semseg": semseg,
        "depth": depth,
        "normals": normals,
        "meta": {"id": "x", "intrinsics": torch.tensor([20.0, 21.0, 7.5, 5.5]), "pseudo": set()},
    }


@pytest.mark.parametrize("scale", [1.5, 2.0])
def test_scale_crop_divides_depth_by_the_scale(scale: float) -> None:
    random.seed(0)
    sample = _sample()
    out = RandomScaleCrop(scales=(scale, scale))(sample)
    assert (
        out["image"].shape == (3, H, W) and out["depth"].shape == (1, H, W) and out["semseg"].shape == (H, W)
    )
    values = out["depth"].unique()
    expected = torch.tensor([0.0, 4.0 / scale, 6.0 / scale])
    assert (
        all(torch.isclose(v, expected).any() for v in values) and (values > 0).any()
    )  # divided, not interpolated
    assert set(out["semseg"].unique().tolist()) <= set(sample["semseg"].unique().tolist())
    assert torch.equal(sample["depth"], _sample()["depth"])  # the input sample is not modified
    fx, fy, _, _ = out["meta"]["intrinsics"].tolist()
    assert fx == pytest.approx(20.0, rel=0.05) and fy == pytest.approx(21.0, rel=0.05)  # "moved closer"


def test_scale_crop_of_one_and_bad_scales() -> None:
    sample = _sample()
    assert RandomScaleCrop(scales=(1.0, 1.0))(sample) is sample
    with pytest.raises(ValueError):
        RandomScaleCrop(scales=(0.5, 1.0))


def test_flip_mirrors_and_negates_normals_x() -> None:
    sample = _sample()
    out = RandomHorizontalFlip(p=1.0)(sample)
    assert torch.equal(out["image"], sample["image"].flip(-1))
    assert torch.equal(out["semseg"], sample["semseg"].flip(-1)) and torch.equal(
        out["depth"], sample["depth"].flip(-1)
    )
    expected = sample["normals"].flip(-1) * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
    assert torch.equal(out["normals"], expected)
    assert out["normals"][0, 3, 0] == -0.6 and (out["normals"][:, :2] == 0).all()  # invalid stays invalid
    assert out["meta"]["intrinsics"].tolist() == [20.0, 21.0, W - 1 - 7.5, 5.5]
    assert RandomHorizontalFlip(p=0.0)(sample) is sample


def test_color_jitter_touches_rgb_only() -> None:
    random.seed(1)
    sample = _sample()
    out = ColorJitter(0.4, 0.4, 0.4)(sample)
    assert (
        not torch.equal(out["image"], sample["image"]) and out["image"].min() >= 0 and out["image"].max() <= 1
    )
    for key in ("semseg", "depth", "normals"):
        assert out[key] is sample[key]
    assert torch.equal(out["meta"]["intrinsics"], sample["meta"]["intrinsics"])


def test_label_resize_is_nearest() -> None:
    sample = _sample()
    for size in ((7, 9), (25, 33)):
        out = resize_sample(sample, size)
        assert out["semseg"].dtype == torch.int64 and out["semseg"].shape == size
        assert set(out["semseg"].unique().tolist()) <= set(sample["semseg"].unique().tolist())
        assert set(out["depth"].unique().tolist()) <= {0.0, 4.0, 6.0}  # invalid never bleeds into valid
        norms = out["normals"].norm(dim=0)
        assert torch.all((norms == 0) | ((norms - 1).abs() < 1e-6))  # unit or invalid: no blended normals
        assert out["image"].shape == (3, *size)


def test_resize_scales_intrinsics_pixel_centre() -> None:
    out = Resize((H * 2, W * 2))(_sample())
    assert out["meta"]["intrinsics"].tolist() == pytest.approx(
        [40.0, 42.0, (7.5 + 0.5) * 2 - 0.5, (5.5 + 0.5) * 2 - 0.5]
    )


def test_default_pipeline_keeps_the_contract() -> None:
    random.seed(3)
    pipeline = build_transforms((H, W), train=True)
    out = pipeline(resize_sample(_sample(), (H * 2, W * 2)))
    assert (
        out["image"].shape == (3, H, W)
        and out["depth"].shape == (1, H, W)
        and out["normals"].shape == (3, H, W)
    )
    assert out["semseg"].dtype == torch.int64 and (out["depth"] >= 0).all()


def test_scale_crop_multiplies_disparity_targets() -> None:
    import random

    import torch

    from densemtl.data.transforms import RandomScaleCrop

    random.seed(0)
    sample = {
        "image": torch.rand(3, 8, 8),
        "depth": torch.full((1, 8, 8), 10.0),
        "meta": {"target": "disparity"},
    }
    out = RandomScaleCrop(scales=(2.0,), choice=True)(sample)
    assert torch.allclose(out["depth"], torch.full((1, 8, 8), 20.0))
    sample["meta"] = {}
    assert torch.allclose(
        RandomScaleCrop(scales=(2.0,), choice=True)(sample)["depth"], torch.full((1, 8, 8), 5.0)
    )


def test_scale_crop_moves_normals_without_changing_them() -> None:
    random.seed(1)
    sample = _sample()
    out = RandomScaleCrop(scales=(1.7, 1.7))(sample)
    vectors = {tuple(v) for v in sample["normals"].flatten(1).T.tolist()}
    moved = {tuple(v) for v in out["normals"].flatten(1).T.tolist()}
    assert moved <= vectors and len(moved) > 1  # moved (nearest), neither scaled nor blended
    assert set(out["semseg"].unique().tolist()) <= set(sample["semseg"].unique().tolist())
