"""Colour visualisations: segmentation palettes, depth colour maps, normals, error maps, panels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps

from densemtl.data.sample import IGNORE_INDEX


def colorize_semseg(ids: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Class ids [H, W] -> uint8 RGB; ignore (255) is black."""
    table = np.zeros((max(256, len(palette)), 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    table[IGNORE_INDEX] = 0
    return table[np.clip(ids, 0, len(table) - 1).astype(np.int64)]


def colorize_depth(
    depth: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "turbo_r"
) -> np.ndarray:
    """Depth [H, W] (metres, 0 = invalid) -> uint8 RGB; near is red, far is blue; invalid is black."""
    valid = depth > 0
    if vmin is None:
        vmin = float(depth[valid].min()) if valid.any() else 0.0
    if vmax is None:
        vmax = float(depth[valid].max()) if valid.any() else 1.0
    scaled = np.clip((depth - vmin) / max(vmax - vmin, 1e-6), 0, 1)
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_error(pred: np.ndarray, gt: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """|pred - gt| over valid gt as a heat map (black = invalid)."""
    valid = gt > 0
    err = np.where(valid, np.abs(pred - gt), 0.0)
    if vmax is None:
        vmax = float(np.percentile(err[valid], 99)) if valid.any() else 1.0
    rgb = (colormaps["inferno"](np.clip(err / max(vmax, 1e-6), 0, 1))[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals [H, W, 3] -> uint8 RGB ``(n + 1) / 2``; invalid (zero) is black."""
    invalid = np.abs(normals).sum(-1) == 0
    rgb = np.clip((normals + 1.0) * 127.5, 0, 255).astype(np.uint8)
    rgb[invalid] = 0
    return rgb


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
) -> np.ndarray:
    """RGB | GT seg | pred seg | GT depth | pred depth | depth error | (GT / pred normals).

    ``pred`` / ``gt`` hold numpy arrays: ``semseg`` [H, W] ids, ``depth`` [H, W] metres,
    ``normals`` [H, W, 3]; panels without ground truth are skipped.
    """
    gt = gt or {}
    tiles = [to_uint8_image(image)]
    if "semseg" in pred:
        if "semseg" in gt:
            tiles.append(colorize_semseg(gt["semseg"], palette))
        tiles.append(colorize_semseg(pred["semseg"], palette))
    if "depth" in pred:
        ref = gt.get("depth")
        valid = ref[ref > 0] if ref is not None and (ref > 0).any() else pred["depth"].ravel()
        vmin, vmax = float(valid.min()), float(valid.max())
        if ref is not None:
            tiles.append(colorize_depth(ref, vmin, vmax))
        tiles.append(colorize_depth(pred["depth"], vmin, vmax))
        if ref is not None:
            tiles.append(colorize_error(pred["depth"], ref))
    if "normals" in pred:
        if "normals" in gt:
            tiles.append(colorize_normals(gt["normals"]))
        tiles.append(colorize_normals(pred["normals"]))
    return hstack_panel(tiles)
