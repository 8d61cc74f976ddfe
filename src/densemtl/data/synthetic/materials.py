"""Random per-scene palettes and materials: the same class gets different looks in different
scenes, and classes share looks (tables / cabinets / doors often share the scene's wood)."""

from __future__ import annotations

import colorsys

import numpy as np

from densemtl.data.synthetic.scene import Color, Material


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), max(v, 0.0))
    return (float(r), float(g), float(b))


def _paint_color(rng: np.random.Generator) -> Color:
    """Wall-paint-like colour: mostly light neutrals, sometimes a bolder tint."""
    if rng.random() < 0.7:
        return _hsv(rng.random(), rng.uniform(0.02, 0.18), rng.uniform(0.62, 0.93))
    return _hsv(rng.random(), rng.uniform(0.15, 0.5), rng.uniform(0.45, 0.88))


def _fabric_color(rng: np.random.Generator) -> Color:
    return _hsv(rng.random(), rng.uniform(0.05, 0.65), rng.uniform(0.2, 0.8))


def _wood_material(rng: np.random.Generator) -> Material:
    """A wood: light and dark grain colours (oak to walnut) and the grain's ring frequency (1/m)."""
    light = _hsv(rng.uniform(0.045, 0.115), rng.uniform(0.35, 0.75), rng.uniform(0.28, 0.82))
    factor = rng.uniform(0.5, 0.75)
    dark = (light[0] * factor, light[1] * factor, light[2] * factor)
    return Material("wood", (light, dark), (rng.uniform(12.0, 40.0),), int(rng.integers(1 << 30)))


def _metal_color(rng: np.random.Generator) -> Color:
    return [(0.12, 0.12, 0.12), (0.7, 0.7, 0.72), (0.72, 0.58, 0.3), (0.45, 0.45, 0.47)][int(rng.integers(4))]  # type: ignore[return-value]


def _scene_materials(rng: np.random.Generator) -> dict[str, Material]:
    """One random palette per scene: the same class gets different looks in different scenes,
    and tables / cabinets / doors often share the scene's wood (colour alone is ambiguous)."""
    seed = int(rng.integers(1 << 30))
    mats: dict[str, Material] = {}
    wall = _paint_color(rng)
    r = rng.random()
    if r < 0.6:
        mats["wall"] = Material("paint", (wall,), (), seed)
    elif r < 0.85:
        other = _hsv(*colorsys.rgb_to_hsv(*wall)[:2], colorsys.rgb_to_hsv(*wall)[2] * rng.uniform(0.75, 0.92))
        if rng.random() < 0.4:
            other = _paint_color(rng)
        mats["wall"] = Material(
            "stripes", (wall, other), (rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.7)), seed
        )
    else:
        other = tuple(c * rng.uniform(0.8, 0.95) for c in wall)
        mats["wall"] = Material("pattern", (wall, other), (rng.uniform(0.08, 0.3),), seed)  # type: ignore[arg-type]
    mats["accent"] = (
        Material("paint", (_paint_color(rng),), (), seed + 1) if rng.random() < 0.25 else mats["wall"]
    )

    r = rng.random()
    if r < 0.3:
        tile = _hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.35, 0.9))
        grout = _hsv(0, 0, rng.uniform(0.3, 0.8))
        mats["floor"] = Material(
            "tiles",
            (tile, grout, _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.9))),
            (rng.uniform(0.25, 0.6), rng.uniform(0.002, 0.006), float(rng.random() < 0.2)),
            seed + 2,
        )
    elif r < 0.75:
        w = _wood_material(rng)
        params = (rng.uniform(0.09, 0.2), rng.uniform(0.8, 2.0), float(rng.random() < 0.5), *w.params)
        mats["floor"] = Material("planks", w.colors, params, seed + 3)
    else:
        mats["floor"] = Material(
            "carpet", (_hsv(rng.random(), rng.uniform(0.03, 0.45), rng.uniform(0.2, 0.7)),), (), seed + 4
        )

    ceil = _hsv(rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.06), rng.uniform(0.8, 0.95))
    if rng.random() < 0.2:
        mats["ceiling"] = Material("tiles", (ceil, tuple(c * 0.8 for c in ceil)), (0.6, 0.008, 0.0), seed + 5)  # type: ignore[arg-type]
    else:
        mats["ceiling"] = Material("paint", (ceil,), (), seed + 5)

    wood = _wood_material(rng)
    wood2 = _wood_material(rng) if rng.random() < 0.35 else wood
    mats["table"] = wood if rng.random() < 0.8 else Material("plain", (_paint_color(rng),))
    cab_wood = rng.random() < 0.65
    cab_src = wood if rng.random() < 0.75 else wood2
    cab_colors = cab_src.colors if cab_wood else (_paint_color(rng),)
    mats["cabinet"] = Material(
        "cabinet",
        (*cab_colors[:2], _metal_color(rng))
        if cab_wood
        else (cab_colors[0], cab_colors[0], _metal_color(rng)),
        (float(cab_wood), float(rng.integers(1, 5)), *(cab_src.params if cab_wood else ())),
        cab_src.seed,
    )
    door_wood = rng.random() < 0.4
    door_src = wood if rng.random() < 0.5 else _wood_material(rng)
    door_color = (
        door_src.colors if door_wood else (_paint_color(rng) if rng.random() < 0.4 else _hsv(0.1, 0.03, 0.9),)
    )
    casing = _hsv(0.1, 0.03, rng.uniform(0.8, 0.95)) if rng.random() < 0.7 else door_src.colors[-1]
    mats["door"] = Material(
        "door",
        (door_color[0], door_color[-1], casing, _metal_color(rng)),
        (
            rng.uniform(0.04, 0.08),
            float(door_wood),
            float(rng.integers(1, 4)),
            float(rng.random() < 0.5),
            door_src.params[0],
        ),
        seed + 6,
    )
    mats["sofa"] = Material("fabric", (_fabric_color(rng),), (), seed + 7)
    mats["shade"] = Material(
        "emissive",
        (_hsv(rng.uniform(0.08, 0.15), rng.uniform(0.05, 0.4), rng.uniform(0.95, 1.15)),),
        (),
        seed + 8,
    )
    mats["metal"] = Material("metal", (_metal_color(rng),))
    frame = [(0.95, 0.95, 0.95), (0.25, 0.25, 0.27), wood.colors[0]][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
    mats["window_frame"] = Material("plain", (frame,))
    return mats


def _window_material(rng: np.random.Generator, frame: Color) -> Material:
    horizon = _hsv(rng.uniform(0.5, 0.62), rng.uniform(0.0, 0.2), rng.uniform(1.0, 1.3))
    zenith = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.2, 0.6), rng.uniform(0.85, 1.2))
    outside = _hsv(rng.uniform(0.15, 0.4), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7))
    if rng.random() < 0.3:
        outside = _hsv(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.4, 0.8))  # buildings
    hbar = rng.uniform(0.55, 0.75) if rng.random() < 0.5 else 0.0
    params = (
        rng.uniform(0.03, 0.08),
        float(rng.random() < 0.6),
        hbar,
        float(rng.random() < 0.5),
        rng.uniform(0.2, 0.55),
    )
    return Material("window", (frame, horizon, zenith, outside), params, int(rng.integers(1 << 30)))


def _picture_material(rng: np.random.Generator, wood: Color) -> Material:
    frame = [(0.08, 0.08, 0.08), wood, (0.75, 0.6, 0.3), (0.92, 0.92, 0.9)][int(rng.integers(4))]
    mat_color = _hsv(0.1, rng.uniform(0, 0.08), rng.uniform(0.85, 0.97))
    palette = tuple(_hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.95)) for _ in range(4))
    style = int(rng.integers(3))
    if style == 2:  # landscape: sky, then ground colours
        palette = (
            _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), rng.uniform(0.8, 1.0)),
            _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.95)),
            _hsv(rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6)),
            _hsv(rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)),
        )
    mat_w = rng.uniform(0.03, 0.08) if rng.random() < 0.4 else 0.0
    params = (rng.uniform(0.015, 0.05), mat_w, float(style))
    return Material("picture", (frame, mat_color, (0, 0, 0), *palette), params, int(rng.integers(1 << 30)))
