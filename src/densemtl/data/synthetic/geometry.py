"""Ray geometry: analytic ray-primitive intersections, screen-space bounds, room exit, surface
coordinates and normals of hits, and cast-shadow visibility.

``o`` is a 3-tuple of Python floats (one origin for all rays), ``dx, dy, dz`` float32 arrays of
directions; each ``_isect_*`` returns t (float32, inf where missed) with t > tmin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from densemtl.data.synthetic.scene import (
    _F32,
    CEILING,
    CEILING_SURFACE,
    FLOOR,
    FLOOR_SURFACE,
    WALL,
    WALL_X0,
    WALL_X1,
    WALL_Y0,
    WALL_Y1,
    Box,
    Cylinder,
    Decal,
    Primitive,
    Scene,
    Sphere,
)

_SHADOW_EPS = 2e-3  # an occluder must lie before 99.8 % of the light-to-point segment (no self-shadowing)


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


_SURFACE_NORMALS = (
    (1.0, 0.0, 0.0),
    (-1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, -1.0),
)
_SURFACE_LABELS = (WALL, WALL, WALL, WALL, FLOOR, CEILING)


def _decal_hits(d: Decal, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Indices of the surface coordinates (u, v) that decal ``d`` covers: its rectangle, or the
    ellipse inscribed in it when ``d.disc``."""
    inside = (u >= d.u0) & (u <= d.u1) & (v >= d.v0) & (v <= d.v1)
    sel = np.flatnonzero(inside)
    if d.disc and sel.size:
        cu, cv = 0.5 * (d.u0 + d.u1), 0.5 * (d.v0 + d.v1)
        ru, rv = 0.5 * (d.u1 - d.u0), 0.5 * (d.v1 - d.v0)
        du, dv = (u[sel] - _F32(cu)) * _F32(1 / ru), (v[sel] - _F32(cv)) * _F32(1 / rv)
        sel = sel[du * du + dv * dv <= 1]
    return sel


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
