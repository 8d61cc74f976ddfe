"""AffineMix / ColorAug invariants on synthetic tensors."""

from __future__ import annotations

import pytest
import torch

from densemtl.data.sample import IGNORE_INDEX
from densemtl.training.augment import AffineMix, AffineParams, ColorAug, warp

torch.set_num_threads(1)


def _params(scale: float, tx: float = 0.0, ty: float = 0.0, flip: bool = False) -> AffineParams:
    return AffineParams(torch.tensor([scale]), torch.tensor([tx]), torch.tensor([ty]), torch.tensor([flip]))


def _scene(h: int = 16, w: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(1, 3, h, w, generator=g),
        "semseg": torch.randint(0, 5, (1, h, w), generator=g),
        "depth": torch.rand(1, 1, h, w, generator=g) * 5 + 1,
    }


def test_warp_integer_shift_and_flip_are_exact() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = warp(x, _params(1.0, tx=0.25))  # one pixel right (1/4 of the width)
    assert torch.equal(shifted[..., 1:], x[..., :-1]) and torch.equal(shifted[..., 0], torch.zeros(1, 1, 4))
    assert torch.equal(warp(x, _params(1.0, flip=True)), x.flip(-1))
    ids = torch.arange(16).view(1, 4, 4)
    moved = warp(ids, _params(1.0, ty=0.25))
    assert torch.equal(moved[:, 1:], ids[:, :-1]) and (moved[:, 0] == IGNORE_INDEX).all()


def test_zoom_two_is_exact_on_nearest() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z = warp(x, _params(2.0), mode="nearest")
    # the central 2x2 block of the source fills the output, each pixel repeated 2x2
    assert torch.equal(z, x[..., 1:3, 1:3].repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_affinemix_labels_follow_the_composited_image() -> None:
    src, dst = _scene(seed=1), _scene(seed=2)
    params = _params(1.5, tx=0.1, ty=-0.05, flip=True)
    mix = AffineMix(image_mode="nearest")
    mixed, mask = mix(src, dst, params=params)
    image_t = warp(src["image"], params, mode="nearest")
    seg_t = warp(src["semseg"], params)
    depth_t = warp(src["depth"], params, mode="nearest") / 1.5
    m = mask[:, None]
    assert mask.any() and (~mask).any()
    # pasted region: the transformed source, its labels and its depth scaled by 1/s
    assert torch.equal(mixed["image"][m.expand_as(image_t)], image_t[m.expand_as(image_t)])
    assert torch.equal(mixed["semseg"][mask], seg_t[mask])
    assert torch.allclose(mixed["depth"][m], depth_t[m])
    # elsewhere: the destination unchanged
    assert torch.equal(mixed["semseg"][~mask], dst["semseg"][~mask])
    assert torch.equal(mixed["depth"][~m], dst["depth"][~m])
    # depth ordering: pasted exactly where the rescaled source is valid and closer
    inside = warp(torch.ones(1, 1, 16, 16), params, mode="nearest")[:, 0] > 0
    expected = inside & (depth_t[:, 0] < dst["depth"][:, 0])
    assert torch.equal(mask, expected)
    assert (mixed["depth"] <= torch.maximum(dst["depth"], depth_t)).all()
    # a pixel is pasted iff its mixed depth is the smaller of the two candidates
    assert torch.equal(mixed["depth"][m], torch.minimum(dst["depth"], depth_t)[m])


def test_affinemix_prediction_order_disparity_and_far_invalid() -> None:
    src, dst = _scene(seed=3), _scene(seed=4)
    dst["depth"][..., :8, :] = 0  # invalid destination depth (sky): counts as far
    params = _params(1.0)
    mixed, mask = AffineMix()(src, dst, params=params)
    assert mask[:, :8].all()
    # ordering from other (predicted) depths: a source that is everywhere farther is never pasted
    far, near = torch.full_like(src["depth"], 10.0), torch.full_like(src["depth"], 1.0)
    _, mask = AffineMix()(src, dst, source_order=far, target_order=near, params=params)
    assert not mask.any()
    # disparity: larger = closer, pasted disparity multiplied by s
    mix = AffineMix(disparity=True)
    mixed, mask = mix(src, dst, params=_params(2.0))
    d = warp(src["depth"], _params(2.0), mode="nearest") * 2.0
    assert torch.allclose(mixed["depth"][mask[:, None]], d[mask[:, None]])


def test_affinemix_random_batch_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    a = {
        "image": torch.rand(3, 3, 8, 12),
        "semseg": torch.randint(0, 3, (3, 8, 12)),
        "depth": torch.rand(3, 1, 8, 12) + 1,
        "conf": torch.rand(3, 8, 12),
    }
    b = {k: v.flip(0) for k, v in a.items()}
    mixed, mask = AffineMix()(a, b, generator=g)
    assert {k: v.shape for k, v in mixed.items()} == {k: v.shape for k, v in a.items()}
    assert mixed["semseg"].dtype == torch.int64 and mask.shape == (3, 8, 12)


def test_coloraug_leaves_labels_and_depth_identical_and_jitters_regions_independently() -> None:
    h, w = 8, 8
    image = torch.full((1, 3, h, w), 0.5)
    image[..., 0] = 0.4
    regions = torch.zeros(1, h, w, dtype=torch.long)
    regions[:, :, 4:] = 1
    regions[:, 0, 0] = IGNORE_INDEX
    depth = torch.rand(1, 1, h, w)
    sample = {"image": image, "semseg": regions.clone(), "depth": depth}
    before = {k: v.clone() for k, v in sample.items()}
    aug = ColorAug(brightness=0.5, contrast=0.0, saturation=0.0, channel_gain=0.0)
    out = aug(sample, regions, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["depth"], before["depth"]) and torch.equal(out["semseg"], before["semseg"])
    assert out["depth"] is sample["depth"] and torch.equal(sample["image"], before["image"])
    ratio = out["image"] / image
    left, right = ratio[..., :, 1:4], ratio[..., :, 4:]
    # brightness only: one factor per region, different between the regions
    assert torch.allclose(left, left.flatten()[0].expand_as(left))
    assert torch.allclose(right, right.flatten()[0].expand_as(right))
    assert not torch.isclose(left.flatten()[0], right.flatten()[0])
    assert out["image"][0, :, 0, 0].tolist() == image[0, :, 0, 0].tolist()  # ignore pixel untouched


def test_coloraug_full_jitter_in_range_and_per_image() -> None:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 6, 6, generator=g)
    regions = torch.randint(0, 4, (2, 6, 6), generator=g)
    out = ColorAug()(dict(image=image), regions, generator=g)["image"]
    assert out.shape == image.shape and (out >= 0).all() and (out <= 1).all()
    assert not torch.equal(out, image)


def test_affinemix_mirrors_normals_of_flipped_sources_and_pastes_by_the_mask() -> None:
    src, dst = _scene(seed=5), _scene(seed=6)
    src["normals"] = torch.tensor([0.6, 0.0, 0.8]).view(1, 3, 1, 1).expand(1, 3, 16, 16).clone()
    dst["normals"] = torch.tensor([0.0, -1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 16, 16).clone()
    mix = AffineMix(depth_order=False)
    for flip, x in ((False, 0.6), (True, -0.6)):
        mixed, mask = mix(src, dst, params=_params(0.75, tx=0.1, flip=flip))
        m = mask[:, None].expand(-1, 3, -1, -1)
        pasted = mixed["normals"][m].view(3, -1)
        assert mask.any() and (~mask).any()
        assert torch.equal(pasted, torch.tensor([x, 0.0, 0.8]).view(3, 1).expand_as(pasted))
        assert torch.equal(mixed["normals"][~m], dst["normals"][~m])
        # the image / labels follow the same mask
        assert torch.equal(mixed["semseg"][~mask], dst["semseg"][~mask])


def test_affinemix_transform_mirrors_normals_per_sample() -> None:
    params = AffineParams(torch.ones(2), torch.zeros(2), torch.zeros(2), torch.tensor([True, False]))
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    moved = AffineMix().transform("normals", normals, params)
    sign = torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
    assert torch.equal(moved[0], normals[0].flip(-1) * sign)
    assert torch.equal(moved[1], normals[1])
    # depth: zoom rule only; a mirror moves pixels but keeps values
    depth = torch.rand(2, 1, 4, 4) + 1
    assert torch.equal(AffineMix().transform("depth", depth, params)[0], depth[0].flip(-1))


# --- ClassMix and CutMix: the reference mixes --------------------------------------------------
def _two_scenes(b: int = 3, h: int = 12, w: int = 16) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)

    def scene() -> dict:
        labels = torch.randint(0, 5, (b, h, w), generator=g)
        return {
            "image": torch.rand(b, 3, h, w, generator=g),
            "semseg": labels,
            "depth": torch.rand(b, 1, h, w, generator=g) + 0.5,
        }

    return scene(), scene()


def test_classmix_pastes_half_of_the_present_classes_with_their_pixels() -> None:
    from densemtl.training.augment import ClassMix

    source, target = _two_scenes()
    source["semseg"][0] = source["semseg"][0].clamp(max=3)  # 4 classes present in sample 0
    predicted = source["semseg"].clone()
    mixed, mask = ClassMix()(source, target, predicted, generator=torch.Generator().manual_seed(1))
    for i in range(3):
        present = predicted[i].unique()
        pasted = predicted[i][mask[i]].unique()
        assert len(pasted) == -(-len(present) // 2)  # ceil(n / 2) classes ...
        assert torch.equal(mask[i], torch.isin(predicted[i], pasted))  # ... with all their pixels
    m = mask[:, None]
    assert torch.equal(mixed["image"], torch.where(m, source["image"], target["image"]))
    assert torch.equal(mixed["depth"], torch.where(m, source["depth"], target["depth"]))
    assert torch.equal(mixed["semseg"], torch.where(mask, source["semseg"], target["semseg"]))


def test_classmix_ignores_unlabelled_pixels_when_choosing_classes() -> None:
    from densemtl.data.sample import IGNORE_INDEX
    from densemtl.training.augment import ClassMix

    classes = torch.full((1, 4, 4), IGNORE_INDEX)
    classes[0, 0, 0] = 2
    mask = ClassMix(fraction=1.0).masks(classes)
    assert int(mask.sum()) == 1 and bool(mask[0, 0, 0])
    assert not ClassMix().masks(torch.full((1, 4, 4), IGNORE_INDEX)).any()


def test_cutmix_pastes_one_box_of_the_requested_area() -> None:
    from densemtl.training.augment import CutMix

    source, target = _two_scenes(b=16, h=60, w=80)
    mixed, mask = CutMix(area=0.25)(source, target, generator=torch.Generator().manual_seed(0))
    for box in mask:
        rows, cols = box.any(1).nonzero()[:, 0], box.any(0).nonzero()[:, 0]
        # one filled rectangle: its bounding box is all True
        assert bool(box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all())
        assert int(box.sum()) == len(rows) * len(cols)
        assert abs(box.float().mean().item() - 0.25) < 0.03
    assert torch.equal(mixed["semseg"], torch.where(mask, source["semseg"], target["semseg"]))


@pytest.mark.parametrize(("cls", "options"), [("ClassMix", {"fraction": 0.0}), ("CutMix", {"area": 1.0})])
def test_mix_options_out_of_range_are_refused(cls: str, options: dict) -> None:
    from densemtl.training import augment

    with pytest.raises(ValueError, match=next(iter(options))):
        getattr(augment, cls)(**options)
