"""Ground-truth scene surface: points sampled from the analytic geometry the renderer ray-casts.

A 3D reconstruction (e.g. TSDF fusion of a trajectory's frames) is scored against these points,
as the ScanNet / Replica reconstruction benchmarks score against their meshes (accuracy:
reconstructed point to nearest GT point; completeness: GT point to nearest reconstructed point).
Every surface of the room is covered: the four walls, floor and ceiling (labels of the decals on
them included: doors, windows, pictures, rugs, ceiling discs) and every face of every primitive.
Points strictly inside another solid (e.g. the parts of a sofa where its arms and seat overlap)
are not on the scene's surface and are left out; faces in contact (a cabinet's bottom on the
floor) are kept.

Density: points lie on a regular grid of cell centres with a pitch of at most ``spacing`` metres
in each surface direction (at least one point per ``spacing**2`` m²); spheres use a Fibonacci
lattice with the same density.
"""

from __future__ import annotations

import math

import numpy as np

from densemtl.data.synthetic.geometry import _SURFACE_LABELS, _SURFACE_NORMALS, _corners, _decal_hits
from densemtl.data.synthetic.scene import (
    CEILING_SURFACE,
    FLOOR_SURFACE,
    WALL_X0,
    WALL_X1,
    WALL_Y0,
    WALL_Y1,
    Box,
    Cylinder,
    Primitive,
    Scene,
)

_INSIDE_EPS = 1e-4  # a point this deep inside another solid is hidden; contact faces are not
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

Surface = tuple[np.ndarray, np.ndarray, np.ndarray]  # points [N, 3], normals [N, 3], labels [N]


def sample_surface(scene: Scene, spacing: float = 0.01) -> Surface:
    """Points (world frame, metres, float32 [N, 3]), unit normals pointing into free space (float32
    [N, 3]) and class ids (uint8 [N], ``CLASS_NAMES`` order) on every surface of ``scene``."""
    from densemtl.errors import ConfigError

    if not spacing > 0:
        raise ConfigError(f"surface spacing must be > 0 metres, got {spacing}")
    parts = [_room_surface(scene, sid, spacing) for sid in range(6)]
    parts += [_primitive_surface(p, spacing) for p in scene.objects]
    owner = np.concatenate([np.full(len(pts), k - 6) for k, (pts, _, _) in enumerate(parts)])
    points = np.concatenate([p for p, _, _ in parts])
    normals = np.concatenate([n for _, n, _ in parts])
    labels = np.concatenate([lab for _, _, lab in parts])
    keep = np.ones(len(points), dtype=bool)
    order = np.argsort(points[:, 0], kind="stable")  # x-sorted: each solid scans only its x slab
    xs = points[order, 0]
    for index, prim in enumerate(scene.objects):
        corners = _corners(prim)
        lo, hi = corners.min(0) + _INSIDE_EPS, corners.max(0) - _INSIDE_EPS
        cand = order[np.searchsorted(xs, lo[0], "right") : np.searchsorted(xs, hi[0], "left")]
        sub = points[cand]
        cand = cand[(sub[:, 1] > lo[1]) & (sub[:, 1] < hi[1]) & (sub[:, 2] > lo[2]) & (sub[:, 2] < hi[2])]
        cand = cand[owner[cand] != index]
        keep[cand[_strictly_inside(prim, points[cand])]] = False
    return points[keep].astype(np.float32), normals[keep].astype(np.float32), labels[keep]


def _grid(extent: float, spacing: float) -> np.ndarray:
    """Cell centres covering ``[0, extent]`` with a pitch of at most ``spacing``."""
    n = max(1, math.ceil(extent / spacing - 1e-9))
    return (np.arange(n) + 0.5) * (extent / n)


def _plane(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    aa, bb = np.meshgrid(a, b, indexing="ij")
    return aa.reshape(-1), bb.reshape(-1)


def _room_surface(scene: Scene, sid: int, spacing: float) -> Surface:
    """Grid on room surface ``sid`` in its (u, v) coordinates (as the renderer's ``_surface_uv``),
    labelled like the renderer labels it: the surface class, then each of its decals in order."""
    width, depth, height = scene.room
    u_extent = {WALL_X0: depth, WALL_X1: depth, WALL_Y0: width, WALL_Y1: width}.get(sid, width)
    v_extent = depth if sid in (FLOOR_SURFACE, CEILING_SURFACE) else height
    u, v = _plane(_grid(u_extent, spacing), _grid(v_extent, spacing))
    fixed = {WALL_X0: 0.0, WALL_X1: width, WALL_Y0: 0.0, WALL_Y1: depth, FLOOR_SURFACE: 0.0}.get(sid, height)
    c = np.full_like(u, fixed)
    if sid in (WALL_X0, WALL_X1):
        points = np.stack([c, u, v], 1)
    elif sid in (WALL_Y0, WALL_Y1):
        points = np.stack([u, c, v], 1)
    else:
        points = np.stack([u, v, c], 1)
    labels = np.full(len(u), _SURFACE_LABELS[sid], dtype=np.uint8)
    u32, v32 = u.astype(np.float32), v.astype(np.float32)  # the renderer tests decals in float32
    for d in scene.decals:
        if d.surface == sid:
            labels[_decal_hits(d, u32, v32)] = d.label
    normals = np.broadcast_to(np.asarray(_SURFACE_NORMALS[sid]), points.shape)
    return points, normals, labels


def _primitive_surface(p: Primitive, spacing: float) -> Surface:
    if isinstance(p, Box):
        points, normals = _box_surface(p, spacing)
    elif isinstance(p, Cylinder):
        points, normals = _cylinder_surface(p, spacing)
    else:
        n = max(1, math.ceil(4 * math.pi * p.radius**2 / spacing**2))
        z = 1.0 - 2.0 * (np.arange(n) + 0.5) / n
        phi = np.arange(n) * _GOLDEN_ANGLE
        rho = np.sqrt(1.0 - z * z)
        normals = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], 1)
        points = np.asarray(p.center) + p.radius * normals
    return points, normals, np.full(len(points), p.label, dtype=np.uint8)


def _box_surface(b: Box, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Six face grids in box-local coordinates, rotated by ``yaw`` about z and moved to the centre."""
    half = np.asarray(b.size, dtype=float) / 2
    points, normals = [], []
    for axis in range(3):
        a_axis, b_axis = [k for k in range(3) if k != axis]
        a, bb = _plane(_grid(b.size[a_axis], spacing), _grid(b.size[b_axis], spacing))
        for sign in (-1.0, 1.0):
            local = np.empty((len(a), 3))
            local[:, axis] = sign * half[axis]
            local[:, a_axis] = a - half[a_axis]
            local[:, b_axis] = bb - half[b_axis]
            normal = np.zeros((len(a), 3))
            normal[:, axis] = sign
            points.append(local)
            normals.append(normal)
    c, s = math.cos(b.yaw), math.sin(b.yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # local -> world, as the renderer
    return np.concatenate(points) @ rot.T + np.asarray(b.center), np.concatenate(normals) @ rot.T


def _cylinder_surface(cy: Cylinder, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Side grid (angle x height) plus the two cap discs (square grid clipped to the disc)."""
    n_theta = max(3, math.ceil(2 * math.pi * cy.radius / spacing - 1e-9))
    theta, z = _plane(
        (np.arange(n_theta) + 0.5) * (2 * math.pi / n_theta), cy.z0 + _grid(cy.z1 - cy.z0, spacing)
    )
    side_n = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], 1)
    side = np.stack([cy.x + cy.radius * side_n[:, 0], cy.y + cy.radius * side_n[:, 1], z], 1)
    g = _grid(2 * cy.radius, spacing) - cy.radius
    gx, gy = _plane(g, g)
    inside = gx * gx + gy * gy <= cy.radius**2
    gx, gy = (gx[inside], gy[inside]) if inside.any() else (np.zeros(1), np.zeros(1))
    points, normals = [side], [side_n]
    for zc, nz in ((cy.z0, -1.0), (cy.z1, 1.0)):
        points.append(np.stack([cy.x + gx, cy.y + gy, np.full_like(gx, zc)], 1))
        normals.append(np.tile([0.0, 0.0, nz], (len(gx), 1)))
    return np.concatenate(points), np.concatenate(normals)


def _strictly_inside(p: Primitive, pts: np.ndarray) -> np.ndarray:
    """Points more than ``_INSIDE_EPS`` inside solid ``p``."""
    e = _INSIDE_EPS
    if isinstance(p, Box):
        rel = pts - np.asarray(p.center)
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
        hx, hy, hz = (0.5 * v - e for v in p.size)
        return (np.abs(lx) < hx) & (np.abs(ly) < hy) & (np.abs(rel[:, 2]) < hz)
    if isinstance(p, Cylinder):
        rho2 = (pts[:, 0] - p.x) ** 2 + (pts[:, 1] - p.y) ** 2
        return (rho2 < (p.radius - e) ** 2) & (pts[:, 2] > p.z0 + e) & (pts[:, 2] < p.z1 - e)
    return ((pts - np.asarray(p.center)) ** 2).sum(1) < (p.radius - e) ** 2
