"""Colour visualisations: panels of every task's maps; each task colours its own
(:meth:`densemtl.tasks.base.Task.colorize`), the ``colorize_*`` functions are kept for callers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from densemtl.tasks import get_task, task_names
from densemtl.tasks.depth import colorize_error
from densemtl.tasks.legend import vstack_left

__all__ = [
    "colorize_depth",
    "colorize_error",
    "colorize_normals",
    "colorize_semseg",
    "hstack_panel",
    "prediction_panel",
    "to_uint8_image",
    "vstack_left",
]


def colorize_semseg(ids: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Class ids [H, W] -> uint8 RGB; ignore (255) is black (:meth:`SemsegTask.colorize`)."""
    return get_task("semseg").colorize(ids, palette=palette)


def colorize_depth(
    depth: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "turbo_r"
) -> np.ndarray:
    """Depth [H, W] (metres, 0 = invalid) -> uint8 RGB; near is red, far is blue; invalid is black."""
    return get_task("depth").colorize(depth, vmin=vmin, vmax=vmax, cmap=cmap)


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals [H, W, 3] -> uint8 RGB ``(n + 1) / 2``; invalid (zero) is black."""
    return get_task("normals").colorize(normals)


def to_uint8_image(image: np.ndarray) -> np.ndarray:
    """Float [3, H, W] or [H, W, 3] in [0, 1] -> uint8 [H, W, 3]."""
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def hstack_panel(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Side-by-side panel of same-height RGB images with white gaps."""
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] != height:
            pad = np.zeros((height - im.shape[0], *im.shape[1:]), dtype=np.uint8)
            im = np.concatenate([im, pad])
        parts.append(im)
        if i < len(images) - 1:
            parts.append(np.full((height, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(parts, axis=1)


def prediction_panel(
    image: np.ndarray,
    palette: Sequence[Sequence[int]],
    pred: dict[str, np.ndarray],
    gt: dict[str, np.ndarray] | None = None,
    class_names: Sequence[str] | None = None,
    ranges: Mapping[str, Sequence[float]] | None = None,
    legend: bool = True,
    legend_classes: str = "present",
) -> np.ndarray:
    """RGB, then each task's tiles (:meth:`Task.panel_tiles`) in the canonical task order:
    GT seg | pred seg | GT depth | pred depth | depth error | GT / pred normals; under them,
    each task's legend (:meth:`Task.panel_legend`: class names, a depth colour bar in metres).

    ``pred`` / ``gt`` hold numpy arrays: ``semseg`` [H, W] ids, ``depth`` [H, W] metres,
    ``normals`` [H, W, 3]; panels without ground truth are skipped. ``ranges`` fixes the colour
    range of continuous tasks (``{"depth": (0, 10)}``, the dataset's display range), so that
    panels of different images compare; without it each panel uses its own GT's range.
    ``legend_classes``: ``"present"`` (the classes in this image) or ``"all"`` (every class: one
    panel size for every frame of a video).
    """
    gt = gt or {}
    ranges = ranges or {}
    tiles, shown = [to_uint8_image(image)], []
    for name in task_names():
        if name not in pred:
            continue
        options: dict = {"palette": palette, "class_names": class_names, "legend_classes": legend_classes}
        if name in ranges:
            options["value_range"] = ranges[name]
        tiles.extend(get_task(name).panel_tiles(pred[name], gt.get(name), **options))
        shown.append((name, options))
    panel = hstack_panel(tiles)
    if not legend:
        return panel
    strips = [get_task(n).panel_legend(pred[n], gt.get(n), width=panel.shape[1], **o) for n, o in shown]
    strips = [strip for strip in strips if strip is not None]
    return vstack_left(panel, strips) if strips else panel
