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
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
_SHADOW_EPS = 2e-3  # relative: an occluder must be hit before 99.8 % of the light -> point path


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
    ``wood``, ``fabric``, ``cabinet``, ``door``, ``window``, ``picture``, ``emissive``.
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


def _isect_box(b: Box, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float) -> np.ndarray:
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


def _intersect(p: Primitive, o: Sequence[float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, tmin: float) -> np.ndarray:
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
    return np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def _bounding_sphere(p: Primitive) -> tuple[np.ndarray, float]:
    if isinstance(p, Box):
        return np.array(p.center, dtype=float), 0.5 * math.sqrt(sum(s * s for s in p.size))
    if isinstance(p, Cylinder):
        h = 0.5 * (p.z1 - p.z0)
        return np.array([p.x, p.y, p.z0 + h]), math.sqrt(p.radius**2 + h * h)
    return np.array(p.center, dtype=float), p.radius


def _screen_rect(
    p: Primitive, origin: np.ndarray, rot: np.ndarray, k: tuple[float, float, float, float], height: int, width: int
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
# Procedural textures: pure functions of coordinates (metres) and material parameters.
# --------------------------------------------------------------------------------------------


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell (uint32 arithmetic)."""
    h = i.astype(np.uint32) * np.uint32(0x8DA6B343) ^ j.astype(np.uint32) * np.uint32(0xD8163841)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


def _waves(seed: int, scale: float, *coords: np.ndarray, n: int = 3) -> np.ndarray:
    """Smooth noise in [-1, 1]: a sum of ``n`` random plane waves of wavelength ~``scale`` metres."""
    rng = np.random.default_rng(seed)
    out = None
    for _ in range(n):
        freq = rng.normal(size=len(coords))
        freq *= 2 * math.pi / (scale * (np.linalg.norm(freq) + 1e-9)) * rng.uniform(0.6, 1.6)
        phase = rng.uniform(0, 2 * math.pi)
        arg = phase + sum(float(f) * c for f, c in zip(freq, coords))
        term = np.sin(arg)
        out = term if out is None else out + term
    return out * _F32(1.0 / n)


def _mix(c0: Color, c1: Color, w: np.ndarray) -> np.ndarray:
    """Per-pixel blend (n, 3) of two colours with weights ``w`` (0 -> c0, 1 -> c1)."""
    a, b = np.asarray(c0, dtype=_F32), np.asarray(c1, dtype=_F32)
    return a + (b - a) * w[:, None].astype(_F32)


def _solid(c: Color, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(c, dtype=_F32), (n, 3)).copy()


def _wood(m: Material, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Wood grain: stripes along ``u`` (the grain), wobbling; ``q`` is the across-grain coordinate."""
    light, dark = m.colors[0], m.colors[1] if len(m.colors) > 1 else tuple(0.6 * c for c in m.colors[0])
    ring = m.params[0] if m.params else 25.0
    wob = 0.35 * np.sin(u * _F32(1.7) + _F32(m.seed % 7)) + 0.12 * np.sin(u * _F32(6.1) + q * _F32(3.0))
    g = np.sin((q + wob * _F32(0.2)) * _F32(ring * 2 * math.pi))
    g2 = np.sin((q * _F32(3.3) + wob * _F32(0.5)) * _F32(ring * 2 * math.pi))
    w = np.clip(0.5 + 0.3 * g + 0.2 * g2, 0, 1)
    return _mix(light, dark, w * _F32(0.7))


def _texture_surface(m: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo (n, 3) of a room surface (walls, floor, ceiling) at surface coordinates (u, v)."""
    n = u.shape[0]
    base = m.colors[0]
    kind = m.kind
    if kind == "plain":
        return _solid(base, n)
    if kind == "paint":
        return _solid(base, n) * (1 + 0.035 * _waves(m.seed, 1.5, u, v))[:, None]
    if kind == "stripes":
        period = m.params[0]
        duty = m.params[1]
        w = ((u / _F32(period)) % 1.0 < duty).astype(_F32)
        out = _mix(base, m.colors[1], w)
        return out * (1 + 0.03 * _waves(m.seed, 1.0, u, v))[:, None]
    if kind == "pattern":
        k = _F32(2 * math.pi / m.params[0])
        w = (np.sin(u * k) * np.sin(v * k) > 0.35).astype(_F32)
        return _mix(base, m.colors[1], w) * (1 + 0.03 * _waves(m.seed, 1.0, u, v))[:, None]
    if kind == "tiles":
        size, grout = m.params[0], m.params[1]
        su, sv = u / _F32(size), v / _F32(size)
        i, j = np.floor(su), np.floor(sv)
        fu, fv = su - i, sv - j
        edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) * _F32(size)
        h = _hash(i.astype(np.int64), j.astype(np.int64), m.seed)
        if len(m.colors) > 2 and m.params[2] > 0.5:  # checkerboard
            w = ((i + j) % 2).astype(_F32)
            out = _mix(base, m.colors[2], w)
        else:
            out = _solid(base, n)
        out *= (0.9 + 0.2 * h)[:, None]
        out *= (1 + 0.04 * _waves(m.seed + 1, 0.3, u, v))[:, None]
        g = edge < grout
        out[g] = np.asarray(m.colors[1], dtype=_F32)
        return out
    if kind == "planks":
        width, length, along_u = m.params[0], m.params[1], m.params[2] > 0.5
        a, b = (u, v) if along_u else (v, u)
        row = np.floor(b / _F32(width))
        off = _hash(row.astype(np.int64), row.astype(np.int64) * 0 + 7, m.seed) * _F32(length)
        col = np.floor((a + off) / _F32(length))
        fa = (a + off) / _F32(length) - col
        fb = b / _F32(width) - row
        h = _hash(row.astype(np.int64), col.astype(np.int64), m.seed + 3)
        out = _wood(m, a + h * _F32(5.0), b + h)
        out *= (0.85 + 0.3 * h)[:, None]
        gap = (np.minimum(fb, 1 - fb) * _F32(width) < 0.003) | (np.minimum(fa, 1 - fa) * _F32(length) < 0.003)
        out[gap] *= _F32(0.45)
        return out
    if kind == "carpet":
        h = _hash(np.floor(u * _F32(150)).astype(np.int64), np.floor(v * _F32(150)).astype(np.int64), m.seed)
        return _solid(base, n) * (0.88 + 0.12 * h + 0.06 * _waves(m.seed, 0.8, u, v))[:, None]
    return _solid(base, n)


def _texture_decal(
    d: Decal, s: np.ndarray, t: np.ndarray, mask_only: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo (n, 3) and emissive mask (or None) of a decal at local coordinates (s, t) in metres
    from its lower-left corner (as seen from inside the room)."""
    m = d.material
    n = s.shape[0]
    w, h = d.u1 - d.u0, d.v1 - d.v0
    kind = m.kind
    if kind == "door":
        casing, wood = m.params[0], m.params[1] > 0.5
        panels, knob_left = int(m.params[2]), m.params[3] > 0.5
        out = _wood(m, t, s) if wood else _solid(m.colors[0], n) * (1 + 0.02 * _waves(m.seed, 0.5, s, t))[:, None]
        frame = (s < casing) | (s > w - casing) | (t > h - casing)
        out[frame] = np.asarray(m.colors[2], dtype=_F32)
        # panel outlines: thin darker rectangles on the leaf
        ls, lt = s - _F32(casing + 0.09), t - _F32(0.12)
        pw, ph = w - 2 * casing - 0.18, (h - casing - 0.3) / max(panels, 1)
        rel_t = lt / _F32(ph)
        row = np.floor(rel_t)
        ft = (rel_t - row) * _F32(ph)
        inside = (ls > 0) & (ls < pw) & (row >= 0) & (row < panels)
        line = inside & ((ls < 0.015) | (ls > pw - 0.015) | (ft < 0.015) | (ft > ph - 0.015 - 0.06))
        line &= ~(inside & (ft > ph - 0.06))
        out[line & ~frame] *= _F32(0.72)
        kx = casing + 0.08 if knob_left else w - casing - 0.08
        knob = (s - _F32(kx)) ** 2 + (t - _F32(1.0)) ** 2 < _F32(0.03**2)
        out[knob] = np.asarray(m.colors[3], dtype=_F32)
        return out, None
    if kind == "window":
        frame_w, vbar, hbar_at = m.params[0], m.params[1] > 0.5, m.params[2]
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        if vbar:
            frame |= np.abs(s - _F32(w / 2)) < _F32(frame_w * 0.5)
        if hbar_at > 0:
            frame |= np.abs(t - _F32(h * hbar_at)) < _F32(frame_w * 0.5)
        rel = np.clip(t / _F32(h), 0, 1)
        sky = _mix(m.colors[1], m.colors[2], rel)
        if m.params[3] > 0.5:  # trees / buildings outside up to a wavy horizon
            horizon = _F32(m.params[4] * h) + _F32(0.12 * h) * _waves(m.seed, 0.6, s)
            ground = t < horizon
            shade = 0.75 + 0.25 * _waves(m.seed + 5, 0.15, s, t)
            sky[ground] = (np.asarray(m.colors[3], dtype=_F32) * shade[ground, None]).astype(_F32)
        out = np.where(frame[:, None], np.asarray(m.colors[0], dtype=_F32), sky)
        return out.astype(_F32), ~frame
    if kind == "picture":
        frame_w, mat_w, style = m.params[0], m.params[1], int(m.params[2])
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        inner = frame_w + mat_w
        mat = ~frame & ((s < inner) | (s > w - inner) | (t < inner) | (t > h - inner))
        cw, ch = max(w - 2 * inner, 1e-3), max(h - 2 * inner, 1e-3)
        x, y = (s - _F32(inner)) / _F32(cw), (t - _F32(inner)) / _F32(ch)
        pal = [np.asarray(c, dtype=_F32) for c in m.colors[3:]]
        if style == 0:  # abstract: smooth blend of palette colours
            w1 = 0.5 + 0.5 * _waves(m.seed, 0.6, x, y)
            w2 = 0.5 + 0.5 * _waves(m.seed + 1, 0.35, x, y)
            out = pal[0] + (pal[1] - pal[0]) * w1[:, None]
            out = out + (pal[2] - out) * (w2 * w2)[:, None]
        elif style == 1:  # rectangles on a background
            out = _solid(tuple(pal[0]), n)
            rng = np.random.default_rng(m.seed)
            for i in range(5):
                x0, y0 = rng.uniform(-0.1, 0.8, 2)
                x1, y1 = x0 + rng.uniform(0.15, 0.6), y0 + rng.uniform(0.15, 0.6)
                box = (x > x0) & (x < x1) & (y > y0) & (y < y1)
                out[box] = pal[1 + i % (len(pal) - 1)]
        else:  # landscape: sky gradient over ground with a wavy horizon
            horizon = _F32(0.45) + _F32(0.12) * _waves(m.seed, 0.5, x)
            out = _mix(tuple(pal[0]), tuple(pal[1]), np.clip(y, 0, 1))
            ground = y < horizon
            gw = 0.5 + 0.5 * _waves(m.seed + 2, 0.2, x, y)
            out[ground] = (pal[2] + (pal[3] - pal[2]) * gw[ground, None]).astype(_F32)
        out = out.astype(_F32)
        out[mat] = np.asarray(m.colors[1], dtype=_F32)
        out[frame] = np.asarray(m.colors[0], dtype=_F32)
        return out, None
    if kind == "emissive":
        return _solid(m.colors[0], n), np.ones(n, dtype=bool)
    return _texture_surface(m, s, t), None


def _texture_object(
    m: Material, x: np.ndarray, y: np.ndarray, z: np.ndarray, face: np.ndarray | None, size: Sequence[float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo and emissive mask of a solid at object-local coordinates (centred, metres).

    ``face`` (boxes only): 0..5 = -x, +x, -y, +y (front), -z, +z face that was hit.
    """
    n = x.shape[0]
    kind = m.kind
    if kind == "emissive":
        shade = 1 + 0.04 * _waves(m.seed, 0.3, x, y, z)
        return _solid(m.colors[0], n) * shade[:, None], np.ones(n, dtype=bool)
    if kind == "wood":
        # grain along the longest horizontal axis, rings across the other two coordinates
        if size[0] >= size[1]:
            return _wood(m, x, y * _F32(0.8) + z), None
        return _wood(m, y, x * _F32(0.8) + z), None
    if kind == "fabric":
        h = _hash(np.floor((x + z) * _F32(120)).astype(np.int64), np.floor((y - z) * _F32(120)).astype(np.int64), m.seed)
        shade = 0.9 + 0.1 * h + 0.05 * _waves(m.seed, 0.5, x, y, z)
        return _solid(m.colors[0], n) * shade[:, None], None
    if kind == "cabinet":
        wood = m.params[0] > 0.5
        if wood:
            out = _wood(m, x, y * _F32(0.8) + z) if size[0] >= size[1] else _wood(m, y, x * _F32(0.8) + z)
        else:
            out = _solid(m.colors[0], n) * (1 + 0.02 * _waves(m.seed, 0.5, x, y, z))[:, None]
        if face is not None:
            front = face == 3
            if front.any():
                hw, hh = 0.5 * size[0], 0.5 * size[2]
                xs, zs = x[front], z[front]
                n_cols = max(1, round(size[0] / 0.5))
                n_rows = max(1, int(m.params[1]))
                cx = (xs + _F32(hw)) / _F32(2 * hw / n_cols)
                rz = (zs + _F32(hh - 0.08)) / _F32(max(2 * hh - 0.1, 0.05) / n_rows)
                fx, fz = cx - np.floor(cx), rz - np.floor(rz)
                gap_x = np.minimum(fx, 1 - fx) * _F32(2 * hw / n_cols) < 0.006
                gap_z = np.minimum(fz, 1 - fz) * _F32(max(2 * hh - 0.1, 0.05) / n_rows) < 0.006
                plinth = zs < _F32(-hh + 0.08)
                handle = (np.abs(fx - 0.5) < 0.12 / max(size[0] / n_cols, 0.2)) & (np.abs(fz - 0.82) < 0.03)
                sub = out[front]
                sub[gap_x | gap_z] *= _F32(0.55)
                sub[handle & ~plinth] = np.asarray(m.colors[2], dtype=_F32)
                sub[plinth] *= _F32(0.6)
                out[front] = sub
        return out, None
    if kind == "metal":
        shade = 0.9 + 0.1 * np.sin(z * _F32(40.0))
        return _solid(m.colors[0], n) * shade[:, None], None
    return _solid(m.colors[0], n), None


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_SURFACE_NORMALS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
    dtype=_F32,
)
_SURFACE_LABELS = (WALL, WALL, WALL, WALL, FLOOR, CEILING)


def _surface_uv(surface: int, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
    """World normals (n, 3), object-local coordinates and (boxes) the face index of hits on ``p``."""
    n = px.shape[0]
    normal = np.zeros((n, 3), dtype=_F32)
    if isinstance(p, Box):
        hx, hy, hz = (0.5 * s for s in p.size)
        x, y, z = px - _F32(p.center[0]), py - _F32(p.center[1]), pz - _F32(p.center[2])
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        if p.yaw:
            x, y = _F32(c) * x + _F32(s) * y, _F32(-s) * x + _F32(c) * y
        ax, ay, az = np.abs(x) / _F32(hx), np.abs(y) / _F32(hy), np.abs(z) / _F32(hz)
        is_x = (ax >= ay) & (ax >= az)
        is_y = ~is_x & (ay >= az)
        is_z = ~is_x & ~is_y
        sx, sy, sz = np.sign(x), np.sign(y), np.sign(z)
        face = np.where(is_x, (sx > 0).astype(np.int8), np.where(is_y, 2 + (sy > 0), 4 + (sz > 0))).astype(np.int8)
        lx = np.where(is_x, sx, 0).astype(_F32)
        ly = np.where(is_y, sy, 0).astype(_F32)
        normal[:, 0] = _F32(c) * lx - _F32(s) * ly
        normal[:, 1] = _F32(s) * lx + _F32(c) * ly
        normal[:, 2] = np.where(is_z, sz, 0)
        return normal, (x, y, z), face
    if isinstance(p, Cylinder):
        x, y = px - _F32(p.x), py - _F32(p.y)
        zm, hz = 0.5 * (p.z0 + p.z1), 0.5 * (p.z1 - p.z0)
        z = pz - _F32(zm)
        rho = np.sqrt(x * x + y * y)
        cap = np.abs(z) / _F32(hz) > rho / _F32(p.radius)
        inv = 1.0 / np.maximum(rho, _F32(1e-9))
        normal[:, 0] = np.where(cap, 0, x * inv)
        normal[:, 1] = np.where(cap, 0, y * inv)
        normal[:, 2] = np.where(cap, np.sign(z), 0)
        return normal, (x, y, z), None
    x, y, z = px - _F32(p.center[0]), py - _F32(p.center[1]), pz - _F32(p.center[2])
    inv = _F32(1.0 / p.radius)
    normal[:, 0], normal[:, 1], normal[:, 2] = x * inv, y * inv, z * inv
    return normal, (x, y, z), None


def _size_of(p: Primitive) -> tuple[float, float, float]:
    if isinstance(p, Box):
        return p.size
    if isinstance(p, Cylinder):
        return (2 * p.radius, 2 * p.radius, p.z1 - p.z0)
    return (2 * p.radius,) * 3


@dataclass
class _Rays:
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray


def _camera_rays(rot: np.ndarray, k: tuple[float, float, float, float], height: int, width: int) -> _Rays:
    """World-space ray directions [H, W] x 3 whose camera-frame z component is exactly 1."""
    fx, fy, cx, cy = k
    xs = ((np.arange(width, dtype=np.float64) - cx) / fx)[None, :]
    ys = ((np.arange(height, dtype=np.float64) - cy) / fy)[:, None]
    comps = []
    for axis in range(3):
        d = (xs * rot[axis, 0] + ys * rot[axis, 1] + rot[axis, 2]).astype(_F32)
        d[d == 0] = _F32(1e-12)  # keep slab divisions finite-signed
        comps.append(d)
    return _Rays(*comps)


def _room_exit(
    room: Sequence[float], o: Sequence[float], rays: _Rays
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (t) to the room surface each ray leaves through, and that surface's id."""
    ts = []
    for axis, d in enumerate((rays.dx, rays.dy, rays.dz)):
        bound = np.where(d > 0, _F32(room[axis]), _F32(0.0))
        ts.append((bound - _F32(o[axis])) / d)
    tx, ty, tz = ts
    use_x = (tx <= ty) & (tx <= tz)
    use_y = ~use_x & (ty <= tz)
    sid = np.where(
        use_x,
        np.where(rays.dx > 0, WALL_X1, WALL_X0),
        np.where(use_y, np.where(rays.dy > 0, WALL_Y1, WALL_Y0), np.where(rays.dz > 0, CEILING_SURFACE, FLOOR_SURFACE)),
    ).astype(np.int16)
    t = np.minimum(np.minimum(tx, ty), tz)
    return t, sid


def render(scene: Scene, height: int = 240, width: int = 320, seed: int = 0) -> SyntheticSample:
    """Ray-cast ``scene`` at ``height`` x ``width``: RGB, z-depth, labels and camera-frame normals."""
    k = intrinsics_for(height, width)
    cam = scene.camera
    rot = cam.rotation()
    origin = np.asarray(cam.position, dtype=float)
    o = tuple(float(c) for c in cam.position)
    rays = _camera_rays(rot, k, height, width)

    # ---- primary visibility: room, then every primitive on its screen rectangle
    t, sid = _room_exit(scene.room, o, rays)
    for index, prim in enumerate(scene.objects):
        rect = _screen_rect(prim, origin, rot, k, height, width)
        if rect is None:
            continue
        sl = (slice(rect[0], rect[1]), slice(rect[2], rect[3]))
        tk = _intersect(prim, o, rays.dx[sl], rays.dy[sl], rays.dz[sl], 1e-4)
        closer = tk < t[sl]
        np.copyto(t[sl], tk, where=closer)
        np.copyto(sid[sl], np.int16(_NUM_SURFACES + index), where=closer)

    n = height * width
    tf = t.reshape(n)
    dxf, dyf, dzf = rays.dx.reshape(n), rays.dy.reshape(n), rays.dz.reshape(n)
    px = _F32(o[0]) + tf * dxf
    py = _F32(o[1]) + tf * dyf
    pz = _F32(o[2]) + tf * dzf

    normal = np.empty((n, 3), dtype=_F32)
    albedo = np.empty((n, 3), dtype=_F32)
    label = np.empty(n, dtype=np.uint8)
    emissive = np.zeros(n, dtype=bool)

    sidf = sid.reshape(n)
    order = np.argsort(sidf, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(sidf, minlength=_NUM_SURFACES + len(scene.objects)))])
    decals_by_surface: dict[int, list[Decal]] = {}
    for d in scene.decals:
        decals_by_surface.setdefault(d.surface, []).append(d)

    for group in range(len(bounds) - 1):
        idx = order[bounds[group] : bounds[group + 1]]
        if idx.size == 0:
            continue
        gx, gy, gz = px[idx], py[idx], pz[idx]
        if group < _NUM_SURFACES:
            normal[idx] = _SURFACE_NORMALS[group]
            u, v = _surface_uv(group, gx, gy, gz)
            lab = np.full(idx.size, _SURFACE_LABELS[group], dtype=np.uint8)
            alb = _texture_surface(scene.surfaces[group], u, v)
            emi = np.zeros(idx.size, dtype=bool)
            for d in decals_by_surface.get(group, ()):
                inside = (u >= d.u0) & (u <= d.u1) & (v >= d.v0) & (v <= d.v1)
                if d.disc:
                    cu, cv = 0.5 * (d.u0 + d.u1), 0.5 * (d.v0 + d.v1)
                    ru, rv = 0.5 * (d.u1 - d.u0), 0.5 * (d.v1 - d.v0)
                    inside &= ((u - _F32(cu)) / _F32(ru)) ** 2 + ((v - _F32(cv)) / _F32(rv)) ** 2 <= 1
                sel = np.flatnonzero(inside)
                if sel.size == 0:
                    continue
                s_loc, t_loc = _decal_local(d, u[sel], v[sel])
                a, e = _texture_decal(d, s_loc, t_loc)
                alb[sel] = a
                lab[sel] = d.label
                emi[sel] = e if e is not None else False
            label[idx] = lab
            albedo[idx] = alb
            emissive[idx] = emi
        else:
            prim = scene.objects[group - _NUM_SURFACES]
            nrm, (lx, ly, lz), face = _primitive_normals(prim, gx, gy, gz)
            normal[idx] = nrm
            label[idx] = prim.label
            a, e = _texture_object(prim.material, lx, ly, lz, face, _size_of(prim))
            albedo[idx] = a
            if e is not None:
                emissive[idx] = e

    # ---- orient normals towards the camera (dot(n, ray) < 0); room/closed solids already are
    facing = normal[:, 0] * dxf + normal[:, 1] * dyf + normal[:, 2] * dzf
    normal[facing > 0] *= -1

    # ---- shading: ambient + Lambertian point light with cast shadows
    L = scene.light
    lx, ly, lz = _F32(L[0]) - px, _F32(L[1]) - py, _F32(L[2]) - pz
    dist = np.sqrt(lx * lx + ly * ly + lz * lz)
    ndotl = (normal[:, 0] * lx + normal[:, 1] * ly + normal[:, 2] * lz) / np.maximum(dist, _F32(1e-6))
    lit = (ndotl > 0) & ~emissive
    visible = _shadow_visibility(scene, lit, -lx, -ly, -lz, dist)
    d0 = scene.falloff
    diffuse = np.where(lit, ndotl, 0) * (_F32(d0 * d0) / (_F32(d0 * d0) + dist * dist)) * visible
    light = np.asarray(scene.ambient, dtype=_F32) + diffuse[:, None] * np.asarray(scene.light_color, dtype=_F32)
    rgb = np.where(emissive[:, None], albedo, albedo * light)

    rgb = rgb.reshape(height, width, 3)
    rgb = _camera_effects(scene, rgb, height, width, k)

    normals_cam = (normal @ rot.astype(_F32)).reshape(height, width, 3)
    normals_cam /= np.linalg.norm(normals_cam, axis=-1, keepdims=True)
    return SyntheticSample(
        rgb=rgb,
        depth=t.astype(_F32, copy=False),
        semantic=label.reshape(height, width),
        normals=normals_cam.astype(_F32, copy=False),
        intrinsics=k,
        seed=seed,
    )


def _shadow_visibility(
    scene: Scene, lit: np.ndarray, sx: np.ndarray, sy: np.ndarray, sz: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """1 where the light reaches a lit pixel, 0 in cast shadow.

    Shadow rays start *at the light* (one origin again) towards each hit point, parametrised so
    the hit point is at t = 1; an occluder hit before ``1 - eps`` casts the shadow. Each
    primitive is only tested on pixels inside the cone it subtends from the light.
    """
    n = lit.shape[0]
    visible = np.ones(n, dtype=_F32)
    idx = np.flatnonzero(lit)
    if idx.size == 0 or not scene.objects:
        return visible
    L = scene.light
    lpos = np.asarray(L, dtype=float)
    rx, ry, rz, rd = sx[idx], sy[idx], sz[idx], dist[idx]
    blocked = np.zeros(idx.size, dtype=bool)
    for prim in scene.objects:
        center, radius = _bounding_sphere(prim)
        w = center - lpos
        dw = float(np.linalg.norm(w))
        if dw <= radius:  # the light is inside this primitive's bound (a lamp shade): not an occluder
            continue
        cos_cone = math.sqrt(max(0.0, 1.0 - (radius / dw) ** 2))
        proj = rx * _F32(w[0]) + ry * _F32(w[1]) + rz * _F32(w[2])
        cand = np.flatnonzero((proj > _F32(cos_cone * dw) * rd) & (rd > _F32(dw - radius)) & ~blocked)
        if cand.size == 0:
            continue
        tk = _intersect(prim, L, rx[cand], ry[cand], rz[cand], 1e-6)
        blocked[cand[tk < _F32(1.0 - _SHADOW_EPS)]] = True
    visible[idx[blocked]] = 0.0
    return visible


def _camera_effects(
    scene: Scene, rgb: np.ndarray, height: int, width: int, k: tuple[float, float, float, float]
) -> np.ndarray:
    """Exposure, vignetting, lens blur, sensor noise, 8-bit quantisation."""
    if scene.vignette > 0:
        fx, fy, cx, cy = k
        xs = ((np.arange(width, dtype=_F32) - _F32(cx)) / _F32(fx)) ** 2
        ys = ((np.arange(height, dtype=_F32) - _F32(cy)) / _F32(fy)) ** 2
        rgb = rgb * (1 - _F32(scene.vignette) * (ys[:, None] + xs[None, :]))[:, :, None]
    if scene.exposure is None:
        lum = float(rgb.mean())
        gain = min(max(scene.exposure_target / max(lum, 1e-3), 0.5), 3.0)
    else:
        gain = scene.exposure
    rgb = rgb * _F32(gain)
    if scene.blur > 0:
        a = _F32(scene.blur)
        b = rgb.copy()
        b[:, 1:-1] = 0.25 * rgb[:, :-2] + 0.5 * rgb[:, 1:-1] + 0.25 * rgb[:, 2:]
        c = b.copy()
        c[1:-1] = 0.25 * b[:-2] + 0.5 * b[1:-1] + 0.25 * b[2:]
        rgb = rgb + a * (c - rgb)
    if scene.noise_sigma > 0:
        rng = np.random.default_rng(scene.noise_seed)
        rgb = rgb + rng.standard_normal(rgb.shape, dtype=_F32) * _F32(scene.noise_sigma)
    return np.clip(rgb * _F32(255.0) + _F32(0.5), 0, 255).astype(np.uint8)


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


def _wood_material(rng: np.random.Generator, kind: str = "wood") -> Material:
    light = _hsv(rng.uniform(0.045, 0.115), rng.uniform(0.35, 0.75), rng.uniform(0.28, 0.82))
    dark = tuple(c * rng.uniform(0.5, 0.75) for c in light)
    return Material(kind, (light, dark), (rng.uniform(12.0, 40.0),), int(rng.integers(1 << 30)))  # type: ignore[arg-type]


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
        mats["wall"] = Material("stripes", (wall, other), (rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.7)), seed)
    else:
        other = tuple(c * rng.uniform(0.8, 0.95) for c in wall)
        mats["wall"] = Material("pattern", (wall, other), (rng.uniform(0.08, 0.3),), seed)  # type: ignore[arg-type]
    mats["accent"] = Material("paint", (_paint_color(rng),), (), seed + 1) if rng.random() < 0.25 else mats["wall"]

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
        mats["floor"] = Material(
            "planks", w.colors, (rng.uniform(0.09, 0.2), rng.uniform(0.8, 2.0), float(rng.random() < 0.5), *w.params), seed + 3
        )
        mats["floor"] = Material("planks", w.colors, mats["floor"].params[:3], seed + 3)
    else:
        mats["floor"] = Material("carpet", (_hsv(rng.random(), rng.uniform(0.03, 0.45), rng.uniform(0.2, 0.7)),), (), seed + 4)

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
        (*cab_colors[:2], _metal_color(rng)) if cab_wood else (cab_colors[0], cab_colors[0], _metal_color(rng)),
        (float(cab_wood), float(rng.integers(1, 5)), *(cab_src.params if cab_wood else ())),
        cab_src.seed,
    )
    door_wood = rng.random() < 0.4
    door_src = wood if rng.random() < 0.5 else _wood_material(rng)
    door_color = door_src.colors if door_wood else (_paint_color(rng) if rng.random() < 0.4 else _hsv(0.1, 0.03, 0.9),)
    casing = _hsv(0.1, 0.03, rng.uniform(0.8, 0.95)) if rng.random() < 0.7 else door_src.colors[-1]
    mats["door"] = Material(
        "door",
        (door_color[0], door_color[-1], casing, _metal_color(rng)),
        (rng.uniform(0.04, 0.08), float(door_wood), float(rng.integers(1, 4)), float(rng.random() < 0.5)),
        seed + 6,
    )
    mats["sofa"] = Material("fabric", (_fabric_color(rng),), (), seed + 7)
    mats["shade"] = Material("emissive", (_hsv(rng.uniform(0.08, 0.15), rng.uniform(0.05, 0.4), rng.uniform(0.95, 1.15)),), (), seed + 8)
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
    params = (rng.uniform(0.03, 0.08), float(rng.random() < 0.6), hbar, float(rng.random() < 0.5), rng.uniform(0.2, 0.55))
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


def _table_parts(rng: np.random.Generator, mats: dict[str, Material]) -> tuple[list[_Part], float, float, float]:
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


def _cabinet_parts(rng: np.random.Generator, mats: dict[str, Material]) -> tuple[list[_Part], float, float, float]:
    """Sideboard (0.6-0.9 m), dresser (0.9-1.3 m) or wardrobe / bookcase (1.6-2.1 m)."""
    kind = rng.choice(3, p=[0.4, 0.3, 0.3])
    height = [rng.uniform(0.6, 0.9), rng.uniform(0.9, 1.3), rng.uniform(1.6, 2.1)][kind]
    width = rng.uniform(0.4, 1.6) if kind < 2 else rng.uniform(0.8, 1.6)
    depth = rng.uniform(0.35, 0.6)
    return [("box", 0.0, 0.0, height / 2, width, depth, height, CABINET, mats["cabinet"])], width / 2, depth / 2, height


def _sofa_parts(rng: np.random.Generator, mats: dict[str, Material]) -> tuple[list[_Part], float, float, float]:
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
        parts.append(("box", sx * (width / 2 - arm_w / 2), back_t / 2, arm_h / 2, arm_w, depth - back_t, arm_h, SOFA, m))
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
        parts.append(("cyl", 0.0, 0.0, z + pole_h - 0.6 * shade_h, z + pole_h + 0.4 * shade_h, shade_r, LAMP, shade))
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
        self.tops: list[tuple[float, float, float, float]] = []  # (x, y, height, radius) surfaces for table lamps
        self.objects: list[Primitive] = []

    def wall_point(self, wall: int, u: float, inset: float) -> tuple[float, float]:
        w, d, _ = self.room
        return {
            WALL_X0: (inset, u),
            WALL_X1: (w - inset, u),
            WALL_Y0: (u, inset),
            WALL_Y1: (u, d - inset),
        }[wall]

    def add_decal(self, label: int, width: float, v0: float, v1: float, material: Material, tries: int = 25) -> bool:
        for _ in range(tries):
            wall = int(self.rng.integers(4))
            length = self.wall_len[wall]
            if length < width + 0.4:
                continue
            u0 = self.rng.uniform(0.15, length - width - 0.15)
            cand = Decal(wall, u0, u0 + width, v0, v1, label, material)
            if any(
                d.surface == wall and d.u0 < cand.u1 + 0.15 and cand.u0 < d.u1 + 0.15 and d.v0 < v1 + 0.1 and v0 < d.v1 + 0.1
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

    def commit(self, parts: list[_Part], x: float, y: float, yaw: float, box: tuple[float, float, float, float], top: float) -> None:
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
            if any(d.surface == wall and d.v0 < top + 0.05 and d.u0 < u + ex and u - ex < d.u1 for d in self.decals):
                continue
            x, y = self.wall_point(wall, u, ey + gap)
            yaw = _WALL_YAW[wall]
            box = _footprint(x, y, ex, ey, yaw)
            if self.free(box):
                self.commit(parts, x, y, yaw, box, top)
                return True
        return False

    def place_free(self, piece: tuple[list[_Part], float, float, float], tries: int = 20, corner: bool = False) -> tuple[float, float] | None:
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
        lay.add_decal(DOOR, rng.uniform(0.8, 1.0), 0.0, min(rng.uniform(2.0, 2.1), height - 0.15), mats["door"])
    for _ in range(int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15]))):
        sill = rng.uniform(0.7, 1.0)
        top = min(sill + rng.uniform(0.8, 1.5), height - 0.2)
        lay.add_decal(WINDOW, rng.uniform(0.6, 1.8), sill, top, _window_material(rng, mats["window_frame"].colors[0]))
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
    for _ in range(int(rng.choice(3, p=[0.25, 0.5, 0.25]))):
        piece = _sofa_parts(rng, mats)
        if rng.random() < 0.65:
            lay.place_against_wall(piece)
        else:
            lay.place_free(piece)
    n_cab = int(rng.integers(1, 4)) + int(width * depth > 35)
    for _ in range(n_cab):
        piece = _cabinet_parts(rng, mats)
        if (lay.place_against_wall(piece) or lay.place_free(piece)) and piece[3] < 1.3:
            box = lay.footprints[-1][0]
            lay.tops.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, piece[3], min(piece[1], piece[2])))
    for _ in range(int(rng.choice(3, p=[0.15, 0.6, 0.25])) + int(width * depth > 35)):
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
    """Camera 1.0-1.8 m high, random yaw, pitch in +-15 deg, outside all furniture, looking across
    the room (>= 2 m of free view to the wall, no tall piece right in front of the lens)."""
    width, depth, _ = room
    need = min(2.0, 0.55 * max(width, depth))
    best: tuple[float, Camera] | None = None
    for _ in range(200):
        x, y, z = rng.uniform(0.3, width - 0.3), rng.uniform(0.3, depth - 0.3), rng.uniform(1.0, 1.8)
        yaw = rng.uniform(0, 2 * math.pi)
        pitch = math.radians(rng.uniform(-15.0, 15.0))
        if any(b[0] - 0.3 < x < b[2] + 0.3 and b[1] - 0.3 < y < b[3] + 0.3 for b in obstacles):
            continue
        fx, fy = math.sin(yaw), math.cos(yaw)
        with np.errstate(divide="ignore"):
            tw = min((width - x) / fx if fx > 0 else -x / fx if fx < 0 else math.inf,
                     (depth - y) / fy if fy > 0 else -y / fy if fy < 0 else math.inf)
        tb = math.inf
        for b, top in footprints:
            if top < z - 0.4:
                continue
            t_hit = _ray_aabb_2d(x, y, fx, fy, b)
            tb = min(tb, t_hit)
        score = min(tw / need, tb / 0.8)
        cam = Camera((float(x), float(y), float(z)), float(yaw), float(pitch))
        if score >= 1.0:
            return cam
        if best is None or score > best[0]:
            best = (score, cam)
    if best is None:  # every sample inside furniture: cannot happen with the layout margins
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
