"""Random scenes: furniture with class-typical sizes, a rejection-sampled floor plan, the light
and the camera (see docs/data.md for the ranges)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from densemtl.data.synthetic.materials import (
    _fabric_color,
    _hsv,
    _picture_material,
    _scene_materials,
    _window_material,
)
from densemtl.data.synthetic.scene import (
    CABINET,
    CEILING_SURFACE,
    DOOR,
    FLOOR,
    FLOOR_SURFACE,
    LAMP,
    PICTURE,
    SOFA,
    TABLE,
    WALL_X0,
    WALL_X1,
    WALL_Y0,
    WALL_Y1,
    WINDOW,
    Box,
    Camera,
    Cylinder,
    Decal,
    Material,
    Primitive,
    Scene,
    Sphere,
)

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
