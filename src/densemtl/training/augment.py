"""AffineMix and ColorAug: batch-level, prediction-driven augmentations (reconstruction).

Bansal et al., arXiv 2206.10562 (abstract only; methods.md §1.3): "AffineMix, a data augmentation
for the semantic segmentation task using predicted depth" and "ColorAug, a simple depth
augmentation using predicted semantics". Hypotheses implemented here, every choice an option:

* :class:`AffineMix`: a random affine transform ``T`` (zoom ``s`` about the centre, translation,
  optional horizontal flip) of a *source* sample, then depth-ordered compositing onto a
  *destination* sample: the source pixel is pasted where it lies inside the warped frame and is
  closer than the destination (``s``-rescaled source depth ``T(d_src) / s`` below ``d_dst``;
  invalid destination depth counts as infinitely far). Image, labels and depth of the mix all
  follow the same mask; the pasted depth is ``T(d_src) / s`` (an ``s``-times enlarged object is
  ``s`` times closer; for disparity targets it is multiplied by ``s``). The ordering depth can be a
  prediction (the teacher's) or ground truth. Every task map follows its task's rules
  (:class:`densemtl.tasks.base.Task`): :meth:`~Task.zoom_label` for the zoom (depth ``/ s``),
  :meth:`~Task.mirror_values` for mirrored samples (normals: x negated) and :meth:`~Task.mix` for
  the paste. The transform has no rotation, so normals need no rotation either: a zoom about the
  centre and a translation are modelled as the camera approaching / panning, which keeps surface
  orientations in the camera frame (exact for the approach, first-order for the pan).
* :class:`ClassMix` and :class:`CutMix`: the usual mean-teacher mixes (no transform, no depth
  ordering), the reference that AffineMix is compared with.
* :class:`ColorAug`: independent photometric jitter (brightness, contrast, saturation, per-channel
  gain) per (predicted) semantic region; depth and labels are returned untouched (the same tensors).

Everything works on batched tensors on any device (``[B, 3, H, W]`` images, ``[B, H, W]`` ids,
``[B, 1, H, W]`` depth) so it can run inside a training step on the teacher's predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from densemtl.data.sample import IGNORE_INDEX, TASKS
from densemtl.tasks import get_task
from densemtl.tasks.base import Task

#: The rules of a map that is not a task label (image, confidences): moved and pasted, values kept.
_PLAIN_MAP = Task()


@dataclass
class AffineParams:
    """Per-sample transform: zoom ``scale`` [B], translation ``tx``, ``ty`` [B] (fractions of the
    width / height, positive = right / down), ``flip`` bool [B]."""

    scale: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    flip: torch.Tensor


def affine_theta(params: AffineParams) -> torch.Tensor:
    """``affine_grid`` matrices [B, 2, 3] mapping output to source normalised coordinates.

    Output ``p`` samples the source at ``(p - 2t) / s`` (normalised coordinates in [-1, 1]), with the
    source x mirrored when ``flip``.
    """
    s = params.scale.float()
    sign = torch.where(params.flip, -1.0, 1.0).to(s)
    theta = torch.zeros(s.shape[0], 2, 3, device=s.device)
    theta[:, 0, 0] = sign / s
    theta[:, 0, 2] = -sign * 2 * params.tx.float() / s
    theta[:, 1, 1] = 1.0 / s
    theta[:, 1, 2] = -2 * params.ty.float() / s
    return theta


def warp(x: torch.Tensor, params: AffineParams, mode: str = "bilinear") -> torch.Tensor:
    """Warp ``[B, C, H, W]`` (float) or ``[B, H, W]`` (ids) by ``params``; outside the source is 0
    (ids: ``IGNORE_INDEX``)."""
    ids = x.dim() == 3 and not x.is_floating_point()
    src = x[:, None].float() if x.dim() == 3 else x.float()
    grid = F.affine_grid(affine_theta(params).to(src.device), list(src.shape), align_corners=False)
    out = F.grid_sample(src, grid, mode="nearest" if ids else mode, padding_mode="zeros", align_corners=False)
    if ids:
        inside = inside_mask(params, x.shape[-2:], x.device)
        return torch.where(inside, out[:, 0].round().to(x.dtype), torch.full_like(x, IGNORE_INDEX))
    return (out[:, 0] if x.dim() == 3 else out).to(x.dtype)


def inside_mask(
    params: AffineParams, size: Sequence[int], device: torch.device | None = None
) -> torch.Tensor:
    """Bool [B, H, W]: output pixels whose source location lies inside the source frame."""
    b = params.scale.shape[0]
    ones = torch.ones(b, 1, int(size[0]), int(size[1]), device=device)
    grid = F.affine_grid(affine_theta(params).to(ones.device), list(ones.shape), align_corners=False)
    return F.grid_sample(ones, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0] > 0.5


class AffineMix:
    """Depth-ordered, affinely transformed paste of ``source`` onto ``target`` (see module doc).

    Args:
        scale_range: zoom ``s`` drawn uniformly in this range.
        translate: maximal translation as a fraction of the size (uniform in ``[-t, t]``).
        flip: probability of mirroring the source.
        depth_order: paste only where the (rescaled) source is closer; False pastes the whole
            warped frame (for ablation).
        rescale_depth: divide the pasted depth by ``s`` (True) or keep it.
        disparity: the depth maps are disparities (rescaled by ``* s`` instead of ``/ s``, closer =
            larger).
        image_mode: interpolation of the image (``bilinear``); labels and depth use nearest.
    """

    def __init__(
        self,
        scale_range: Sequence[float] = (0.75, 1.5),
        translate: float = 0.25,
        flip: float = 0.5,
        depth_order: bool = True,
        rescale_depth: bool = True,
        disparity: bool = False,
        image_mode: str = "bilinear",
    ) -> None:
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.translate, self.flip = float(translate), float(flip)
        self.depth_order, self.rescale_depth, self.disparity = depth_order, rescale_depth, disparity
        self.image_mode = image_mode

    def sample(
        self, batch: int, device: torch.device | None = None, generator: torch.Generator | None = None
    ) -> AffineParams:
        u = torch.rand(4, batch, generator=generator)
        lo, hi = self.scale_range
        return AffineParams(
            scale=(lo + (hi - lo) * u[0]).to(device),
            tx=((2 * u[1] - 1) * self.translate).to(device),
            ty=((2 * u[2] - 1) * self.translate).to(device),
            flip=(u[3] < self.flip).to(device),
        )

    def transform(self, key: str, x: torch.Tensor, params: AffineParams) -> torch.Tensor:
        """Warp the map ``key`` of a batch (``image``, a task label / prediction or any other map).

        The image uses ``image_mode``, everything else nearest; a task's values then follow its
        zoom rule (when ``rescale_depth``) and, on mirrored samples, its mirror rule.
        """
        moved = warp(x, params, mode=self.image_mode if key == "image" else "nearest")
        if key not in TASKS:
            return moved
        task = get_task(key)
        per_sample = (-1,) + (1,) * (moved.dim() - 1)
        if self.rescale_depth:
            scale = params.scale.to(moved.device, moved.dtype if moved.is_floating_point() else None)
            moved = task.zoom_label(moved, scale.view(per_sample), self._meta)
        flip = params.flip.to(moved.device).view(per_sample)
        return torch.where(flip, task.mirror_values(moved), moved)

    def transform_depth(self, depth: torch.Tensor, params: AffineParams) -> torch.Tensor:
        """:meth:`transform` of a depth (or disparity) map ``[B, 1, H, W]``."""
        return self.transform("depth", depth, params)

    @property
    def _meta(self) -> dict[str, str]:
        return {"target": "disparity"} if self.disparity else {}

    def __call__(
        self,
        source: Mapping[str, torch.Tensor],
        target: Mapping[str, torch.Tensor],
        source_order: torch.Tensor | None = None,
        target_order: torch.Tensor | None = None,
        params: AffineParams | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Mix two batches of samples (``image`` and optional ``semseg``, ``depth`` and any other
        ``[B, H, W]`` / ``[B, C, H, W]`` maps, e.g. confidences).

        ``source_order`` / ``target_order`` ([B, 1, H, W]) are the depths deciding the ordering
        (e.g. the teacher's predictions); by default the samples' ``depth``. Returns the mixed
        sample and the paste mask (bool [B, H, W]).
        """
        image = source["image"]
        b, _, h, w = image.shape
        if params is None:
            params = self.sample(b, image.device, generator)
        inside = inside_mask(params, (h, w), image.device)
        mask = inside
        if self.depth_order:
            src_d = source_order if source_order is not None else source["depth"]
            dst_d = target_order if target_order is not None else target["depth"]
            src_d = self.transform_depth(src_d, params)[:, 0]
            dst_d = dst_d[:, 0]
            src_valid, dst_valid = src_d > 0, dst_d > 0
            closer = src_d > dst_d if self.disparity else src_d < dst_d
            mask = inside & src_valid & (closer | ~dst_valid)
        moved = {key: self.transform(key, value, params) for key, value in source.items() if key in target}
        return paste(moved, target, mask), mask


def paste(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The maps of ``target`` with ``source``'s pasted where ``mask`` (bool [B, H, W]), each by its
    task's :meth:`~densemtl.tasks.base.Task.mix` rule (keys in both only)."""
    mixed: dict[str, torch.Tensor] = {}
    for key, value in target.items():
        if key in source:
            rules = get_task(key) if key in TASKS else _PLAIN_MAP
            mixed[key] = rules.mix(source[key], value, mask)
    return mixed


class ClassMix:
    """ClassMix (Olsson et al., WACV 2021, Sec. 3.1): paste the pixels of half of the classes
    present in the source's predicted segmentation (``argmax``, confident or not) onto the target.

    Args:
        fraction: share of the present classes pasted (``ceil(fraction * n)``, at least one).
    """

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"classmix fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def masks(self, classes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bool [B, H, W]: pixels of ``classes`` ([B, H, W] ids) in a random subset of each
        sample's present classes."""
        out = torch.zeros(classes.shape, dtype=torch.bool, device=classes.device)
        for i, ids in enumerate(classes):
            present = ids[ids != IGNORE_INDEX].unique()
            if present.numel() == 0:
                continue
            k = max(1, int(torch.tensor(self.fraction * present.numel()).ceil()))
            order = torch.randperm(present.numel(), generator=generator)[:k].to(present.device)
            out[i] = torch.isin(ids, present[order])
        return out

    def __call__(
        self,
        source: Mapping[str, torch.Tensor],
        target: Mapping[str, torch.Tensor],
        source_classes: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Mix two batches of samples (as :class:`AffineMix`); ``source_classes`` ([B, H, W]) are
        the source's predicted classes that choose the pasted regions."""
        mask = self.masks(source_classes, generator)
        return paste(source, target, mask), mask


class CutMix:
    """CutMix (Yun et al., ICCV 2019) as a mean-teacher mix (French et al., BMVC 2020): paste one
    random box covering ``area`` of the image, with a random aspect ratio, at a random place.

    Args:
        area: box area as a fraction of the image.
    """

    def __init__(self, area: float = 0.5) -> None:
        if not 0.0 < area < 1.0:
            raise ValueError(f"cutmix area must be in (0, 1), got {area}")
        self.area = float(area)

    def masks(
        self,
        batch: int,
        size: Sequence[int],
        device: torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Bool [B, H, W]: one box per sample."""
        h, w = int(size[0]), int(size[1])
        u = torch.rand(3, batch, generator=generator)
        # aspect ratio in [area, 1 / area] (log-uniform) keeps both sides inside the image
        aspect = torch.exp((2 * u[0] - 1) * torch.log(torch.tensor(1.0 / self.area)))
        box_h = (h * (self.area * aspect).sqrt()).clamp(1, h).round().long()
        box_w = (w * (self.area / aspect).sqrt()).clamp(1, w).round().long()
        top = ((h - box_h) * u[1]).long()
        left = ((w - box_w) * u[2]).long()
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        inside_rows = (rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
        inside_cols = (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None])
        return (inside_rows & inside_cols).to(device)

    def __call__(
        self,
        source: Mapping[str, torch.Tensor],
        target: Mapping[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        image = source["image"]
        mask = self.masks(image.shape[0], image.shape[-2:], image.device, generator)
        return paste(source, target, mask), mask


class ColorAug:
    """Independent photometric jitter per semantic region (``regions``: [B, H, W] class ids).

    Each (image, class) pair draws its own brightness factor ``b``, contrast ``c``, saturation ``s``
    and per-channel gain ``g`` (uniform in ``1 +- strength``); a pixel of class k becomes
    ``clamp(g * blend(gray, c * (x - mu) + mu, s) * b)`` with ``mu`` the image's mean grey level.
    Pixels with ``IGNORE_INDEX`` keep their colour. Labels and depth are not touched.

    Args:
        brightness / contrast / saturation / channel_gain: jitter strengths (0 disables one).
        p_region: probability that a region is jittered at all.
    """

    def __init__(
        self,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.3,
        channel_gain: float = 0.1,
        p_region: float = 1.0,
    ) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.channel_gain, self.p_region = channel_gain, p_region

    def sample(
        self, batch: int, classes: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        def factor(strength: float, *shape: int) -> torch.Tensor:
            return 1 + strength * (2 * torch.rand(batch, classes, *shape, generator=generator) - 1)

        params = {
            "brightness": factor(self.brightness),
            "contrast": factor(self.contrast),
            "saturation": factor(self.saturation),
            "gain": factor(self.channel_gain, 3),
        }
        off = torch.rand(batch, classes, generator=generator) >= self.p_region
        for value in params.values():
            value[off] = 1.0
        return params

    def apply_image(
        self,
        image: torch.Tensor,
        regions: torch.Tensor,
        params: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        b = image.shape[0]
        valid = regions != IGNORE_INDEX
        ids = torch.where(valid, regions, torch.zeros_like(regions)).long()
        classes = int(ids.max()) + 1 if ids.numel() else 1
        if params is None:
            params = self.sample(b, classes, generator)
        params = {k: v.to(image.device, image.dtype) for k, v in params.items()}

        def per_pixel(table: torch.Tensor) -> torch.Tensor:  # [B, K(, 3)] -> [B, (3,) H, W]
            flat = ids.flatten(1)
            if table.dim() == 2:
                return torch.gather(table, 1, flat).view_as(ids)[:, None]
            gathered = torch.gather(table, 1, flat[..., None].expand(-1, -1, 3))
            return gathered.permute(0, 2, 1).reshape(b, 3, *ids.shape[-2:])

        weights = torch.tensor([0.299, 0.587, 0.114], device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        gray = (image * weights).sum(1, keepdim=True)
        mean = gray.mean(dim=(2, 3), keepdim=True)
        x = per_pixel(params["contrast"]) * (image - mean) + mean
        x_gray = (x * weights).sum(1, keepdim=True)
        x = per_pixel(params["saturation"]) * (x - x_gray) + x_gray
        x = x * per_pixel(params["gain"]) * per_pixel(params["brightness"])
        out = torch.where(valid[:, None], x.clamp(0, 1), image)
        return out

    def __call__(
        self,
        sample: Mapping[str, Any],
        regions: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Any]:
        """A copy of ``sample`` with a jittered ``image``; every other entry is the same object.

        ``regions`` default to ``sample["semseg"]`` (use the teacher's prediction for unlabelled data).
        """
        regions = regions if regions is not None else sample["semseg"]
        out = dict(sample)
        out["image"] = self.apply_image(sample["image"], regions, generator=generator)
        return out
