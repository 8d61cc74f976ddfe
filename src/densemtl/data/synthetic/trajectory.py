"""Camera trajectories: smooth hand-held walks through one random room, rendered frame by frame
with camera poses and the room's ground-truth surface, for multi-view work such as TSDF fusion
(Curless & Levoy 1996; KinectFusion, Newcombe et al. 2011) scored against ``surface.npz``.

The walk: a person carrying a camera at 1.0-1.8 m through the free floor space of the room.
Free space is a 2D clearance map on a 5 cm grid (distance to the nearest wall or furniture
footprint, furniture of any height counts); the walker only steps onto cells at least
``MIN_CLEARANCE`` from everything (>= 0.4 m exactly, after the grid approximation). It heads for
random goals >= 1.5 m away along geodesic (breadth-first) paths through the free cells, with a
bounded turn rate, turn acceleration and speed change (0.03-0.05 m per frame, slower in turns,
turning on the spot in sharp ones). The camera looks between the walking direction and the room
centre (a person scanning a room looks into it), with a slow look-around sway in yaw and pitch
(pitch within +-15 deg, no roll) and a slow bob in height. Per frame it moves at most ~5 cm and
turns at most ~4.5 deg, so consecutive frames overlap strongly. Layout on disk: docs/data.md,
"Trajectories".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densemtl.data.synthetic.geometry import _corners
from densemtl.data.synthetic.layout import random_scene
from densemtl.data.synthetic.render import render
from densemtl.data.synthetic.scene import CLASS_NAMES, GENERATOR_VERSION, Camera, Scene
from densemtl.data.synthetic.surface import sample_surface
from densemtl.data.synthetic.writer import (
    _claim_folder,
    _exclusive,
    _manifest_matches,
    _run_jobs,
    _write_folder_metadata,
    _write_manifest,
    image_seed,
)

TRAJECTORY_MANIFEST = "trajectories.json"
MIN_CLEARANCE = 0.5  # metres from walls and footprints, between 5 cm cell centres (>= 0.4 exactly)
HEIGHT_RANGE = (1.0, 1.8)
_CELL = 0.05  # clearance-map resolution (metres)
_MAX_TURN = 0.04  # walking-direction change per frame (rad)
_MAX_VIEW_TURN = 0.035  # view-direction change per frame (rad), before the look-around sway
_FRAME_DIRS = ("rgb", "depth", "semantic", "normals", "poses")


@dataclass(frozen=True)
class Trajectory:
    """A room (``scene``; its own camera is unused) and one camera per frame."""

    scene: Scene
    cameras: tuple[Camera, ...]
    seed: int


def camera_to_world(camera: Camera) -> np.ndarray:
    """4x4 camera-to-world pose: rotation columns are the OpenCV camera axes (x right, y down,
    z forward) in world coordinates, translation the camera centre; ``X_w = R X_c + t``."""
    pose = np.eye(4)
    pose[:3, :3] = camera.rotation()
    pose[:3, 3] = camera.position
    return pose


def random_trajectory(seed: int, frames: int = 60) -> Trajectory:
    """The walk of ``frames`` poses for ``seed`` through the room of ``random_scene`` (a pure
    function of ``seed``; rooms with less than 1 m² of free floor are redrawn)."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        scene = random_scene(int(rng.integers(1 << 62)))
        clearance = _clearance_map(scene)
        free = clearance >= MIN_CLEARANCE
        if free.sum() * _CELL * _CELL >= 1.0:
            break
    else:  # pragma: no cover - 50 cramped rooms in a row
        raise RuntimeError(f"no room with free floor space for trajectory seed {seed}")
    return Trajectory(scene, _walk(rng, clearance, frames), int(seed))


def _clearance_map(scene: Scene) -> np.ndarray:
    """Distance (metres) from each floor cell centre to the nearest wall or footprint cell centre."""
    from scipy.ndimage import distance_transform_edt

    width, depth, _ = scene.room
    nx, ny = math.ceil(width / _CELL), math.ceil(depth / _CELL)
    occupied = np.zeros((nx + 2, ny + 2), dtype=bool)  # one ring of wall cells around the room
    occupied[[0, -1], :] = occupied[:, [0, -1]] = True
    for prim in scene.objects:  # every cell the footprint's bounding box touches (thin poles too)
        c = _corners(prim)
        i0, i1 = max(0, math.floor(c[:, 0].min() / _CELL)), min(nx - 1, math.floor(c[:, 0].max() / _CELL))
        j0, j1 = max(0, math.floor(c[:, 1].min() / _CELL)), min(ny - 1, math.floor(c[:, 1].max() / _CELL))
        if i0 <= i1 and j0 <= j1:
            occupied[1 + i0 : 2 + i1, 1 + j0 : 2 + j1] = True
    return (distance_transform_edt(~occupied) * _CELL)[1:-1, 1:-1]


def _clearance_at(clearance: np.ndarray, x: float, y: float) -> float:
    i, j = math.floor(x / _CELL), math.floor(y / _CELL)
    if not (0 <= i < clearance.shape[0] and 0 <= j < clearance.shape[1]):
        return 0.0
    return float(clearance[i, j])


def _geodesic(free: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Breadth-first distances (cells, 4-connected) from ``start`` over ``free`` cells; -1 where
    unreachable. Vectorised wavefront, one array shift per direction and step."""
    dist = np.full(free.shape, -1, dtype=np.int32)
    front = np.zeros(free.shape, dtype=bool)
    front[start] = True
    dist[start] = 0
    step = 0
    while front.any():
        step += 1
        grow = np.zeros_like(front)
        grow[1:] |= front[:-1]
        grow[:-1] |= front[1:]
        grow[:, 1:] |= front[:, :-1]
        grow[:, :-1] |= front[:, 1:]
        front = grow & free & (dist < 0)
        dist[front] = step
    return dist


def _carrot(to_goal: np.ndarray, cell: tuple[int, int], steps: int) -> tuple[int, int]:
    """The cell ``steps`` cells down the geodesic distance field from ``cell`` towards the goal."""
    i, j = cell
    for _ in range(steps):
        best = (i, j)
        for ni, nj in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            inside = 0 <= ni < to_goal.shape[0] and 0 <= nj < to_goal.shape[1]
            if inside and 0 <= to_goal[ni, nj] < to_goal[best]:
                best = (ni, nj)
        if best == (i, j):
            break
        i, j = best
    return i, j


def _new_goal(rng: np.random.Generator, free: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """Geodesic distance field towards a random free cell >= 1.5 m from ``cell`` along the floor
    (the farthest reachable ones in a small free area)."""
    reach = _geodesic(free, cell)
    far = np.argwhere(reach >= min(30, int(reach.max())))
    return _geodesic(free, tuple(int(c) for c in far[int(rng.integers(len(far)))]))


def _walk(rng: np.random.Generator, clearance: np.ndarray, frames: int) -> tuple[Camera, ...]:
    """Positions of a walker that heads for random goals along geodesic paths through the free
    cells, with bounded turn rate and acceleration, then yaw / pitch / height sways on top."""
    free = clearance >= MIN_CLEARANCE
    roomy = np.argwhere(clearance >= min(MIN_CLEARANCE + 0.3, float(clearance.max())))
    cell = tuple(int(c) for c in roomy[int(rng.integers(len(roomy)))])
    x, y = (cell[0] + 0.5) * _CELL, (cell[1] + 0.5) * _CELL
    cruise = rng.uniform(0.03, 0.05)  # metres per frame
    to_goal = _new_goal(rng, free, cell)
    ci, cj = _carrot(to_goal, cell, 10)  # already walking towards the first goal at frame 0
    heading, turn, speed = math.atan2((ci + 0.5) * _CELL - x, (cj + 0.5) * _CELL - y), 0.0, cruise
    careful = 0  # frames left of following the path cell by cell after a blocked step
    path = []
    for _ in range(frames):
        path.append((x, y, heading))
        cell = (min(int(x / _CELL), free.shape[0] - 1), min(int(y / _CELL), free.shape[1] - 1))
        if to_goal[cell] <= 6:  # within 0.3 m of the goal
            to_goal = _new_goal(rng, free, cell)
        ci, cj = _carrot(to_goal, cell, 1 if careful else 10)
        want = math.atan2((ci + 0.5) * _CELL - x, (cj + 0.5) * _CELL - y)
        diff = (want - heading + math.pi) % (2 * math.pi) - math.pi
        target_turn = float(np.clip(0.5 * diff, -_MAX_TURN, _MAX_TURN))
        turn += float(np.clip(target_turn - turn, -0.01, 0.01))
        heading += turn
        target_speed = cruise * max(0.0, math.cos(diff)) ** 2 if abs(diff) < math.pi / 3 else 0.0
        speed += float(np.clip(target_speed - speed, -0.008, 0.008))
        if careful:
            speed = min(speed, math.hypot((ci + 0.5) * _CELL - x, (cj + 0.5) * _CELL - y))
        nx, ny = x + speed * math.sin(heading), y + speed * math.cos(heading)
        if _clearance_at(clearance, nx, ny) >= MIN_CLEARANCE:
            x, y = nx, ny
            careful = max(0, careful - 1)
        else:  # would leave the free cells: stop, then follow the path cell by cell for a while
            speed, careful = 0.0, 20
    t = np.arange(frames, dtype=float)

    def sway(amplitude: tuple[float, float], period: tuple[float, float]) -> np.ndarray:
        a, p = rng.uniform(*amplitude), rng.uniform(*period)
        return a * np.sin(2 * math.pi * t / p + rng.uniform(0, 2 * math.pi))

    look = sway((0.15, 0.45), (90.0, 180.0))
    pitch = np.clip(rng.uniform(-0.12, 0.05) + sway((0.04, 0.12), (80.0, 160.0)), -0.26, 0.26)
    z = rng.uniform(HEIGHT_RANGE[0] + 0.2, HEIGHT_RANGE[1] - 0.2) + sway((0.0, 0.15), (60.0, 120.0))
    yaw = _inward_yaw(path, (clearance.shape[0] * _CELL / 2, clearance.shape[1] * _CELL / 2)) + look
    return tuple(
        Camera((float(px), float(py), float(pz)), float(yw % (2 * math.pi)), float(pt))
        for (px, py, _), yw, pt, pz in zip(path, yaw, pitch, z)
    )


def _inward_yaw(path: list[tuple[float, float, float]], centre: tuple[float, float]) -> np.ndarray:
    """View direction between the walking direction and the room centre (a person scanning a room
    looks into it, not at the wall beside them), followed at a bounded rate so it stays smooth."""
    out = np.empty(len(path))
    yaw = None
    for k, (x, y, heading) in enumerate(path):
        dx, dy = centre[0] - x, centre[1] - y
        dist = math.hypot(dx, dy)
        w = min(1.0, dist / 2.0) / max(dist, 1e-9)
        target = math.atan2(math.sin(heading) + w * dx, math.cos(heading) + w * dy)
        if yaw is None:
            yaw = target
        yaw += float(
            np.clip((target - yaw + math.pi) % (2 * math.pi) - math.pi, -_MAX_VIEW_TURN, _MAX_VIEW_TURN)
        )
        out[k] = yaw
    return out


def trajectory_seed(seed: int, index: int) -> int:
    """Seed of trajectory ``index`` of a set made with ``seed`` (independent of the set's size)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1, dtype=np.uint32)[0])


def _render_frame(job: tuple[str, str, Scene, Camera, int, int, int]) -> str:
    """Worker: render one frame of a trajectory and write its sample files and pose."""
    from densemtl.data.datasets.folder import write_sample

    folder, frame_id, scene, camera, noise_seed, height, width = job
    s = render(dataclasses.replace(scene, camera=camera, noise_seed=noise_seed), height, width)
    write_sample(folder, frame_id, rgb=s.rgb, depth=s.depth, semantic=s.semantic, normals=s.normals)
    np.savetxt(Path(folder) / "poses" / f"{frame_id}.txt", camera_to_world(camera), fmt="%.9f")
    return frame_id


def render_trajectories(
    root: str | Path,
    num_trajectories: int,
    frames: int = 60,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    surface_spacing: float = 0.01,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Render ``num_trajectories`` walks of ``frames`` frames into ``root`` (cached like
    ``render_dataset``: ``trajectories.json`` records the parameters, a complete folder made with
    the same ones is returned at once, a foreign non-empty folder is refused).

    Trajectory ``i`` is :func:`random_trajectory` ``(trajectory_seed(seed, i), frames)`` in
    ``root/traj_<iiii>/``; frame ``f`` gets sensor noise seed ``image_seed(trajectory seed, f)``.
    """
    from densemtl.errors import ConfigError

    if num_trajectories < 1 or frames < 2 or height < 8 or width < 8:
        raise ConfigError(
            "render_trajectories needs --trajectory >= 1, --frames >= 2 and a size >= 8x8, got "
            f"{num_trajectories}, {frames}, {height}x{width}"
        )
    if not surface_spacing > 0:
        raise ConfigError(f"--surface-spacing must be > 0 metres, got {surface_spacing}")
    root = Path(root)
    params = {
        "generator": "densemtl.data.synthetic.trajectory",
        "version": GENERATOR_VERSION,
        "num_trajectories": int(num_trajectories),
        "frames": int(frames),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
        "surface_spacing": float(surface_spacing),
    }
    if _manifest_matches(root / TRAJECTORY_MANIFEST, params):
        return root
    with _exclusive(root):
        if not _manifest_matches(root / TRAJECTORY_MANIFEST, params):
            _render_trajectories_into(root, params, workers, progress)
    return root


def _render_trajectories_into(root: Path, params: dict, workers: int, progress: bool) -> None:
    n, frames = params["num_trajectories"], params["frames"]
    height, width = params["height"], params["width"]
    ids = [f"traj_{i:04d}" for i in range(n)]
    stale = [p.name for p in root.glob("traj_*")] if root.is_dir() else []
    _claim_folder(root, TRAJECTORY_MANIFEST, stale)
    _write_manifest(root, {**params, "complete": False}, TRAJECTORY_MANIFEST)
    jobs = []
    trajectories = []
    for index, tid in enumerate(ids):
        tseed = trajectory_seed(params["seed"], index)
        traj = random_trajectory(tseed, frames)
        trajectories.append(traj)
        folder = root / tid
        for name in _FRAME_DIRS:
            (folder / name).mkdir(parents=True, exist_ok=True)
        for f, camera in enumerate(traj.cameras):
            jobs.append((str(folder), f"{f:06d}", traj.scene, camera, image_seed(tseed, f), height, width))
    _run_jobs(_render_frame, jobs, workers, f"rendering trajectory frames {height}x{width}", progress, 2)
    for tid, traj in zip(ids, trajectories):
        _write_trajectory_metadata(root / tid, traj, height, width, params["surface_spacing"])
    _write_manifest(
        root,
        {**params, "complete": True, "trajectories": ids, "classes": list(CLASS_NAMES)},
        TRAJECTORY_MANIFEST,
    )


def _write_trajectory_metadata(
    folder: Path, traj: Trajectory, height: int, width: int, spacing: float
) -> None:
    """Folder-format metadata (every frame in ``splits/test.txt``, in order) and ``surface.npz``."""
    frame_ids = [f"{f:06d}" for f in range(len(traj.cameras))]
    _write_folder_metadata(folder, height, width, {"test": frame_ids})
    points, normals, labels = sample_surface(traj.scene, spacing)
    np.savez_compressed(folder / "surface.npz", points=points, normals=normals, labels=labels)
