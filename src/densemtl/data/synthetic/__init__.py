"""Procedural, ray-cast indoor scenes: the embedded default dataset of densemtl (docs/data.md).

Why it exists: a framework for joint segmentation + depth (+ normals) needs a dataset that is
always available (no download, no licence), exact (per-pixel ground truth for every task, no
holes), fast to make (``>= 20`` images/s at 240x320 on two cores) and not trivial: the classes are
built so that no single cue solves them (doors, windows and pictures are *flat on the wall*, so
depth cannot separate them from the wall; tables and cabinets share the same wood, so colour
cannot separate them), while objects keep real-world sizes so metric depth is learnable from
one image.

Scenes are closed boxes (floor, four walls, ceiling) with furniture made of boxes, vertical
cylinders and spheres, and flat rectangles on the walls / floor / ceiling ("decals": doors,
windows, pictures, rugs, flush ceiling lights). Rendering is vectorised numpy ray casting:

* one ray per pixel from a pinhole camera with NYU-like intrinsics; rays are *not* normalised
  (their camera-frame z component is 1), so the ray parameter ``t`` of a hit *is* the z-depth;
* analytic intersections, each primitive only tested on the pixels of its projected bounding
  box; the scene origin of all primary rays is one point, so most terms are scalars;
* procedural textures evaluated from surface / object-local coordinates (wood grain, tiles,
  planks, carpet, wallpaper, picture content, sky behind windows, ...);
* one point light plus ambient, Lambertian shading, cast shadows (rays from the light to every
  lit pixel, tested against the furniture only: the room is convex and the decals are flat);
* auto exposure, slight vignetting and blur, Gaussian sensor noise, 8-bit quantisation.

World frame: metres, ``x`` along the room width, ``y`` along its depth, ``z`` up, floor at
``z = 0``. Camera frame: OpenCV (x right, y down, z forward). Everything is a pure function of
the seed (numpy ``Generator``), so a seed gives bit-identical arrays.

Modules: :mod:`.scene` (classes, intrinsics, scene dataclasses), :mod:`.geometry` (ray casting),
:mod:`.textures`, :mod:`.render` (per-pixel outputs), :mod:`.materials` and :mod:`.layout`
(random scenes), :mod:`.writer` (folder format, cache, parallel rendering), :mod:`.trajectory`
(camera walks through one room) and :mod:`.surface` (its ground-truth surface samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from densemtl.data.synthetic.layout import random_scene
from densemtl.data.synthetic.render import render, render_scene
from densemtl.data.synthetic.scene import (
    CABINET,
    CEILING,
    CEILING_SURFACE,
    CLASS_COLORS,
    CLASS_NAMES,
    DEPTH_DISPLAY_RANGE,
    DOOR,
    FLOOR,
    FLOOR_SURFACE,
    GENERATOR_VERSION,
    LAMP,
    NYU_INTRINSICS,
    NYU_SIZE,
    PICTURE,
    PLAIN,
    SOFA,
    TABLE,
    WALL,
    WALL_X0,
    WALL_X1,
    WALL_Y0,
    WALL_Y1,
    WINDOW,
    Box,
    Camera,
    Color,
    Cylinder,
    Decal,
    Material,
    Primitive,
    Scene,
    Sphere,
    SyntheticSample,
    intrinsics_for,
    scene_from_spec,
)
from densemtl.data.synthetic.surface import sample_surface
from densemtl.data.synthetic.trajectory import (
    Trajectory,
    camera_to_world,
    random_trajectory,
    render_trajectories,
    trajectory_seed,
)
from densemtl.data.synthetic.writer import (
    MANIFEST_NAME,
    _exclusive,
    _is_complete,
    _manifest,
    _render_and_write,
    _render_into,
    benchmark_render,
    image_seed,
)

__all__ = [
    "CABINET",
    "CEILING",
    "CEILING_SURFACE",
    "CLASS_COLORS",
    "CLASS_NAMES",
    "DEPTH_DISPLAY_RANGE",
    "DOOR",
    "FLOOR",
    "FLOOR_SURFACE",
    "GENERATOR_VERSION",
    "LAMP",
    "MANIFEST_NAME",
    "NYU_INTRINSICS",
    "NYU_SIZE",
    "PICTURE",
    "PLAIN",
    "SOFA",
    "TABLE",
    "WALL",
    "WALL_X0",
    "WALL_X1",
    "WALL_Y0",
    "WALL_Y1",
    "WINDOW",
    "Box",
    "Camera",
    "Color",
    "Cylinder",
    "Decal",
    "Material",
    "Primitive",
    "Scene",
    "Sphere",
    "SyntheticSample",
    "Trajectory",
    "benchmark_render",
    "camera_to_world",
    "image_seed",
    "intrinsics_for",
    "random_scene",
    "random_trajectory",
    "render",
    "render_dataset",
    "render_scene",
    "render_trajectories",
    "sample_surface",
    "scene_from_spec",
    "trajectory_seed",
]


def render_dataset(
    root: str | Path,
    num_images: int,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Render ``num_images`` random scenes into ``root`` in the generic folder format (cached).

    Why cached: every command that needs data (demo, tests, training) calls this; when ``root``
    already holds a complete dataset made with the same parameters (``synthetic.json``), it
    returns at once. Image ``i`` always comes from :func:`image_seed` ``(seed, i)``; ids are
    ``000000``, ``000001``, ...; the first ~80 % go to ``train``, then ``val``, then ``test``.
    Safe to call from several processes at once (a lock file beside ``root``): one renders, the
    others wait and reuse its result.
    """
    from densemtl.errors import ConfigError

    if num_images < 1 or height < 8 or width < 8:
        raise ConfigError(
            f"render_dataset needs num_images >= 1 and a size >= 8x8, got {num_images}, {height}x{width}"
        )
    if len(splits) != 3 or min(splits) < 0 or sum(splits) <= 0:
        raise ConfigError(f"splits must be three non-negative train/val/test fractions, got {tuple(splits)}")
    root = Path(root)
    params = _manifest(num_images, height, width, seed, splits)
    if _is_complete(root, params):
        return root
    with _exclusive(root):  # parallel callers (test workers, DDP ranks) render once, then reuse
        if not _is_complete(root, params):
            # the per-image job is looked up here, at call time, so a caller may wrap it
            _render_into(root, params, workers, progress, _render_and_write)
    return root
