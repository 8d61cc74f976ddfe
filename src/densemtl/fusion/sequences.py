"""RGB-D(-semantic) sequences for fusion: one :class:`Frame` per image, read lazily from disk.

Every reader yields frames with ``rgb`` uint8 [H,W,3], ``depth`` float32 metres [H,W] (0 =
invalid) or None, ``labels`` int64 [H,W] (255 = none) or None, ``pose`` float64 [4,4]
camera-to-world (OpenCV camera axes) or None, and ``intrinsics`` float64 [3,3] at the frame's
size. Formats (``open_sequence(path, format="auto")``):

* ``folder``: densemtl's folder format (docs/data.md) plus ``poses/<id>.txt`` (a 4x4
  camera-to-world matrix, text; ``.npy`` also read) and ``surface.npz`` (``points`` [N,3] world
  metres, ``normals`` [N,3], ``labels`` [N]: the ground-truth surface), as written by
  ``densemtl data render --trajectory N``. Frames in id order; ``intrinsics.json`` is required.
* ``tum``: TUM RGB-D (Sturm et al., IROS 2012): ``rgb.txt`` / ``depth.txt`` (``timestamp path``),
  ``groundtruth.txt`` (``timestamp tx ty tz qx qy qz qw``, optional), depth PNG uint16 / 5000.
  Each RGB image takes the depth image and the pose nearest in time if within ``max_difference``
  seconds (0.02 s, as TUM's ``associate.py``); RGB images without a depth image are dropped.
  Intrinsics: the published ones of freiburg1/2/3 when the folder name says so, else ROS's default
  (525, 525, 319.5, 239.5); given for 640x480 and scaled to the stored size.
* ``scannet``: one exported ScanNet scene (Dai et al., CVPR 2017; the SensReader export):
  ``color/<i>.jpg``, ``depth/<i>.png`` (uint16 mm), ``pose/<i>.txt`` (4x4 camera-to-world; ScanNet
  writes ``-inf`` for frames without tracking: pose None), ``intrinsic/intrinsic_depth.txt`` (4x4),
  ``intrinsic/intrinsic_color.txt``. Colour is resized (bilinear) to the depth resolution, where the
  depth intrinsics apply.
* ``video``: a video file (PyAV) with an optional pose file in TUM trajectory format whose
  timestamps are the frame times in seconds (``frame_index / fps``), matched within half a frame
  period; no depth (it comes from the network), intrinsics given (default ``fx = fy = width``,
  principal point at the centre, as ``densemtl predict --pointcloud``).

Bad input is a one-line :class:`~densemtl.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densemtl.data import io
from densemtl.errors import ConfigError, DataError

FORMATS: tuple[str, ...] = ("folder", "tum", "scannet", "video")
TUM_DEPTH_SCALE = 5000.0
SCANNET_DEPTH_SCALE = 1000.0
# published colour intrinsics of the TUM RGB-D cameras at 640x480 (fx, fy, cx, cy)
TUM_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
TUM_DEFAULT_INTRINSICS = (525.0, 525.0, 319.5, 239.5)


@dataclass
class Frame:
    """One RGB-D(-semantic) frame (module docstring for the conventions)."""

    id: str
    rgb: np.ndarray
    depth: np.ndarray | None
    labels: np.ndarray | None
    pose: np.ndarray | None
    intrinsics: np.ndarray
    timestamp: float | None = None


@dataclass
class Surface:
    """Ground-truth surface samples: ``points`` [N,3] world metres, ``normals`` [N,3], ``labels`` [N]."""

    points: np.ndarray
    normals: np.ndarray | None
    labels: np.ndarray | None


class FrameSequence:
    """Base of the readers: ``len()``, iteration (re-readable), classes and an optional GT surface."""

    name: str = "sequence"
    has_poses: bool = False
    class_names: list[str] | None = None
    class_colors: list[list[int]] | None = None
    surface: Surface | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def read_matrix(path: Path, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """A whitespace-separated text matrix (or ``.npy``) of the given shape."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except (ValueError, OSError) as exc:
        raise DataError(path, f"not a numeric matrix ({exc.__class__.__name__})") from None
    if matrix.shape != shape:
        raise DataError(path, f"expected a {shape[0]}x{shape[1]} matrix, got shape {list(matrix.shape)}")
    return matrix.astype(np.float64)


def read_surface(path: Path) -> Surface:
    """``surface.npz`` with ``points`` [N,3], optional ``normals`` [N,3] and ``labels`` [N]."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a readable .npz ({exc.__class__.__name__})") from None
    points = arrays.get("points")
    if points is None or points.ndim != 2 or points.shape[1] != 3:
        raise DataError(path, "needs a 'points' array of shape [N, 3]")
    labels = arrays.get("labels")
    if labels is not None and labels.shape != (len(points),):
        raise DataError(path, f"'labels' has shape {list(labels.shape)}, expected [{len(points)}]")
    return Surface(points.astype(np.float32), arrays.get("normals"), labels)


class FolderSequence(FrameSequence):
    """A trajectory in the densemtl folder format (module docstring), read through ``FolderDataset``."""

    def __init__(self, root: str | Path) -> None:
        from densemtl.data.datasets.folder import LABEL_DIRS, FolderDataset

        self.root = Path(root)
        tasks = [t for t in ("semseg", "depth") if (self.root / LABEL_DIRS[t]).is_dir()]  # normals: unused
        self.dataset = FolderDataset(self.root, split=None, tasks=tasks)
        if self.dataset.intrinsics is None:
            raise DataError(self.root / "intrinsics.json", "file not found (fusion needs the intrinsics)")
        self.name = self.root.name
        self.class_names = self.dataset.class_names
        self.class_colors = [list(c) for c in self.dataset.class_colors]
        self.has_poses = (self.root / "poses").is_dir()
        surface = self.root / "surface.npz"
        self.surface = read_surface(surface) if surface.is_file() else None

    def __len__(self) -> int:
        return len(self.dataset)

    def _pose(self, sample_id: str) -> np.ndarray | None:
        if not self.has_poses:
            return None
        for suffix in (".txt", ".npy"):
            path = self.root / "poses" / f"{sample_id}{suffix}"
            if path.is_file():
                return read_matrix(path)
        raise DataError(self.root / "poses" / f"{sample_id}.txt", "pose of this frame is missing")

    def __iter__(self) -> Iterator[Frame]:
        k = intrinsics_matrix(*self.dataset.intrinsics.tolist())
        for index, sample_id in enumerate(self.dataset.ids):
            sample = self.dataset[index]
            rgb = (sample["image"].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            depth = sample["depth"][0].numpy() if "depth" in sample else None
            labels = sample["semseg"].numpy() if "semseg" in sample else None
            yield Frame(sample_id, rgb, depth, labels, self._pose(sample_id), k)


def _read_list(path: Path, columns: int) -> list[list[str]]:
    """TUM list files: ``#`` comments, whitespace-separated columns, the first a float timestamp."""
    if not path.is_file():
        raise DataError(path, "file not found")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) < columns:
                raise ValueError
            float(parts[0])
            if columns == 8:
                [float(p) for p in parts[1:8]]
        except ValueError:
            raise DataError(
                path, f"line {number} is not 'timestamp' + {columns - 1} field(s): {line[:60]!r}"
            ) from None
        rows.append(parts[:columns])
    if not rows:
        raise DataError(path, "no entries")
    return rows


def pose_from_tum(values: Sequence[float]) -> np.ndarray:
    """``tx ty tz qx qy qz qw`` (TUM trajectory format) -> 4x4 camera-to-world."""
    from scipy.spatial.transform import Rotation

    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_quat([float(v) for v in values[3:7]]).as_matrix()
    pose[:3, 3] = [float(v) for v in values[:3]]
    return pose


def read_tum_trajectory(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Timestamps and 4x4 camera-to-world poses of a TUM trajectory file."""
    rows = _read_list(path, 8)
    return np.array([float(r[0]) for r in rows]), [pose_from_tum(r[1:]) for r in rows]


def nearest(times: np.ndarray, t: float, max_difference: float) -> int | None:
    """Index of the timestamp nearest ``t`` if within ``max_difference``."""
    if len(times) == 0:
        return None
    index = int(np.abs(times - t).argmin())
    return index if abs(times[index] - t) <= max_difference else None


class TumSequence(FrameSequence):
    """A TUM RGB-D sequence folder (module docstring)."""

    def __init__(
        self, root: str | Path, max_difference: float = 0.02, intrinsics: Sequence[float] | None = None
    ) -> None:
        self.root = Path(root)
        self.name = self.root.name
        rgb = _read_list(self.root / "rgb.txt", 2)
        depth = _read_list(self.root / "depth.txt", 2)
        depth_times = np.array([float(r[0]) for r in depth])
        trajectory = self.root / "groundtruth.txt"
        pose_times, poses = read_tum_trajectory(trajectory) if trajectory.is_file() else (np.zeros(0), [])
        self.has_poses = bool(poses)
        self.entries: list[tuple[float, str, str, np.ndarray | None]] = []
        for stamp, path in rgb:
            t = float(stamp)
            d = nearest(depth_times, t, max_difference)
            if d is None:
                continue
            p = nearest(pose_times, t, max_difference)
            self.entries.append((t, path, depth[d][1], poses[p] if p is not None else None))
        if not self.entries:
            raise DataError(
                self.root / "rgb.txt", f"no RGB image has a depth image within {max_difference} s"
            )
        camera = next((k for k in TUM_INTRINSICS if k in self.name), None)
        self.intrinsics_640 = (
            tuple(intrinsics) if intrinsics else TUM_INTRINSICS.get(camera, TUM_DEFAULT_INTRINSICS)
        )

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Frame]:
        for t, rgb_path, depth_path, pose in self.entries:
            rgb = io.read_image(self.root / rgb_path)
            depth = io.read_depth_png(self.root / depth_path, TUM_DEPTH_SCALE)
            if depth.shape != rgb.shape[:2]:
                raise DataError(
                    self.root / depth_path, f"size {depth.shape} differs from its RGB image {rgb.shape[:2]}"
                )
            sy, sx = rgb.shape[0] / 480.0, rgb.shape[1] / 640.0
            fx, fy, cx, cy = self.intrinsics_640
            k = intrinsics_matrix(fx * sx, fy * sy, cx * sx, cy * sy)
            yield Frame(f"{t:.6f}", rgb, depth, None, pose, k, timestamp=t)


class ScanNetSequence(FrameSequence):
    """One exported ScanNet scene (module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.name = self.root.name
        color = self.root / "color"
        if not color.is_dir():
            raise DataError(color, "folder not found")
        ids = [p.stem for p in color.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if not ids:
            raise DataError(color, "holds no .jpg images")
        self.ids = sorted(ids, key=lambda s: (int(s) if s.isdigit() else 1 << 62, s))
        self.intrinsics = read_matrix(self.root / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
        color_k = self.root / "intrinsic" / "intrinsic_color.txt"
        if color_k.is_file():
            read_matrix(color_k)  # validated; colour is resized to the depth camera's grid
        self.has_poses = (self.root / "pose").is_dir()

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Frame]:
        from PIL import Image

        for frame_id in self.ids:
            color_path = next(p for p in (self.root / "color").glob(f"{frame_id}.*"))
            depth = io.read_depth_png(self.root / "depth" / f"{frame_id}.png", SCANNET_DEPTH_SCALE)
            rgb = io.read_image(color_path)
            if rgb.shape[:2] != depth.shape:
                size = (depth.shape[1], depth.shape[0])
                rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
            pose = None
            if self.has_poses:
                pose = read_matrix(self.root / "pose" / f"{frame_id}.txt")
                if not np.isfinite(pose).all():
                    pose = None  # ScanNet marks frames its tracker lost with -inf
            yield Frame(frame_id, rgb, depth, None, pose, self.intrinsics)


class VideoSequence(FrameSequence):
    """A video file and an optional TUM-format trajectory with frame times (module docstring)."""

    def __init__(
        self, path: str | Path, poses: str | Path | None = None, intrinsics: Sequence[float] | None = None
    ) -> None:
        from densemtl.inference import video

        self.path = Path(path)
        self.name = self.path.stem
        self.info = video.probe(self.path)
        self.fps = float(self.info.fps) if self.info.fps else 30.0  # no stored rate: assume 30
        self.pose_times, self.poses = (np.zeros(0), [])
        if poses is not None:
            self.pose_times, self.poses = read_tum_trajectory(Path(poses))
        self.has_poses = bool(self.poses)
        w, h = self.info.width, self.info.height
        k = tuple(intrinsics) if intrinsics else (float(w), float(w), (w - 1) / 2.0, (h - 1) / 2.0)
        self.intrinsics = intrinsics_matrix(*k)
        self.count = self.info.frames or sum(1 for _ in video.iter_frames(self.path))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Frame]:
        from densemtl.inference import video

        for index, rgb in video.iter_frames(self.path):
            t = index / self.fps
            p = nearest(self.pose_times, t, 0.5 / self.fps) if self.has_poses else None
            pose = self.poses[p] if p is not None else None
            yield Frame(f"{index:06d}", rgb, None, None, pose, self.intrinsics, timestamp=t)


def detect_format(path: Path) -> str:
    """``folder`` / ``tum`` / ``scannet`` / ``video`` from what is on disk."""
    from densemtl.inference import video

    if path.is_file():
        if video.is_video(path):
            return "video"
        raise DataError(path, "not a video file (.mp4, .avi, ...) nor a sequence folder")
    if not path.is_dir():
        raise DataError(path, "sequence not found")
    if (path / "rgb.txt").is_file() and (path / "depth.txt").is_file():
        return "tum"
    if (path / "color").is_dir() and (path / "depth").is_dir():
        return "scannet"
    if (path / "rgb").is_dir() and (path / "classes.json").is_file():
        return "folder"
    inner = sorted(p.name for p in path.glob("traj_*") if p.is_dir())
    if inner:  # the root of `densemtl data render --trajectory N`
        raise DataError(path, f"holds {len(inner)} trajectories ({inner[0]}, ...): pass one of them")
    raise DataError(
        path, "unknown sequence layout (expected folder, TUM RGB-D, ScanNet scene or a video); use --format"
    )


def open_sequence(path: str | Path, format: str = "auto", **options: Any) -> FrameSequence:
    """Open a sequence; ``options``: ``intrinsics`` (tum, video), ``poses`` (video), ``max_difference`` (tum)."""
    path = Path(path)
    kind = detect_format(path) if format == "auto" else format
    if kind == "folder":
        return FolderSequence(path)
    if kind == "tum":
        return TumSequence(path, options.get("max_difference", 0.02), options.get("intrinsics"))
    if kind == "scannet":
        return ScanNetSequence(path)
    if kind == "video":
        return VideoSequence(path, options.get("poses"), options.get("intrinsics"))
    raise ConfigError(f"--format must be auto or one of {', '.join(FORMATS)}, got {format!r}")
