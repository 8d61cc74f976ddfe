"""Scene description: classes, intrinsics and the plain frozen dataclasses a scene is made of.

Tests and examples build known scenes from these (:func:`scene_from_spec`); :mod:`.layout`
draws random ones. Frames: see the package docstring (world z up, OpenCV camera axes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
DEPTH_DISPLAY_RANGE = (0.0, 10.0)
"""Colour range (metres) of depth in prediction panels: the rooms are at most about 9 m deep."""
WALL, FLOOR, CEILING, DOOR, WINDOW, PICTURE, TABLE, CABINET, SOFA, LAMP = range(len(CLASS_NAMES))

NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
"""fx, fy, cx, cy of the NYU Depth v2 Kinect at 640x480 (scaled to the output size)."""
NYU_SIZE = (480, 640)

# Room surfaces get ids 0..5 in the hit buffer; primitive k gets id 6 + k.
WALL_X0, WALL_X1, WALL_Y0, WALL_Y1, FLOOR_SURFACE, CEILING_SURFACE = range(6)
_NUM_SURFACES = 6
_F32 = np.float32


def intrinsics_for(height: int, width: int) -> tuple[float, float, float, float]:
    """NYU intrinsics scaled to ``height`` x ``width`` (``fx, fy, cx, cy``; pixel centres at integers)."""
    sx, sy = width / NYU_SIZE[1], height / NYU_SIZE[0]
    fx, fy, cx, cy = NYU_INTRINSICS
    return (fx * sx, fy * sy, cx * sx, cy * sy)


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
