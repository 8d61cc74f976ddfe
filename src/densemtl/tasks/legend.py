"""Legend strips drawn under prediction panels: a labelled colour bar for continuous maps (depth
in metres, disparity in pixels) and colour swatches with class names for label maps.

Pillow draws the text (its default font); the layout is ours, a few lines that no plotting
library does without a figure round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

BACKGROUND = 255
TEXT = (0, 0, 0)


@lru_cache(maxsize=4)
def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw(strip: np.ndarray):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw

    image = Image.fromarray(strip)
    return image, ImageDraw.Draw(image)


def _label(value: float, unit: str) -> str:
    return f"{value:.3g} {unit}".strip()


def colour_bar(
    colours: np.ndarray,
    vmin: float,
    vmax: float,
    unit: str,
    title: str,
    width: int = 320,
    font_size: int = 12,
) -> np.ndarray:
    """``title`` then a horizontal bar of ``colours`` (``[N, 3]`` uint8, ``vmin`` on the left) with
    ticks at the ends and the middle labelled in ``unit``: uint8 RGB ``[h, title + width, 3]``."""
    font = _font(font_size)
    bar_height, tick, gap = font_size, 3, 4
    title_width = int(font.getlength(title)) + 2 * gap
    height = gap + bar_height + tick + font_size + 2 * gap
    total = title_width + width + 4 * font_size  # room for the last label
    strip = np.full((height, total, 3), BACKGROUND, dtype=np.uint8)
    columns = np.linspace(0, len(colours) - 1, width).round().astype(np.int64)
    strip[gap : gap + bar_height, title_width : title_width + width] = colours[columns][None]
    image, draw = _draw(strip)
    draw.text((gap, gap), title, fill=TEXT, font=font)
    for fraction in (0.0, 0.5, 1.0):
        x = title_width + round(fraction * (width - 1))
        draw.line([(x, gap + bar_height), (x, gap + bar_height + tick)], fill=TEXT)
        text = _label(vmin + fraction * (vmax - vmin), unit)
        draw.text((x - fraction * font.getlength(text), gap + bar_height + tick), text, fill=TEXT, font=font)
    return np.asarray(image)


def swatches(
    entries: Sequence[tuple[str, Sequence[int]]], width: int, title: str = "classes", font_size: int = 12
) -> np.ndarray:
    """``title`` then one coloured square and its name per entry, wrapped into rows of at most
    ``width`` pixels: uint8 RGB ``[h, width, 3]``."""
    font = _font(font_size)
    gap, box = 4, font_size
    x0 = int(font.getlength(title)) + 3 * gap
    width = max(width, x0 + 4 * box)
    placed, x, row = [], x0, 0
    for name, colour in entries:
        step = box + gap + int(font.getlength(name)) + 3 * gap
        if x > x0 and x + step > width:
            x, row = x0, row + 1
        placed.append((x, row, name, colour))
        x += step
    rows = row + 1
    line = box + gap
    strip = np.full((gap + rows * line + gap, width, 3), BACKGROUND, dtype=np.uint8)
    for x, row, _, colour in placed:
        y = gap + row * line
        strip[y : y + box, x : x + box] = np.asarray(colour, dtype=np.uint8)
    image, draw = _draw(strip)
    draw.text((gap, gap), title, fill=TEXT, font=font)
    for x, row, name, _ in placed:
        draw.text((x + box + gap, gap + row * line), name, fill=TEXT, font=font)
    return np.asarray(image)


def side_by_side(strips: Sequence[np.ndarray], gap: int = 16) -> np.ndarray:
    """Strips next to each other, top-aligned on white."""
    height = max(s.shape[0] for s in strips)
    parts = []
    for i, strip in enumerate(strips):
        part = np.full((height, strip.shape[1], 3), BACKGROUND, dtype=np.uint8)
        part[: strip.shape[0]] = strip
        parts.append(part)
        if i < len(strips) - 1:
            parts.append(np.full((height, gap, 3), BACKGROUND, dtype=np.uint8))
    return np.concatenate(parts, axis=1)


def vstack_left(top: np.ndarray, strips: Sequence[np.ndarray]) -> np.ndarray:
    """``top`` with each strip below it, left-aligned on white, as wide as the widest part."""
    width = max(top.shape[1], *(s.shape[1] for s in strips))
    rows = []
    for part in (top, *strips):
        row = np.full((part.shape[0], width, 3), BACKGROUND, dtype=np.uint8)
        row[:, : part.shape[1]] = part
        rows.append(row)
    return np.concatenate(rows, axis=0)
