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
"""

from __future__ import annotations

import colorsys
import contextlib
import functools
import json
import math
import multiprocessing
import multiprocessing.pool
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR_VERSION = 1
"""Bump whenever a change alters rendered pixels: cached datasets are then re-rendered."""

CLASS_NAMES: tuple[str, ...] = (
    "wall",
    "floor",
    "ceiling",
    "door",
    "window",
    "picture",
    "table",
    "cabinet",
    "sofa",
    "lamp",
)
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (174, 199, 232),  # wall
    (152, 223, 138),  # floor
    (78, 71, 183),  # ceiling
    (214, 39, 40),  # door
    (197, 176, 213),  # window
    (196, 156, 148),  # picture
    (255, 152, 150),  # table
    (31, 119, 180),  # cabinet
    (140, 86, 75),  # sofa
    (255, 187, 120),  # lamp
)
WALL, FLOOR, CEILING, DOOR, WINDOW, PICTURE, TABLE, CABINET, SOFA, LAMP = range(len(CLASS_NAMES))

NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
"""fx, fy, cx, cy of the NYU Depth v2 Kinect at 640x480 (scaled to the output size)."""
NYU_SIZE = (480, 640)

# Room surfaces get ids 0..5 in the hit buffer; primitive k gets id 6 + k.
WALL_X0, WALL_X1, WALL_Y0, WALL_Y1, FLOOR_SURFACE, CEILING_SURFACE = range(6)
_NUM_SURFACES = 6
_F32 = np.float32
_SHADOW_EPS = 2e-3  # an occluder must lie before 99.8 % of the light-to-point segment (no self-shadowing)


def intrinsics_for(height: int, width: int) -> tuple[float, float, float, float]:
    """NYU intrinsics scaled to ``height`` x ``width`` (``fx, fy, cx, cy``; pixel centres at integers)."""
    sx, sy = width / NYU_SIZE[1], height / NYU_SIZE[0]
    fx, fy, cx, cy = NYU_INTRINSICS
    return (fx * sx, fy * sy, cx * sx, cy * sy)


# --------------------------------------------------------------------------------------------
# Scene description (plain frozen dataclasses: tests build known scenes with them)
# --------------------------------------------------------------------------------------------

Color = tuple[float, float, float]


@dataclass(frozen=True)
class Material:
    """How a surface looks: a texture ``kind``, its colours (albedo, 0..1) and numeric parameters.

    Kinds: ``plain``, ``paint``, ``stripes``, ``pattern``, ``tiles``, ``planks``, ``carpet``,
    ``wood``, ``fabric``, ``metal``, ``cabinet``, ``door``, ``window``, ``picture``, ``emissive``
    (window panes, lamp shades and ceiling lights glow: they are not shaded).
    Randomness lives in the parameters (drawn when the scene is made), never in rendering.
    """

    kind: str = "plain"
    colors: tuple[Color, ...] = ((0.7, 0.7, 0.7),)
    params: tuple[float, ...] = ()
    seed: int = 0


PLAIN = Material()


@dataclass(frozen=True)
class Camera:
    """Pinhole camera pose: ``yaw`` 0 looks along +y, positive yaw turns towards +x (radians);
    ``pitch`` > 0 looks up. No roll."""

    position: tuple[float, float, float]
    yaw: float = 0.0
    pitch: float = 0.0

    def rotation(self) -> np.ndarray:
        """3x3 camera-to-world rotation; columns are the camera's right, down and forward axes."""
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([math.sin(self.yaw) * cp, math.cos(self.yaw) * cp, sp])
        right = np.array([math.cos(self.yaw), -math.sin(self.yaw), 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward], axis=1)


@dataclass(frozen=True)
class Box:
    """Box of full extents ``size`` (local x, y, z; z vertical) at ``center``, rotated by ``yaw``
    (radians, counter-clockwise seen from above) about the vertical axis. Local +y is its front."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    label: int
    yaw: float = 0.0
    material: Material = PLAIN


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder with axis at ``(x, y)``, spanning heights ``z0..z1``."""

    x: float
    y: float
    z0: float
    z1: float
    radius: float
    label: int
    material: Material = PLAIN


@dataclass(frozen=True)
class Sphere:
    """Sphere."""

    center: tuple[float, float, float]
    radius: float
    label: int
    material: Material = PLAIN


Primitive = Box | Cylinder | Sphere


@dataclass(frozen=True)
class Decal:
    """A flat rectangle (or the ellipse inscribed in it) painted *on* a room surface: same depth
    and normal as the surface, only label and appearance change (doors, windows, pictures, rugs).

    ``surface`` is a room surface id (``WALL_X0`` .. ``CEILING_SURFACE``); ``u`` runs along the
    wall (``y`` on the x-walls, ``x`` on the y-walls) and ``v`` is the height; on the floor and
    ceiling ``(u, v) = (x, y)``.
    """

    surface: int
    u0: float
    u1: float
    v0: float
    v1: float
    label: int
    material: Material = PLAIN
    disc: bool = False


@dataclass(frozen=True)
class Scene:
    """Everything :func:`render` needs; a pure description (``noise_seed`` seeds sensor noise)."""

    room: tuple[float, float, float]  # width (x), depth (y), height (z) in metres
    camera: Camera
    light: tuple[float, float, float]
    light_color: Color = (0.8, 0.8, 0.8)
    ambient: Color = (0.3, 0.3, 0.3)
    surfaces: tuple[Material, ...] = (PLAIN,) * 6  # x0, x1, y0, y1 walls, floor, ceiling
    objects: tuple[Primitive, ...] = ()
    decals: tuple[Decal, ...] = ()
    falloff: float = 3.0  # light falloff distance d0: intensity * d0^2 / (d0^2 + d^2)
    exposure: float | None = 1.0  # None: auto exposure towards ``exposure_target``
    exposure_target: float = 0.42
    noise_sigma: float = 0.0
    blur: float = 0.0
    vignette: float = 0.0
    noise_seed: int = 0


@dataclass
class SyntheticSample:
    """One rendered image with exact per-pixel labels (see the module docstring for frames)."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W], z-depth in metres, > 0 everywhere
    semantic: np.ndarray  # uint8 [H, W], index into CLASS_NAMES
    normals: np.ndarray  # float32 [H, W, 3], unit, camera frame (OpenCV), facing the camera
    intrinsics: tuple[float, float, float, float]  # fx, fy, cx, cy at this size
    seed: int


def scene_from_spec(
    room: tuple[float, float, float] = (4.0, 6.0, 2.8),
    camera_position: tuple[float, float, float] = (2.0, 0.5, 1.4),
    yaw_deg: float = 0.0,
    pitch_deg: float = 0.0,
    objects: Sequence[Primitive] = (),
    decals: Sequence[Decal] = (),
    light: tuple[float, float, float] | None = None,
    ambient: float = 0.3,
    light_intensity: float = 0.8,
) -> Scene:
    """A known scene with plain grey materials and no noise, for tests and examples.

    The default light hangs 0.3 m below the ceiling centre; exposure is fixed (1.0), so pixel
    values follow the shading model exactly (``albedo * (ambient + diffuse * visibility)``).
    """
    width, depth, height = room
    if light is None:
        light = (width / 2, depth / 2, height - 0.3)
    return Scene(
        room=tuple(map(float, room)),  # type: ignore[arg-type]
        camera=Camera(tuple(map(float, camera_position)), math.radians(yaw_deg), math.radians(pitch_deg)),  # type: ignore[arg-type]
        light=tuple(map(float, light)),  # type: ignore[arg-type]
        light_color=(light_intensity,) * 3,
        ambient=(ambient,) * 3,
        objects=tuple(objects),
        decals=tuple(decals),
    )


# --------------------------------------------------------------------------------------------
# Intersections. ``o`` is a 3-tuple of Python floats (one origin for all rays), ``dx, dy, dz``
# float32 arrays of directions; each returns t (float32, inf where missed) with t > tmin.
# --------------------------------------------------------------------------------------------


def _isect_box(
    b: Box, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float
) -> np.ndarray:
    hx, hy, hz = (0.5 * s for s in b.size)
    ox, oy, oz = o[0] - b.center[0], o[1] - b.center[1], o[2] - b.center[2]
    if b.yaw:
        c, s = math.cos(b.yaw), math.sin(b.yaw)
        ox, oy = c * ox + s * oy, -s * ox + c * oy
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / dx
        t1, t2 = (-hx - ox) * inv, (hx - ox) * inv
        tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
        inv = 1.0 / dy
        t1, t2 = (-hy - oy) * inv, (hy - oy) * inv
        np.maximum(tn, np.minimum(t1, t2), out=tn)
        np.minimum(tf, np.maximum(t1, t2), out=tf)
        inv = 1.0 / dz
        t1, t2 = (-hz - oz) * inv, (hz - oz) * inv
        np.maximum(tn, np.minimum(t1, t2), out=tn)
        np.minimum(tf, np.maximum(t1, t2), out=tf)
        hit = (tn <= tf) & (tn > tmin)
    return np.where(hit, tn, _F32(np.inf))


def _isect_cylinder(
    cy: Cylinder, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float
) -> np.ndarray:
    ox, oy, oz = o[0] - cy.x, o[1] - cy.y, o[2]
    r2 = cy.radius * cy.radius
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = dx * dx + dy * dy
        b = ox * dx + oy * dy
        c = ox * ox + oy * oy - r2
        disc = b * b - a * c
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z = oz + ts * dz
        ok = (disc >= 0) & (ts > tmin) & (z >= cy.z0) & (z <= cy.z1)
        t = np.where(ok, ts, _F32(np.inf))
        if oz > cy.z1 or oz < cy.z0:
            zc = cy.z1 if oz > cy.z1 else cy.z0
            tc = (zc - oz) / dz
            px, py = ox + tc * dx, oy + tc * dy
            cap = (tc > tmin) & (px * px + py * py <= r2) & (tc < t)
            t = np.where(cap, tc, t)
    return t


def _isect_sphere(
    sp: Sphere, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float
) -> np.ndarray:
    ox, oy, oz = o[0] - sp.center[0], o[1] - sp.center[1], o[2] - sp.center[2]
    c = ox * ox + oy * oy + oz * oz - sp.radius * sp.radius
    with np.errstate(invalid="ignore"):
        a = dx * dx + dy * dy + dz * dz
        b = ox * dx + oy * dy + oz * dz
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        ok = (disc >= 0) & (t > tmin)
    return np.where(ok, t, _F32(np.inf))


def _intersect(
    p: Primitive, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float
) -> np.ndarray:
    if isinstance(p, Box):
        return _isect_box(p, o, dx, dy, dz, tmin)
    if isinstance(p, Cylinder):
        return _isect_cylinder(p, o, dx, dy, dz, tmin)
    return _isect_sphere(p, o, dx, dy, dz, tmin)


def _corners(p: Primitive) -> np.ndarray:
    """World-space corners [8, 3] of an axis-aligned box bounding ``p``."""
    if isinstance(p, Box):
        hx, hy, hz = (0.5 * s for s in p.size)
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        ex, ey = abs(c * hx) + abs(s * hy), abs(s * hx) + abs(c * hy)
        lo = (p.center[0] - ex, p.center[1] - ey, p.center[2] - hz)
        hi = (p.center[0] + ex, p.center[1] + ey, p.center[2] + hz)
    elif isinstance(p, Cylinder):
        lo = (p.x - p.radius, p.y - p.radius, p.z0)
        hi = (p.x + p.radius, p.y + p.radius, p.z1)
    else:
        lo = tuple(c - p.radius for c in p.center)
        hi = tuple(c + p.radius for c in p.center)
    return np.array(
        [[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )


def _bounding_sphere(p: Primitive) -> tuple[np.ndarray, float]:
    if isinstance(p, Box):
        return np.array(p.center, dtype=float), 0.5 * math.sqrt(sum(s * s for s in p.size))
    if isinstance(p, Cylinder):
        h = 0.5 * (p.z1 - p.z0)
        return np.array([p.x, p.y, p.z0 + h]), math.sqrt(p.radius**2 + h * h)
    return np.array(p.center, dtype=float), p.radius


def _screen_rect(
    p: Primitive,
    origin: np.ndarray,
    rot: np.ndarray,
    k: tuple[float, float, float, float],
    height: int,
    width: int,
) -> tuple[int, int, int, int] | None:
    """Conservative pixel rectangle (v0, v1, u0, u1) covering ``p``; None when off-screen."""
    cam = (_corners(p) - origin) @ rot  # rows: camera-frame corners
    z = cam[:, 2]
    if (z <= 1e-3).all():
        return None
    if (z <= 1e-3).any():
        return (0, height, 0, width)
    fx, fy, cx, cy = k
    u = fx * cam[:, 0] / z + cx
    v = fy * cam[:, 1] / z + cy
    u0, u1 = max(0, math.floor(u.min()) - 1), min(width, math.ceil(u.max()) + 2)
    v0, v1 = max(0, math.floor(v.min()) - 1), min(height, math.ceil(v.max()) + 2)
    if u0 >= u1 or v0 >= v1:
        return None
    return (v0, v1, u0, u1)


# --------------------------------------------------------------------------------------------
# Procedural textures: pure functions of coordinates (metres) and material parameters. Colours
# are channel-first float32 arrays [3, n] (row operations are several times faster than [n, 3]).
# --------------------------------------------------------------------------------------------


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell (uint32 arithmetic)."""
    h = i.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343) ^ j.astype(np.int64).astype(
        np.uint32
    ) * np.uint32(0xD8163841)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


@functools.lru_cache(maxsize=4096)
def _wave_params(seed: int, scale: float, ndim: int, n: int) -> tuple[tuple[tuple[float, ...], float], ...]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        freq = rng.normal(size=ndim)
        freq *= 2 * math.pi / (scale * (np.linalg.norm(freq) + 1e-9)) * rng.uniform(0.6, 1.6)
        out.append((tuple(float(f) for f in freq), float(rng.uniform(0, 2 * math.pi))))
    return tuple(out)


def _waves(seed: int, scale: float, *coords: np.ndarray, n: int = 2) -> np.ndarray:
    """Smooth noise in [-1, 1]: a sum of ``n`` random plane waves of wavelength ~``scale`` metres."""
    out = None
    for freq, phase in _wave_params(seed, scale, len(coords), n):
        arg = coords[0] * _F32(freq[0]) + _F32(phase)
        for f, c in zip(freq[1:], coords[1:]):
            arg += c * _F32(f)
        term = np.sin(arg, out=arg)
        out = term if out is None else out + term
    return out * _F32(1.0 / n)  # type: ignore[operator]


def _col(c: Color) -> np.ndarray:
    return np.asarray(c, dtype=_F32)[:, None]


def _solid(c: Color, n: int) -> np.ndarray:
    out = np.empty((3, n), dtype=_F32)
    out[:] = _col(c)
    return out


def _mix(c0: Color, c1: Color, w: np.ndarray) -> np.ndarray:
    """Per-pixel blend [3, n] of two colours with weights ``w`` (0 -> c0, 1 -> c1)."""
    a, b = _col(c0), _col(c1)
    return a + (b - a) * w[None, :].astype(_F32, copy=False)


def _wood(light: Color, dark: Color, ring: float, seed: int, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Wood grain: stripes along ``u`` (the grain), wobbling; ``q`` is the across-grain coordinate
    and ``ring`` the number of grain lines per metre."""
    wob = np.sin(u * _F32(1.7) + _F32(seed % 7)) * _F32(0.07)
    g = np.sin((q + wob) * _F32(ring * 2 * math.pi))
    g2 = np.sin((q * _F32(3.3) + wob) * _F32(ring * 2 * math.pi))
    w = np.clip(g * _F32(0.21) + g2 * _F32(0.14) + _F32(0.35), 0, 1)
    return _mix(light, dark, w)


def _texture_surface(m: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo [3, n] of a room surface (walls, floor, ceiling) at surface coordinates (u, v)."""
    n = u.shape[0]
    base = m.colors[0]
    kind = m.kind
    if kind == "plain":
        return _solid(base, n)
    if kind == "paint":
        return _col(base) * (1 + _F32(0.035) * _waves(m.seed, 1.5, u, v))[None, :]
    if kind in ("stripes", "pattern"):
        if kind == "stripes":
            w = (u * _F32(1.0 / m.params[0])) % 1.0 < m.params[1]
        else:
            k = _F32(2 * math.pi / m.params[0])
            w = np.sin(u * k) * np.sin(v * k) > 0.35
        return _mix(base, m.colors[1], w) * (1 + _F32(0.03) * _waves(m.seed, 1.0, u, v))[None, :]
    if kind == "tiles":
        size, grout = m.params[0], m.params[1]
        su, sv = u * _F32(1.0 / size), v * _F32(1.0 / size)
        i, j = np.floor(su), np.floor(sv)
        fu, fv = su - i, sv - j
        edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) * _F32(size)
        h = _hash(i, j, m.seed)
        out = (
            _mix(base, m.colors[2], (i + j) % 2)
            if len(m.params) > 2 and m.params[2] > 0.5
            else _solid(base, n)
        )
        out *= (h * _F32(0.2) + _F32(0.9) + _F32(0.04) * _waves(m.seed + 1, 0.3, u, v))[None, :]
        g = edge < grout
        out[:, g] = _col(m.colors[1])
        return out
    if kind == "planks":
        width, length, along_u = m.params[0], m.params[1], m.params[2] > 0.5
        a, b = (u, v) if along_u else (v, u)
        rb = b * _F32(1.0 / width)
        row = np.floor(rb)
        off = _hash(row, row, m.seed) * _F32(length)
        ra = (a + off) * _F32(1.0 / length)
        col = np.floor(ra)
        fa, fb = ra - col, rb - row
        h = _hash(row, col, m.seed + 3)
        out = _wood(m.colors[0], m.colors[1], m.params[3], m.seed, a + h * _F32(5.0), b + h)
        out *= (h * _F32(0.3) + _F32(0.85))[None, :]
        gap = (np.minimum(fb, 1 - fb) * _F32(width) < 0.003) | (np.minimum(fa, 1 - fa) * _F32(length) < 0.003)
        out[:, gap] *= _F32(0.45)
        return out
    if kind == "carpet":
        h = _hash(np.floor(u * _F32(150)), np.floor(v * _F32(150)), m.seed)
        return _col(base) * (h * _F32(0.12) + _F32(0.88) + _F32(0.06) * _waves(m.seed, 0.8, u, v))[None, :]
    return _solid(base, n)


def _texture_decal(d: Decal, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo [3, n] and emissive mask (or None) of a decal at local coordinates (s, t): metres from
    its lower-left corner as seen from inside the room."""
    m = d.material
    n = s.shape[0]
    w, h = d.u1 - d.u0, d.v1 - d.v0
    kind = m.kind
    if kind == "door":
        casing, wood = m.params[0], m.params[1] > 0.5
        panels, knob_left = int(m.params[2]), m.params[3] > 0.5
        if wood:
            out = _wood(m.colors[0], m.colors[1], m.params[4], m.seed, t, s)
        else:
            out = _col(m.colors[0]) * (1 + _F32(0.02) * _waves(m.seed, 0.5, s, t))[None, :]
        frame = (s < casing) | (s > w - casing) | (t > h - casing)
        # panel outlines: thin darker rectangles on the leaf
        ls, lt = s - _F32(casing + 0.09), t - _F32(0.12)
        pw, ph = w - 2 * casing - 0.18, (h - casing - 0.3) / max(panels, 1)
        rel_t = lt * _F32(1.0 / ph)
        row = np.floor(rel_t)
        ft = (rel_t - row) * _F32(ph)
        inside = (ls > 0) & (ls < pw) & (row >= 0) & (row < panels) & (ft < ph - 0.06)
        line = inside & ((ls < 0.015) | (ls > pw - 0.015) | (ft < 0.015) | (ft > ph - 0.075))
        out[:, line] *= _F32(0.72)
        out[:, frame] = _col(m.colors[2])
        kx = casing + 0.08 if knob_left else w - casing - 0.08
        knob = (s - _F32(kx)) ** 2 + (t - _F32(1.0)) ** 2 < _F32(0.03**2)
        out[:, knob] = _col(m.colors[3])
        return out, None
    if kind == "window":
        frame_w, vbar, hbar_at = m.params[0], m.params[1] > 0.5, m.params[2]
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        if vbar:
            frame |= np.abs(s - _F32(w / 2)) < _F32(frame_w * 0.5)
        if hbar_at > 0:
            frame |= np.abs(t - _F32(h * hbar_at)) < _F32(frame_w * 0.5)
        sky = _mix(m.colors[1], m.colors[2], np.clip(t * _F32(1.0 / h), 0, 1))
        if m.params[3] > 0.5:  # trees / buildings outside, up to a wavy horizon
            horizon = _F32(m.params[4] * h) + _F32(0.12 * h) * _waves(m.seed, 0.6, s)
            ground = t < horizon
            shade = _F32(0.75) + _F32(0.25) * _waves(m.seed + 5, 0.15, s[ground], t[ground])
            sky[:, ground] = _col(m.colors[3]) * shade[None, :]
        sky[:, frame] = _col(m.colors[0])
        return sky, ~frame
    if kind == "picture":
        frame_w, mat_w, style = m.params[0], m.params[1], int(m.params[2])
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        inner = frame_w + mat_w
        mat = (s < inner) | (s > w - inner) | (t < inner) | (t > h - inner)
        cw, ch = max(w - 2 * inner, 1e-3), max(h - 2 * inner, 1e-3)
        x, y = (s - _F32(inner)) * _F32(1.0 / cw), (t - _F32(inner)) * _F32(1.0 / ch)
        pal = m.colors[3:]
        if style == 0:  # abstract: smooth blend of palette colours
            w1 = _F32(0.5) + _F32(0.5) * _waves(m.seed, 0.6, x, y)
            w2 = _F32(0.5) + _F32(0.5) * _waves(m.seed + 1, 0.35, x, y)
            out = _mix(pal[0], pal[1], w1)
            out += (_col(pal[2]) - out) * (w2 * w2)[None, :]
        elif style == 1:  # rectangles on a background
            out = _solid(pal[0], n)
            rng = np.random.default_rng(m.seed)
            for i in range(5):
                x0, y0 = rng.uniform(-0.1, 0.8, 2)
                x1, y1 = x0 + rng.uniform(0.15, 0.6), y0 + rng.uniform(0.15, 0.6)
                out[:, (x > x0) & (x < x1) & (y > y0) & (y < y1)] = _col(pal[1 + i % (len(pal) - 1)])
        else:  # landscape: sky gradient over ground with a wavy horizon
            out = _mix(pal[0], pal[1], np.clip(y, 0, 1))
            ground = y < _F32(0.45) + _F32(0.12) * _waves(m.seed, 0.5, x)
            gw = _F32(0.5) + _F32(0.5) * _waves(m.seed + 2, 0.2, x[ground], y[ground])
            out[:, ground] = _mix(pal[2], pal[3], gw)
        out[:, mat] = _col(m.colors[1])
        out[:, frame] = _col(m.colors[0])
        return out, None
    if kind == "emissive":
        return _solid(m.colors[0], n), np.ones(n, dtype=bool)
    return _texture_surface(m, s, t), None


def _texture_object(
    m: Material, x: np.ndarray, y: np.ndarray, z: np.ndarray, face: np.ndarray | None, size: Sequence[float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo [3, n] and emissive mask of a solid at object-local coordinates (centred, metres).

    ``face`` (boxes only): 0..5 = -x, +x, -y, +y (front), -z, +z face that was hit.
    """
    n = x.shape[0]
    kind = m.kind
    if kind == "emissive":
        return _col(m.colors[0]) * (1 + _F32(0.04) * _waves(m.seed, 0.3, x, y, z))[None, :], np.ones(
            n, dtype=bool
        )
    if kind in ("wood", "cabinet"):
        if kind == "cabinet" and m.params[0] < 0.5:  # painted
            out = _col(m.colors[0]) * (1 + _F32(0.02) * _waves(m.seed, 0.5, x, y, z))[None, :]
        else:  # grain along the longest horizontal axis
            ring = m.params[0] if kind == "wood" else m.params[2]
            along, across = (x, y) if size[0] >= size[1] else (y, x)
            out = _wood(m.colors[0], m.colors[1], ring, m.seed, along, across * _F32(0.8) + z)
        if kind == "cabinet" and face is not None:
            _cabinet_front(m, out, x, z, face == 3, size)
        return out, None
    if kind == "fabric":
        h = _hash(np.floor((x + z) * _F32(120)), np.floor((y - z) * _F32(120)), m.seed)
        return _col(m.colors[0]) * (h * _F32(0.1) + _F32(0.9) + _F32(0.05) * _waves(m.seed, 0.5, x, y, z))[
            None, :
        ], None
    if kind == "metal":
        return _col(m.colors[0]) * (_F32(0.9) + _F32(0.1) * np.sin(z * _F32(40.0)))[None, :], None
    return _solid(m.colors[0], n), None


def _cabinet_front(
    m: Material, out: np.ndarray, x: np.ndarray, z: np.ndarray, front: np.ndarray, size: Sequence[float]
) -> None:
    """Doors / drawers on a cabinet's front face: dark gaps, metal handles, a darker plinth."""
    if not front.any():
        return
    hw, hh = 0.5 * size[0], 0.5 * size[2]
    xs, zs = x[front], z[front]
    n_cols = max(1, round(size[0] / 0.5))
    n_rows = max(1, int(m.params[1]))
    col_w, row_h = 2 * hw / n_cols, max(2 * hh - 0.1, 0.05) / n_rows
    cx = (xs + _F32(hw)) * _F32(1.0 / col_w)
    rz = (zs + _F32(hh - 0.08)) * _F32(1.0 / row_h)
    fx, fz = cx - np.floor(cx), rz - np.floor(rz)
    gap = (np.minimum(fx, 1 - fx) * _F32(col_w) < 0.006) | (np.minimum(fz, 1 - fz) * _F32(row_h) < 0.006)
    plinth = zs < _F32(-hh + 0.08)
    handle = (np.abs(fx - 0.5) < 0.12 / max(col_w, 0.2)) & (np.abs(fz - 0.82) < 0.03) & ~plinth
    sub = out[:, front]
    sub[:, gap | plinth] *= _F32(0.6)
    sub[:, handle] = _col(m.colors[2])
    out[:, front] = sub


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_SURFACE_NORMALS = (
    (1.0, 0.0, 0.0),
    (-1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, -1.0),
)
_SURFACE_LABELS = (WALL, WALL, WALL, WALL, FLOOR, CEILING)
# Gaussian noise by table look-up of random bytes: ~5x faster than standard_normal, same look.
_GAUSS_LUT = np.array([statistics.NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], dtype=_F32)


def _surface_uv(
    surface: int, px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if surface in (WALL_X0, WALL_X1):
        return py, pz
    if surface in (WALL_Y0, WALL_Y1):
        return px, pz
    return px, py


def _decal_local(d: Decal, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decal coordinates from its left edge as seen from inside the room (mirrored on two walls)."""
    if d.surface in (WALL_X1, WALL_Y0):  # u runs right-to-left when facing these walls
        return _F32(d.u1) - u, v - _F32(d.v0)
    return u - _F32(d.u0), v - _F32(d.v0)


def _primitive_normals(
    p: Primitive, px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[
    tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None
]:
    """World normal components, object-local coordinates and (boxes) the face index of hits on ``p``."""
    if isinstance(p, Box):
        hx, hy, hz = (0.5 * s for s in p.size)
        x, y, z = px - _F32(p.center[0]), py - _F32(p.center[1]), pz - _F32(p.center[2])
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        if p.yaw:
            x, y = _F32(c) * x + _F32(s) * y, _F32(-s) * x + _F32(c) * y
        ax, ay, az = np.abs(x) * _F32(1 / hx), np.abs(y) * _F32(1 / hy), np.abs(z) * _F32(1 / hz)
        is_x = (ax >= ay) & (ax >= az)
        is_y = ~is_x & (ay >= az)
        is_z = ~is_x & ~is_y
        sx, sy, sz = np.sign(x), np.sign(y), np.sign(z)
        face = np.where(is_x, sx > 0, np.where(is_y, 2 + (sy > 0), 4 + (sz > 0))).astype(np.int8)
        lx, ly = sx * is_x, sy * is_y
        return (_F32(c) * lx - _F32(s) * ly, _F32(s) * lx + _F32(c) * ly, sz * is_z), (x, y, z), face
    if isinstance(p, Cylinder):
        x, y = px - _F32(p.x), py - _F32(p.y)
        zm, hz = 0.5 * (p.z0 + p.z1), 0.5 * (p.z1 - p.z0)
        z = pz - _F32(zm)
        rho = np.sqrt(x * x + y * y)
        cap = np.abs(z) * _F32(1 / hz) > rho * _F32(1 / p.radius)
        side = ~cap / np.maximum(rho, _F32(1e-9))
        return (x * side, y * side, np.sign(z) * cap), (x, y, z), None
    x, y, z = px - _F32(p.center[0]), py - _F32(p.center[1]), pz - _F32(p.center[2])
    inv = _F32(1.0 / p.radius)
    return (x * inv, y * inv, z * inv), (x, y, z), None


def _size_of(p: Primitive) -> tuple[float, float, float]:
    if isinstance(p, Box):
        return p.size
    if isinstance(p, Cylinder):
        return (2 * p.radius, 2 * p.radius, p.z1 - p.z0)
    return (2 * p.radius,) * 3


def _camera_rays(
    rot: np.ndarray, k: tuple[float, float, float, float], height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-space ray directions (three [H, W] arrays) whose camera-frame z component is exactly 1."""
    fx, fy, cx, cy = k
    xs = ((np.arange(width, dtype=np.float64) - cx) / fx)[None, :]
    ys = ((np.arange(height, dtype=np.float64) - cy) / fy)[:, None]
    comps = []
    for axis in range(3):
        d = (xs * rot[axis, 0] + ys * rot[axis, 1] + rot[axis, 2]).astype(_F32)
        d[d == 0] = _F32(1e-12)  # keep slab divisions finite and signed
        comps.append(d)
    return comps[0], comps[1], comps[2]


def _room_exit(
    room: Sequence[float], o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter t where each ray leaves the (convex) room, and the id of that surface."""
    tx = (np.where(dx > 0, _F32(room[0]), _F32(0.0)) - _F32(o[0])) / dx
    ty = (np.where(dy > 0, _F32(room[1]), _F32(0.0)) - _F32(o[1])) / dy
    tz = (np.where(dz > 0, _F32(room[2]), _F32(0.0)) - _F32(o[2])) / dz
    sid = np.where(dz > 0, np.int16(CEILING_SURFACE), np.int16(FLOOR_SURFACE))
    t = tz
    use_y = ty < t
    np.copyto(sid, np.where(dy > 0, np.int16(WALL_Y1), np.int16(WALL_Y0)), where=use_y)
    t = np.minimum(t, ty)
    use_x = tx < t
    np.copyto(sid, np.where(dx > 0, np.int16(WALL_X1), np.int16(WALL_X0)), where=use_x)
    return np.minimum(t, tx), sid


def render(scene: Scene, height: int = 240, width: int = 320, seed: int = 0) -> SyntheticSample:
    """Ray-cast ``scene`` at ``height`` x ``width``: RGB, z-depth, labels and camera-frame normals."""
    k = intrinsics_for(height, width)
    rot = scene.camera.rotation()
    origin = np.asarray(scene.camera.position, dtype=float)
    o = tuple(float(c) for c in scene.camera.position)
    dx, dy, dz = _camera_rays(rot, k, height, width)

    # ---- primary visibility: the room, then every primitive on its screen rectangle only
    t, sid = _room_exit(scene.room, o, dx, dy, dz)
    for index, prim in enumerate(scene.objects):
        rect = _screen_rect(prim, origin, rot, k, height, width)
        if rect is None:
            continue
        sl = (slice(rect[0], rect[1]), slice(rect[2], rect[3]))
        tk = _intersect(prim, o, dx[sl], dy[sl], dz[sl], 1e-4)
        closer = tk < t[sl]
        np.copyto(t[sl], tk, where=closer)
        np.copyto(sid[sl], np.int16(_NUM_SURFACES + index), where=closer)

    # ---- per-pixel attributes, one group (room surface or primitive) at a time
    n = height * width
    tf, sidf = t.reshape(n), sid.reshape(n)
    dxf, dyf, dzf = dx.reshape(n), dy.reshape(n), dz.reshape(n)
    px, py, pz = _F32(o[0]) + tf * dxf, _F32(o[1]) + tf * dyf, _F32(o[2]) + tf * dzf
    nx, ny, nz = (np.empty(n, dtype=_F32) for _ in range(3))
    albedo = np.empty((3, n), dtype=_F32)
    label = np.empty(n, dtype=np.uint8)
    emissive = np.zeros(n, dtype=bool)

    order = np.argsort(sidf, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(sidf, minlength=_NUM_SURFACES + len(scene.objects)))])
    for group in range(len(bounds) - 1):
        idx = order[bounds[group] : bounds[group + 1]]
        if idx.size == 0:
            continue
        gx, gy, gz = px[idx], py[idx], pz[idx]
        if group < _NUM_SURFACES:
            sn = _SURFACE_NORMALS[group]
            nx[idx], ny[idx], nz[idx] = sn
            u, v = _surface_uv(group, gx, gy, gz)
            lab = np.full(idx.size, _SURFACE_LABELS[group], dtype=np.uint8)
            alb = _texture_surface(scene.surfaces[group], u, v)
            emi = None
            for d in scene.decals:
                if d.surface != group:
                    continue
                inside = (u >= d.u0) & (u <= d.u1) & (v >= d.v0) & (v <= d.v1)
                sel = np.flatnonzero(inside)
                if d.disc and sel.size:
                    cu, cv = 0.5 * (d.u0 + d.u1), 0.5 * (d.v0 + d.v1)
                    ru, rv = 0.5 * (d.u1 - d.u0), 0.5 * (d.v1 - d.v0)
                    du, dv = (u[sel] - _F32(cu)) * _F32(1 / ru), (v[sel] - _F32(cv)) * _F32(1 / rv)
                    sel = sel[du * du + dv * dv <= 1]
                if sel.size == 0:
                    continue
                a, e = _texture_decal(d, *_decal_local(d, u[sel], v[sel]))
                alb[:, sel] = a
                lab[sel] = d.label
                if emi is None:
                    emi = np.zeros(idx.size, dtype=bool)
                emi[sel] = e if e is not None else False
            label[idx] = lab
            if emi is not None:
                emissive[idx] = emi
        else:
            prim = scene.objects[group - _NUM_SURFACES]
            (gnx, gny, gnz), (lx, ly, lz), face = _primitive_normals(prim, gx, gy, gz)
            nx[idx], ny[idx], nz[idx] = gnx, gny, gnz
            label[idx] = prim.label
            alb, e = _texture_object(prim.material, lx, ly, lz, face, _size_of(prim))
            if e is not None:
                emissive[idx] = e
        for c in range(3):
            albedo[c][idx] = alb[c]

    # ---- normals face the camera (dot(n, ray) < 0): true for the room and closed solids seen
    # from outside; enforced anyway so the contract holds for any scene
    flip = nx * dxf + ny * dyf + nz * dzf > 0
    if flip.any():
        for comp in (nx, ny, nz):
            comp[flip] *= -1

    # ---- shading: ambient + Lambertian point light with cast shadows
    L = scene.light
    lx, ly, lz = _F32(L[0]) - px, _F32(L[1]) - py, _F32(L[2]) - pz
    dist = np.sqrt(lx * lx + ly * ly + lz * lz)
    ndotl = (nx * lx + ny * ly + nz * lz) / np.maximum(dist, _F32(1e-6))
    lit = (ndotl > 0) & ~emissive
    d0 = _F32(scene.falloff**2)
    diffuse = np.where(lit, ndotl, _F32(0)) * (d0 / (d0 + dist * dist))
    diffuse *= _shadow_visibility(scene, lit, lx, ly, lz, dist)
    rgb = np.empty((height, width, 3), dtype=_F32)
    has_emissive = bool(emissive.any())
    for c in range(3):
        chan = albedo[c] * (_F32(scene.ambient[c]) + diffuse * _F32(scene.light_color[c]))
        if has_emissive:
            chan = np.where(emissive, albedo[c], chan)
        rgb[..., c] = chan.reshape(height, width)

    # ---- camera-frame normals (rot^T n), unit
    r = rot.astype(_F32)
    cam = [nx * r[0, j] + ny * r[1, j] + nz * r[2, j] for j in range(3)]
    inv = 1.0 / np.sqrt(cam[0] * cam[0] + cam[1] * cam[1] + cam[2] * cam[2])
    normals = np.empty((height, width, 3), dtype=_F32)
    for j in range(3):
        normals[..., j] = (cam[j] * inv).reshape(height, width)

    return SyntheticSample(
        rgb=_camera_effects(scene, rgb, k),
        depth=t,
        semantic=label.reshape(height, width),
        normals=normals,
        intrinsics=k,
        seed=seed,
    )


def _shadow_visibility(
    scene: Scene, lit: np.ndarray, lx: np.ndarray, ly: np.ndarray, lz: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """1 where the light reaches a lit pixel, 0 in cast shadow (``l*`` = light - hit point).

    Shadow rays start *at the light* (one origin again) towards each hit point, parametrised so
    the hit point is at t = 1; an occluder hit before ``1 - eps`` casts the shadow. Each
    primitive is only tested on the pixels inside the cone it subtends from the light. The room
    cannot occlude (it is convex and holds the light) and decals are flat on it.
    """
    visible = np.ones(lit.shape[0], dtype=_F32)
    idx = np.flatnonzero(lit)
    if idx.size == 0 or not scene.objects:
        return visible
    L = scene.light
    lpos = np.asarray(L, dtype=float)
    rx, ry, rz, rd = -lx[idx], -ly[idx], -lz[idx], dist[idx]
    blocked = np.zeros(idx.size, dtype=bool)
    for (gc, gr), members in _occluder_groups(scene.objects, lpos):
        cand = np.flatnonzero(_in_cone(rx, ry, rz, rd, gc - lpos, gr))
        if cand.size == 0:
            continue
        gx, gy, gz, gd = rx[cand], ry[cand], rz[cand], rd[cand]
        for prim, (pc, pr) in members:
            sub = cand if len(members) == 1 else cand[_in_cone(gx, gy, gz, gd, pc - lpos, pr)]
            if sub.size == 0:
                continue
            tk = _intersect(prim, L, rx[sub], ry[sub], rz[sub], 1e-6)
            blocked[sub[tk < _F32(1.0 - _SHADOW_EPS)]] = True
    visible[idx[blocked]] = 0.0
    return visible


def _in_cone(
    rx: np.ndarray, ry: np.ndarray, rz: np.ndarray, rd: np.ndarray, w: np.ndarray, radius: float
) -> np.ndarray:
    """Rays (from the light, lengths ``rd``) that may meet the sphere at offset ``w``, ``radius``."""
    dw = float(np.linalg.norm(w))
    cos_cone = math.sqrt(max(0.0, 1.0 - (radius / dw) ** 2))
    proj = rx * _F32(w[0]) + ry * _F32(w[1]) + rz * _F32(w[2])
    return (proj > rd * _F32(cos_cone * dw)) & (rd > _F32(dw - radius))


def _occluder_groups(
    objects: Sequence[Primitive], lpos: np.ndarray
) -> list[tuple[tuple[np.ndarray, float], list[tuple[Primitive, tuple[np.ndarray, float]]]]]:
    """Consecutive primitives (the parts of one piece) merged under one bounding sphere of at most
    1.6 m, so the cone test runs on all lit pixels once per piece, not once per part. Primitives
    whose bound holds the light (a lamp globe around it) cannot cast shadows and are left out."""
    groups: list[tuple[tuple[np.ndarray, float], list[tuple[Primitive, tuple[np.ndarray, float]]]]] = []
    for prim in objects:
        c2, r2 = _bounding_sphere(prim)
        if float(np.linalg.norm(c2 - lpos)) <= r2:
            continue
        if groups:
            (c1, r1), members = groups[-1]
            d = float(np.linalg.norm(c2 - c1))
            if d + r2 <= r1:
                merged = (c1, r1)
            elif d + r1 <= r2:
                merged = (c2, r2)
            else:
                r = 0.5 * (d + r1 + r2)
                merged = (c1 + (c2 - c1) * ((r - r1) / d), r)
            if merged[1] <= 1.6 and float(np.linalg.norm(merged[0] - lpos)) > merged[1]:
                groups[-1] = (merged, [*members, (prim, (c2, r2))])
                continue
        groups.append(((c2, r2), [(prim, (c2, r2))]))
    return groups


def _camera_effects(scene: Scene, rgb: np.ndarray, k: tuple[float, float, float, float]) -> np.ndarray:
    """Vignetting, exposure, lens blur, sensor noise and 8-bit quantisation of linear RGB."""
    height, width = rgb.shape[:2]
    gain = scene.exposure
    if gain is None:  # auto exposure, like a phone camera
        gain = min(max(scene.exposure_target / max(float(rgb.mean(dtype=np.float64)), 1e-3), 0.5), 3.0)
    gain *= 255.0
    if scene.vignette > 0:
        fx, fy, cx, cy = k
        xs = ((np.arange(width, dtype=_F32) - _F32(cx)) / _F32(fx)) ** 2
        ys = ((np.arange(height, dtype=_F32) - _F32(cy)) / _F32(fy)) ** 2
        rgb *= (_F32(gain) - _F32(gain * scene.vignette) * (ys[:, None] + xs[None, :]))[:, :, None]
    else:
        rgb *= _F32(gain)
    if scene.blur > 0:  # a [1 2 1] / 4 kernel in both directions, blended in by ``blur``
        b = rgb.copy()
        b[:, 1:-1] += b[:, 1:-1]
        b[:, 1:-1] += rgb[:, :-2]
        b[:, 1:-1] += rgb[:, 2:]
        b[:, 1:-1] *= _F32(0.25)
        c = b.copy()
        c[1:-1] += c[1:-1]
        c[1:-1] += b[:-2]
        c[1:-1] += b[2:]
        c[1:-1] *= _F32(0.25)
        c -= rgb
        c *= _F32(scene.blur)
        rgb += c
    if scene.noise_sigma > 0:
        rng = np.random.default_rng(scene.noise_seed)
        noise = np.take(
            _GAUSS_LUT * _F32(scene.noise_sigma * 255.0), np.frombuffer(rng.bytes(rgb.size), dtype=np.uint8)
        )
        rgb += noise.reshape(rgb.shape)
    rgb += _F32(0.5)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Random scenes: palettes, furniture with class-typical sizes, layout, light, camera
# --------------------------------------------------------------------------------------------


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


# A furniture part in the piece's local frame (x right, y front, z up; origin on the floor).
_Part = tuple


def _table_parts(
    rng: np.random.Generator, mats: dict[str, Material]
) -> tuple[list[_Part], float, float, float]:
    """Dining table ~0.75 m high (sometimes a ~0.45 m coffee table or a round pedestal table)."""
    m = mats["table"]
    r = rng.random()
    if r < 0.25:  # round pedestal table
        radius, height = rng.uniform(0.4, 0.6), rng.uniform(0.72, 0.78)
        top = rng.uniform(0.03, 0.05)
        parts = [
            ("cyl", 0.0, 0.0, height - top, height, radius, TABLE, m),
            ("cyl", 0.0, 0.0, 0.02, height - top, rng.uniform(0.04, 0.07), TABLE, m),
            ("cyl", 0.0, 0.0, 0.0, 0.02, rng.uniform(0.2, 0.3), TABLE, m),
        ]
        return parts, radius, radius, height
    if r < 0.45:  # coffee table
        length, depth, height = rng.uniform(0.8, 1.3), rng.uniform(0.45, 0.7), rng.uniform(0.4, 0.48)
    else:
        length, depth, height = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.72, 0.78)
    top, leg, inset = rng.uniform(0.03, 0.05), rng.uniform(0.04, 0.07), rng.uniform(0.02, 0.08)
    parts = [("box", 0.0, 0.0, height - top / 2, length, depth, top, TABLE, m)]
    lx, ly = length / 2 - inset - leg / 2, depth / 2 - inset - leg / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(("box", sx * lx, sy * ly, (height - top) / 2, leg, leg, height - top, TABLE, m))
    return parts, length / 2, depth / 2, height


def _cabinet_parts(
    rng: np.random.Generator, mats: dict[str, Material]
) -> tuple[list[_Part], float, float, float]:
    """Sideboard (0.6-0.9 m), dresser (0.9-1.3 m) or wardrobe / bookcase (1.6-2.1 m)."""
    kind = rng.choice(3, p=[0.4, 0.3, 0.3])
    height = [rng.uniform(0.6, 0.9), rng.uniform(0.9, 1.3), rng.uniform(1.6, 2.1)][kind]
    width = rng.uniform(0.4, 1.6) if kind < 2 else rng.uniform(0.8, 1.6)
    depth = rng.uniform(0.35, 0.6)
    return (
        [("box", 0.0, 0.0, height / 2, width, depth, height, CABINET, mats["cabinet"])],
        width / 2,
        depth / 2,
        height,
    )


def _sofa_parts(
    rng: np.random.Generator, mats: dict[str, Material]
) -> tuple[list[_Part], float, float, float]:
    """Sofa (1.6-2.4 m wide) or armchair (0.8-1.0 m): seat ~0.45 m, back ~0.85 m, arms ~0.62 m."""
    m = mats["sofa"]
    width = rng.uniform(0.8, 1.0) if rng.random() < 0.3 else rng.uniform(1.6, 2.4)
    depth, seat = rng.uniform(0.8, 0.98), rng.uniform(0.4, 0.48)
    back_h, back_t = rng.uniform(0.75, 0.95), rng.uniform(0.15, 0.25)
    arm_h, arm_w = rng.uniform(0.55, 0.7), rng.uniform(0.1, 0.25)
    parts = [
        ("box", 0.0, back_t / 2, seat / 2, width - 2 * arm_w, depth - back_t, seat, SOFA, m),
        ("box", 0.0, -depth / 2 + back_t / 2, back_h / 2, width, back_t, back_h, SOFA, m),
    ]
    for sx in (-1, 1):
        parts.append(
            (
                "box",
                sx * (width / 2 - arm_w / 2),
                back_t / 2,
                arm_h / 2,
                arm_w,
                depth - back_t,
                arm_h,
                SOFA,
                m,
            )
        )
    return parts, width / 2, depth / 2, back_h


def _lamp_parts(
    rng: np.random.Generator, mats: dict[str, Material], base_z: float = 0.0, table: bool = False
) -> tuple[list[_Part], float, float, float]:
    """Floor lamp (shade at 1.3-1.8 m) or table lamp (0.3-0.6 m tall) standing at ``base_z``."""
    metal, shade = mats["metal"], mats["shade"]
    if table:
        base_r, pole_r, pole_h = rng.uniform(0.06, 0.09), 0.01, rng.uniform(0.22, 0.38)
        shade_r, shade_h = rng.uniform(0.1, 0.16), rng.uniform(0.15, 0.22)
    else:
        base_r, pole_r, pole_h = rng.uniform(0.12, 0.18), rng.uniform(0.01, 0.018), rng.uniform(1.2, 1.55)
        shade_r, shade_h = rng.uniform(0.14, 0.25), rng.uniform(0.2, 0.35)
    z = base_z
    parts = [
        ("cyl", 0.0, 0.0, z, z + 0.03, base_r, LAMP, metal),
        ("cyl", 0.0, 0.0, z + 0.03, z + pole_h, pole_r, LAMP, metal),
    ]
    if rng.random() < 0.35:  # globe shade
        r = shade_r * 0.85
        parts.append(("sph", 0.0, 0.0, z + pole_h + r * 0.8, r, LAMP, shade))
        top = z + pole_h + 1.8 * r
    else:
        parts.append(
            ("cyl", 0.0, 0.0, z + pole_h - 0.6 * shade_h, z + pole_h + 0.4 * shade_h, shade_r, LAMP, shade)
        )
        top = z + pole_h + 0.4 * shade_h
    radius = max(base_r, shade_r)
    return parts, radius, radius, top


def _place(parts: list[_Part], x: float, y: float, yaw: float) -> list[Primitive]:
    """Move a piece's local parts to world position (x, y) rotated by ``yaw`` (CCW)."""
    c, s = math.cos(yaw), math.sin(yaw)
    out: list[Primitive] = []
    for part in parts:
        kind, lx, ly = part[0], part[1], part[2]
        wx, wy = x + c * lx - s * ly, y + s * lx + c * ly
        if kind == "box":
            _, _, _, z, sx, sy, sz, label, m = part
            out.append(Box((wx, wy, z), (sx, sy, sz), label, yaw, m))
        elif kind == "cyl":
            _, _, _, z0, z1, r, label, m = part
            out.append(Cylinder(wx, wy, z0, z1, r, label, m))
        else:
            _, _, _, z, r, label, m = part
            out.append(Sphere((wx, wy, z), r, label, m))
    return out


_WALL_YAW = {WALL_X0: -math.pi / 2, WALL_X1: math.pi / 2, WALL_Y0: 0.0, WALL_Y1: math.pi}


def _footprint(x: float, y: float, ex: float, ey: float, yaw: float) -> tuple[float, float, float, float]:
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx, hy = c * ex + s * ey, s * ex + c * ey
    return (x - hx, y - hy, x + hx, y + hy)


def _overlaps(a: Sequence[float], b: Sequence[float], margin: float) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


class _Layout:
    """Rejection-sampling floor plan: furniture footprints never overlap, keep doors clear and
    keep against-the-wall pieces from covering windows / pictures lower than their top."""

    def __init__(self, rng: np.random.Generator, room: tuple[float, float, float]) -> None:
        self.rng = rng
        self.room = room
        self.wall_len = {WALL_X0: room[1], WALL_X1: room[1], WALL_Y0: room[0], WALL_Y1: room[0]}
        self.decals: list[Decal] = []
        self.footprints: list[tuple[tuple[float, float, float, float], float]] = []  # (aabb, top height)
        self.reserved: list[tuple[float, float, float, float]] = []  # door swing areas
        self.tops: list[
            tuple[float, float, float, float]
        ] = []  # (x, y, height, radius) surfaces for table lamps
        self.objects: list[Primitive] = []

    def wall_point(self, wall: int, u: float, inset: float) -> tuple[float, float]:
        w, d, _ = self.room
        return {
            WALL_X0: (inset, u),
            WALL_X1: (w - inset, u),
            WALL_Y0: (u, inset),
            WALL_Y1: (u, d - inset),
        }[wall]

    def add_decal(
        self, label: int, width: float, v0: float, v1: float, material: Material, tries: int = 25
    ) -> bool:
        for _ in range(tries):
            wall = int(self.rng.integers(4))
            length = self.wall_len[wall]
            if length < width + 0.4:
                continue
            u0 = self.rng.uniform(0.15, length - width - 0.15)
            cand = Decal(wall, u0, u0 + width, v0, v1, label, material)
            if any(
                d.surface == wall
                and d.u0 < cand.u1 + 0.15
                and cand.u0 < d.u1 + 0.15
                and d.v0 < v1 + 0.1
                and v0 < d.v1 + 0.1
                for d in self.decals
            ):
                continue
            self.decals.append(cand)
            if label == DOOR:
                a = self.wall_point(wall, u0 - 0.1, 0.0)
                b = self.wall_point(wall, u0 + width + 0.1, 0.95)
                self.reserved.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
            return True
        return False

    def free(self, box: tuple[float, float, float, float], margin: float = 0.15) -> bool:
        w, d, _ = self.room
        if box[0] < -1e-6 or box[1] < -1e-6 or box[2] > w + 1e-6 or box[3] > d + 1e-6:
            return False
        if any(_overlaps(box, f, margin) for f, _ in self.footprints):
            return False
        return not any(_overlaps(box, r, 0.0) for r in self.reserved)

    def commit(
        self,
        parts: list[_Part],
        x: float,
        y: float,
        yaw: float,
        box: tuple[float, float, float, float],
        top: float,
    ) -> None:
        self.objects.extend(_place(parts, x, y, yaw))
        self.footprints.append((box, top))

    def place_against_wall(self, piece: tuple[list[_Part], float, float, float], tries: int = 20) -> bool:
        parts, ex, ey, top = piece
        for _ in range(tries):
            wall = int(self.rng.integers(4))
            length = self.wall_len[wall]
            if length < 2 * ex + 0.1:
                continue
            u = self.rng.uniform(ex + 0.05, length - ex - 0.05)
            gap = self.rng.uniform(0.0, 0.05)
            if any(
                d.surface == wall and d.v0 < top + 0.05 and d.u0 < u + ex and u - ex < d.u1
                for d in self.decals
            ):
                continue
            x, y = self.wall_point(wall, u, ey + gap)
            yaw = _WALL_YAW[wall]
            box = _footprint(x, y, ex, ey, yaw)
            if self.free(box):
                self.commit(parts, x, y, yaw, box, top)
                return True
        return False

    def place_free(
        self, piece: tuple[list[_Part], float, float, float], tries: int = 20, corner: bool = False
    ) -> tuple[float, float] | None:
        parts, ex, ey, top = piece
        w, d, _ = self.room
        rng = self.rng
        for _ in range(tries):
            if rng.random() < 0.7:
                yaw = float(rng.integers(4)) * math.pi / 2 + rng.normal(0.0, 0.08)
            else:
                yaw = rng.uniform(0, 2 * math.pi)
            bx = _footprint(0.0, 0.0, ex, ey, yaw)
            hx, hy = bx[2], bx[3]
            if w < 2 * hx + 0.2 or d < 2 * hy + 0.2:
                continue
            if corner:
                x = hx + 0.1 if rng.random() < 0.5 else w - hx - 0.1
                y = hy + 0.1 if rng.random() < 0.5 else d - hy - 0.1
            else:
                x, y = rng.uniform(hx + 0.1, w - hx - 0.1), rng.uniform(hy + 0.1, d - hy - 0.1)
            box = _footprint(x, y, ex, ey, yaw)
            if self.free(box):
                self.commit(parts, x, y, yaw, box, top)
                return (x, y)
        return None


def random_scene(seed: int) -> Scene:
    """A random furnished room, a pure function of ``seed`` (see docs/data.md for the ranges)."""
    rng = np.random.default_rng(seed)
    room = (float(rng.uniform(3.0, 8.0)), float(rng.uniform(3.0, 10.0)), float(rng.uniform(2.4, 3.5)))
    width, depth, height = room
    mats = _scene_materials(rng)
    lay = _Layout(rng, room)

    # ---- flat things on the walls: doors (~2.05 x 0.9 m), windows, pictures
    for _ in range(int(rng.choice(3, p=[0.12, 0.68, 0.2]))):
        lay.add_decal(
            DOOR, rng.uniform(0.8, 1.0), 0.0, min(rng.uniform(2.0, 2.1), height - 0.15), mats["door"]
        )
    for _ in range(int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15]))):
        sill = rng.uniform(0.7, 1.0)
        top = min(sill + rng.uniform(0.8, 1.5), height - 0.2)
        lay.add_decal(
            WINDOW, rng.uniform(0.6, 1.8), sill, top, _window_material(rng, mats["window_frame"].colors[0])
        )
    wood_color = mats["table"].colors[0]
    for _ in range(int(rng.choice(5, p=[0.15, 0.3, 0.3, 0.15, 0.1]))):
        pw, ph = rng.uniform(0.3, 1.2), rng.uniform(0.25, 0.9)
        centre = min(rng.uniform(1.3, 1.8), height - 0.15 - ph / 2)
        lay.add_decal(PICTURE, pw, centre - ph / 2, centre + ph / 2, _picture_material(rng, wood_color))
    if mats["accent"] is not mats["wall"]:
        accent_wall = int(rng.integers(4))
    else:
        accent_wall = -1

    # ---- furniture, big pieces first
    for _ in range(int(rng.choice(3, p=[0.2, 0.5, 0.3]))):
        piece = _sofa_parts(rng, mats)
        if rng.random() < 0.65:
            lay.place_against_wall(piece)
        else:
            lay.place_free(piece)
    n_cab = int(rng.integers(1, 5)) + int(width * depth > 20) + int(width * depth > 40)
    for _ in range(n_cab):
        piece = _cabinet_parts(rng, mats)
        if (lay.place_against_wall(piece) or lay.place_free(piece)) and piece[3] < 1.3:
            box = lay.footprints[-1][0]
            lay.tops.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, piece[3], min(piece[1], piece[2])))
    for _ in range(int(rng.choice(3, p=[0.15, 0.6, 0.25])) + int(width * depth > 25)):
        piece = _table_parts(rng, mats)
        pos = lay.place_against_wall(piece) if rng.random() < 0.2 else lay.place_free(piece)
        if pos:
            box = lay.footprints[-1][0]
            lay.tops.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, piece[3], min(piece[1], piece[2])))
    for _ in range(int(rng.choice(3, p=[0.4, 0.45, 0.15]))):
        lay.place_free(_lamp_parts(rng, mats), corner=rng.random() < 0.5)
    for x, y, top, half in lay.tops:
        if rng.random() < 0.3 and half > 0.15:
            ox, oy = rng.uniform(-0.3, 0.3) * half, rng.uniform(-0.3, 0.3) * half
            lay.objects.extend(_place(_lamp_parts(rng, mats, base_z=top, table=True)[0], x + ox, y + oy, 0.0))

    # ---- ceiling light: a pendant globe (the point light at its centre) or a flush disc
    lx, ly = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * depth
    keep_out: list[tuple[float, float, float, float]] = []
    if rng.random() < 0.5:
        r = rng.uniform(0.12, 0.22)
        lz = height - rng.uniform(0.4, 0.85)
        lay.objects.append(Sphere((lx, ly, lz), r, LAMP, mats["shade"]))
        lay.objects.append(Cylinder(lx, ly, lz + 0.9 * r, height, 0.006, LAMP, mats["metal"]))
        keep_out.append((lx - r - 0.3, ly - r - 0.3, lx + r + 0.3, ly + r + 0.3))
    else:
        r = rng.uniform(0.12, 0.3)
        lz = height - 0.08
        disc_mat = Material("emissive", (_hsv(0.1, rng.uniform(0, 0.15), rng.uniform(1.0, 1.2)),))
        lay.decals.append(Decal(CEILING_SURFACE, lx - r, lx + r, ly - r, ly + r, LAMP, disc_mat, disc=True))
    if rng.random() < 0.3:  # a rug: floor class, different look
        rw, rd = rng.uniform(1.2, min(2.5, width - 0.4)), rng.uniform(1.2, min(3.0, depth - 0.4))
        rx, ry = rng.uniform(0.2, width - rw - 0.2), rng.uniform(0.2, depth - rd - 0.2)
        rug = Material("carpet", (_fabric_color(rng),), (), int(rng.integers(1 << 30)))
        lay.decals.append(Decal(FLOOR_SURFACE, rx, rx + rw, ry, ry + rd, FLOOR, rug))

    camera = _random_camera(rng, room, [f for f, _ in lay.footprints] + keep_out, lay.footprints)
    warmth = rng.uniform(-1, 1)
    tint = (1.0 + 0.12 * warmth, 1.0, 1.0 - 0.2 * warmth)
    intensity = rng.uniform(0.55, 1.0)
    ambient = rng.uniform(0.18, 0.4)
    surfaces = [mats["wall"]] * 4 + [mats["floor"], mats["ceiling"]]
    if accent_wall >= 0:
        surfaces[accent_wall] = mats["accent"]
    return Scene(
        room=room,
        camera=camera,
        light=(float(lx), float(ly), float(lz)),
        light_color=tuple(intensity * c for c in tint),  # type: ignore[arg-type]
        ambient=tuple(ambient * (0.9 + 0.1 * c) for c in mats["wall"].colors[0]),  # type: ignore[arg-type]
        surfaces=tuple(surfaces),
        objects=tuple(lay.objects),
        decals=tuple(lay.decals),
        falloff=float(rng.uniform(2.5, 4.5)),
        exposure=None,
        exposure_target=float(rng.uniform(0.36, 0.5)),
        noise_sigma=float(rng.uniform(0.004, 0.02)),
        blur=float(rng.uniform(0.0, 0.7)),
        vignette=float(rng.uniform(0.0, 0.25)),
        noise_seed=int(rng.integers(1 << 62)),
    )


def _random_camera(
    rng: np.random.Generator,
    room: tuple[float, float, float],
    obstacles: list[tuple[float, float, float, float]],
    footprints: list[tuple[tuple[float, float, float, float], float]],
) -> Camera:
    """Camera 1.0-1.8 m high, pitch in +-15 deg, >= 0.45 m from all furniture, looking across the
    room (free view to the wall, no tall piece within 1.2 m in front of the lens). Like a person
    taking a photo, it usually aims roughly at a piece of furniture 1.5-6 m away (yaw jitter ~15
    deg), otherwise at a random direction."""
    width, depth, _ = room
    need = min(2.0, 0.55 * max(width, depth))
    targets = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 0.75 * top) for b, top in footprints]
    best: tuple[float, Camera] | None = None
    for _ in range(200):
        x, y, z = rng.uniform(0.3, width - 0.3), rng.uniform(0.3, depth - 0.3), rng.uniform(1.0, 1.8)
        aim = targets[int(rng.integers(len(targets)))] if targets and rng.random() < 0.8 else None
        if aim is not None:
            dist = math.hypot(aim[0] - x, aim[1] - y)
            yaw = math.atan2(aim[0] - x, aim[1] - y) + rng.normal(0.0, 0.25)
            pitch = math.atan2(aim[2] - z, max(dist, 1e-3)) + 0.5 * math.radians(rng.uniform(-15.0, 15.0))
            pitch = min(max(pitch, math.radians(-15.0)), math.radians(15.0))
        else:
            dist = math.inf
            yaw = rng.uniform(0, 2 * math.pi)
            pitch = math.radians(rng.uniform(-15.0, 15.0))
        if any(b[0] - 0.45 < x < b[2] + 0.45 and b[1] - 0.45 < y < b[3] + 0.45 for b in obstacles):
            continue
        fx, fy = math.sin(yaw), math.cos(yaw)
        tw = min(
            (width - x) / fx if fx > 1e-9 else -x / fx if fx < -1e-9 else math.inf,
            (depth - y) / fy if fy > 1e-9 else -y / fy if fy < -1e-9 else math.inf,
        )
        tb = min((_ray_aabb_2d(x, y, fx, fy, b) for b, top in footprints if top > z - 0.4), default=math.inf)
        score = min(tw / need, tb / 1.2, dist / 1.5, 1.0 if dist <= 6.0 else 6.0 / dist)
        cam = Camera((float(x), float(y), float(z)), float(yaw % (2 * math.pi)), float(pitch))
        if score >= 1.0:
            return cam
        if best is None or score > best[0]:
            best = (score, cam)
    if best is None:  # every sample inside furniture: does not happen with the layout margins
        return Camera((width / 2, depth / 2, 1.4), 0.0, 0.0)
    return best[1]


def _ray_aabb_2d(x: float, y: float, fx: float, fy: float, b: Sequence[float]) -> float:
    tn, tf = -math.inf, math.inf
    for o, d, lo, hi in ((x, fx, b[0], b[2]), (y, fy, b[1], b[3])):
        if abs(d) < 1e-12:
            if not lo <= o <= hi:
                return math.inf
            continue
        t1, t2 = (lo - o) / d, (hi - o) / d
        tn, tf = max(tn, min(t1, t2)), min(tf, max(t1, t2))
    return tn if tn <= tf and tn > 0 else math.inf


def render_scene(seed: int, height: int = 240, width: int = 320) -> SyntheticSample:
    """Render the random scene of ``seed`` (bit-identical for the same seed and size)."""
    return render(random_scene(seed), height, width, seed=seed)


# --------------------------------------------------------------------------------------------
# Dataset writer (cached) and benchmark
# --------------------------------------------------------------------------------------------

MANIFEST_NAME = "synthetic.json"
_SAMPLE_DIRS = ("rgb", "depth", "semantic", "normals")


def image_seed(seed: int, index: int) -> int:
    """Seed of image ``index`` of a dataset made with ``seed``: independent of ``num_images``, so a
    bigger dataset extends a smaller one with the same images."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def _split_ids(ids: list[str], fractions: Sequence[float]) -> dict[str, list[str]]:
    names = ("train", "val", "test")
    total = float(sum(fractions))
    n = len(ids)
    counts = [0, 0, 0]
    for k in (1, 2):
        if fractions[k] > 0:
            counts[k] = max(1, round(n * fractions[k] / total)) if n >= 3 else 0
    counts[0] = n - counts[1] - counts[2]
    out, start = {}, 0
    for name, count in zip(names, counts):
        if count > 0:
            out[name] = ids[start : start + count]
        start += count
    return out


def _manifest(
    num_images: int, height: int, width: int, seed: int, splits: Sequence[float]
) -> dict[str, object]:
    return {
        "generator": "densemtl.data.synthetic",
        "version": GENERATOR_VERSION,
        "num_images": int(num_images),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
        "splits": [float(f) for f in splits],
    }


def _count_files(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".png"))
    except FileNotFoundError:
        return 0


def _is_complete(root: Path, params: dict[str, object]) -> bool:
    """Same generation parameters recorded as complete, metadata present, every sample file there."""
    try:
        recorded = json.loads((root / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if not recorded.get("complete") or {k: recorded.get(k) for k in params} != params:
        return False
    if not (root / "classes.json").is_file() or not (root / "splits").is_dir():
        return False
    return all(_count_files(root / d) >= int(params["num_images"]) for d in _SAMPLE_DIRS)  # type: ignore[call-overload]


def _render_and_write(job: tuple[str, int, int, int, int]) -> int:
    """Worker: render image ``index`` and write it; returns the index (arrays never cross processes)."""
    from densemtl.data.datasets.folder import write_sample

    root, index, seed, height, width = job
    s = render_scene(image_seed(seed, index), height, width)
    write_sample(root, f"{index:06d}", rgb=s.rgb, depth=s.depth, semantic=s.semantic, normals=s.normals)
    return index


def _render_only(job: tuple[int, int, int]) -> int:
    seed, height, width = job
    return int(render_scene(seed, height, width).semantic[0, 0])


def _pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker pool; ``fork`` where it is safe and cheap (Linux: no re-import of torch per worker)."""
    method = "fork" if sys.platform.startswith("linux") else None
    return multiprocessing.get_context(method).Pool(workers)


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
            _render_into(root, params, workers, progress)
    return root


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Inter-process lock on a file beside ``root`` (POSIX ``flock``; no lock elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.synthetic.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _render_into(root: Path, params: dict[str, Any], workers: int, progress: bool) -> None:
    from densemtl.data.datasets.folder import write_metadata
    from densemtl.errors import DataError

    num_images, height, width, seed = params["num_images"], params["height"], params["width"], params["seed"]
    manifest = root / MANIFEST_NAME
    if manifest.exists():  # our own dataset with other parameters (or unfinished): start afresh
        for name in (*_SAMPLE_DIRS, "splits"):
            _remove_tree(root / name)
    elif root.exists() and any(root.iterdir()):
        raise DataError(
            root,
            f"folder is not empty and holds no {MANIFEST_NAME}; refusing to write synthetic data into it",
        )
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root, {**params, "complete": False})  # marks the folder ours, even if interrupted

    from tqdm import tqdm

    jobs = [(str(root), i, int(seed), int(height), int(width)) for i in range(num_images)]
    with tqdm(
        total=num_images,
        desc=f"rendering synthetic scenes {height}x{width}",
        unit="img",
        disable=not progress,
    ) as bar:
        if workers > 1 and num_images > 1:
            with _pool(min(workers, num_images)) as pool:
                for _ in pool.imap_unordered(_render_and_write, jobs, chunksize=4):
                    bar.update(1)
        else:
            for job in jobs:
                _render_and_write(job)
                bar.update(1)

    fx, fy, cx, cy = intrinsics_for(height, width)
    ids = [f"{i:06d}" for i in range(num_images)]
    write_metadata(
        root,
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
        intrinsics={"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        splits=_split_ids(ids, params["splits"]),
    )
    _write_manifest(root, {**params, "complete": True, "classes": list(CLASS_NAMES)})  # last: all is there


def _write_manifest(root: Path, content: dict[str, object]) -> None:
    tmp = root / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, root / MANIFEST_NAME)


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)


def benchmark_render(height: int = 240, width: int = 320, num_images: int = 40, workers: int = 2) -> float:
    """Rendering throughput in images/s (scene generation + ray casting, no disk writes).

    With ``workers > 1`` the pool is started and warmed up before the clock starts, so the
    number is the steady-state rate :func:`render_dataset` can reach before PNG encoding.
    """
    jobs = [(image_seed(12345, i), height, width) for i in range(num_images)]
    if workers <= 1:
        _render_only(jobs[0])
        start = time.perf_counter()
        for job in jobs:
            _render_only(job)
        return num_images / (time.perf_counter() - start)
    with _pool(workers) as pool:
        pool.map(_render_only, jobs[:workers], chunksize=1)
        start = time.perf_counter()
        pool.map(_render_only, jobs, chunksize=2)
        return num_images / (time.perf_counter() - start)
