"""Augmentations on sample dicts that keep depth, normals and intrinsics consistent with the image.

Each label follows its task's rules (:class:`densemtl.tasks.base.Task`); for the built-in tasks:

- Resizing (:meth:`Task.resize_label`): image bilinear (antialiased when shrinking) or, as an
  option of :class:`Resize`, nearest (XTasC-Net's Cityscapes pre-processing); semseg, depth
  and normals nearest, so no label is invented and invalid depth (0) never bleeds into valid pixels.
- :class:`RandomScaleCrop` zooms in by ``s`` and applies :meth:`Task.zoom_label`: depth is divided
  by ``s`` (the zoom is treated as the camera moving closer, as mtan and XTasC-Net do), so metric
  scale stays learnable; a disparity / inverse-depth target (``meta["target"]``) is multiplied by
  ``s`` instead.
- :class:`RandomHorizontalFlip` applies :meth:`Task.flip_label` (normals: x negated) and mirrors ``cx``.
- :class:`ColorJitter` touches RGB only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from densemtl.data.sample import TASKS
from densemtl.tasks import get_task
from densemtl.tasks.base import Task

Sample = dict[str, Any]
LABEL_KEYS = TASKS


def _labels(sample: Sample) -> list[tuple[str, Task]]:
    """The (key, task) of every label the sample holds, in the canonical task order."""
    return [(key, get_task(key)) for key in LABEL_KEYS if key in sample]


#: Image interpolations of :func:`resize_sample`.
IMAGE_INTERPOLATIONS = ("bilinear", "nearest")


def resize_sample(sample: Sample, size: tuple[int, int], image_interpolation: str = "bilinear") -> Sample:
    """Resize image and every label to ``size`` = (height, width); intrinsics are scaled.

    ``image_interpolation``: ``bilinear`` (antialiased when shrinking) or ``nearest`` (the source
    pixel ``floor(x * in / out)``, as OpenCV's ``INTER_NEAREST``).
    """
    height, width = sample["image"].shape[-2:]
    if (height, width) == tuple(size):
        return sample
    out = dict(sample)
    if image_interpolation == "nearest":
        out["image"] = F.interpolate(sample["image"][None], size=size, mode="nearest")[0]
    else:
        shrinking = size[0] < height or size[1] < width
        out["image"] = F.interpolate(
            sample["image"][None], size=size, mode="bilinear", align_corners=False, antialias=shrinking
        )[0].clamp_(0, 1)
    for key, task in _labels(sample):
        out[key] = task.resize_label(sample[key], size)
    meta = dict(sample.get("meta", {}))
    if "intrinsics" in meta:
        sx, sy = size[1] / width, size[0] / height
        fx, fy, cx, cy = meta["intrinsics"].tolist()
        # pixel-centre convention: x' + 0.5 = (x + 0.5) * s
        meta["intrinsics"] = torch.tensor([fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5])
    out["meta"] = meta
    return out


def crop_sample(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Crop image and labels; shifts the principal point."""
    out = dict(sample)
    out["image"] = sample["image"][..., top : top + height, left : left + width]
    for key, _ in _labels(sample):
        out[key] = sample[key][..., top : top + height, left : left + width]
    meta = dict(sample.get("meta", {}))
    if "intrinsics" in meta:
        fx, fy, cx, cy = meta["intrinsics"].tolist()
        meta["intrinsics"] = torch.tensor([fx, fy, cx - left, cy - top])
    out["meta"] = meta
    return out


class Compose:
    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class Resize:
    """Resize to a fixed (height, width); ``interpolation`` of the image: ``bilinear`` (default,
    antialiased when shrinking) or ``nearest``."""

    def __init__(self, size: Sequence[int], interpolation: str = "bilinear") -> None:
        if interpolation not in IMAGE_INTERPOLATIONS:
            raise ValueError(
                f"image interpolation must be one of {IMAGE_INTERPOLATIONS}, got {interpolation!r}"
            )
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation

    def __call__(self, sample: Sample) -> Sample:
        return resize_sample(sample, self.size, self.interpolation)


class RandomScaleCrop:
    """Zoom in by s ~ U(scales) (or a choice from a list), crop back to the input size; depth /= s.

    With ``scales=(1.0, 1.2, 1.5)`` and ``choice=True`` this is Vandenhende et al.'s NYUD protocol;
    mtan uses s ~ U(1.0, 1.5) with the same depth division.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 1.5), choice: bool = False, p: float = 1.0) -> None:
        if min(scales) < 1.0:
            raise ValueError("RandomScaleCrop zooms in only: scales must be >= 1")
        self.scales = tuple(float(s) for s in scales)
        self.choice = choice
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        s = random.choice(self.scales) if self.choice else random.uniform(min(self.scales), max(self.scales))
        if s == 1.0:
            return sample
        height, width = sample["image"].shape[-2:]
        big = (math.ceil(height * s), math.ceil(width * s))
        out = resize_sample(sample, big)
        top = random.randint(0, big[0] - height)
        left = random.randint(0, big[1] - width)
        out = crop_sample(out, top, left, height, width)
        for key, task in _labels(out):
            out[key] = task.zoom_label(out[key], s, out.get("meta"))
        if "intrinsics" in out.get("meta", {}):
            # The zoom is modelled as moving closer: focal length keeps its pre-zoom value.
            intr = out["meta"]["intrinsics"].clone()
            intr[:2] /= s
            out["meta"]["intrinsics"] = intr
        return out


class RandomHorizontalFlip:
    """Mirror left-right; labels by :meth:`Task.flip_label` (normals' x negated), cx mirrored."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        out = dict(sample)
        out["image"] = sample["image"].flip(-1)
        for key, task in _labels(sample):
            out[key] = task.flip_label(sample[key])
        meta = dict(sample.get("meta", {}))
        if "intrinsics" in meta:
            width = sample["image"].shape[-1]
            fx, fy, cx, cy = meta["intrinsics"].tolist()
            meta["intrinsics"] = torch.tensor([fx, fy, width - 1 - cx, cy])
        out["meta"] = meta
        return out


def adjust_saturation(image: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    grey = 0.299 * image[..., 0:1, :, :] + 0.587 * image[..., 1:2, :, :] + 0.114 * image[..., 2:3, :, :]
    return (grey + (image - grey) * factor).clamp(0, 1)


class ColorJitter:
    """Random brightness / contrast / saturation (multiplicative factors in [1-x, 1+x]); RGB only."""

    def __init__(
        self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, p: float = 1.0
    ) -> None:
        self.brightness, self.contrast, self.saturation, self.p = brightness, contrast, saturation, p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        image = sample["image"]
        order = [0, 1, 2]
        random.shuffle(order)
        for op in order:
            if op == 0 and self.brightness:
                image = (image * random.uniform(1 - self.brightness, 1 + self.brightness)).clamp(0, 1)
            elif op == 1 and self.contrast:
                mean = image.mean()
                image = (mean + (image - mean) * random.uniform(1 - self.contrast, 1 + self.contrast)).clamp(
                    0, 1
                )
            elif op == 2 and self.saturation:
                image = adjust_saturation(image, random.uniform(1 - self.saturation, 1 + self.saturation))
        out = dict(sample)
        out["image"] = image
        return out


def build_transforms(
    size: Sequence[int] | None = None,
    train: bool = False,
    scales: Sequence[float] = (1.0, 1.5),
    flip: bool = True,
    color_jitter: float = 0.2,
) -> Compose:
    """The default pipeline: resize, then (train only) scale-crop, flip and colour jitter."""
    steps: list[Callable[[Sample], Sample]] = []
    if size is not None:
        steps.append(Resize(size))
    if train:
        if max(scales) > 1.0:
            steps.append(RandomScaleCrop(scales))
        if flip:
            steps.append(RandomHorizontalFlip())
        if color_jitter:
            steps.append(ColorJitter(color_jitter, color_jitter, color_jitter))
    return Compose(steps)
