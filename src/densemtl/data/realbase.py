"""Shared machinery of the real-dataset loaders (NYUv2, Cityscapes, SUN RGB-D, KITTI, ScanNet, ...).

Every loader subclasses :class:`RealDataset`: it indexes its files in ``__init__`` and implements
:meth:`RealDataset._load`, which returns numpy arrays in the units of the sample contract
(:mod:`densemtl.data.sample`) together with the file each array came from. The base class turns
them into the sample dict, checks sizes and label ranges (raising a one-line
:class:`~densemtl.errors.DataError` naming the offending file) and applies the transform, so all
loaders return exactly what :class:`~densemtl.data.folder.FolderDataset` returns.

Missing pairs found while indexing (an image without its label file, a label without its image, a
split entry without its image) are collected in :attr:`RealDataset.problems`; with ``strict=True``
(the default) the constructor raises the first of them, with ``strict=False`` (used by
``densemtl data check``) the affected samples are dropped and the problems kept for the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from densemtl.data import io
from densemtl.data.sample import IGNORE_INDEX, TASKS
from densemtl.errors import DataError

Transform = Callable[[dict[str, Any]], dict[str, Any]]

#: Marks a raw id that is not part of a dataset's label set in a lookup table (see :func:`map_ids`).
UNKNOWN_ID = -1


def build_lut(mapping: dict[int, int], size: int | None = None, default: int = UNKNOWN_ID) -> np.ndarray:
    """Lookup table ``raw id -> target id`` (int64); unlisted ids get ``default``."""
    size = max(size or 0, max(mapping, default=-1) + 1)
    lut = np.full(size, default, dtype=np.int64)
    for raw, target in mapping.items():
        if raw >= 0:
            lut[raw] = target
    return lut


def map_ids(raw: np.ndarray, lut: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    """Map raw label ids through ``lut``; ids outside it (or marked ``UNKNOWN_ID``) are a DataError.

    ``what`` names the label set in the message, e.g. ``"the 894 NYU raw classes"``.
    """
    raw = np.asarray(raw)
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut)):
        bad = np.unique(raw[(raw < 0) | (raw >= len(lut))])
        raise DataError(path, f"label ids {_few(bad)} are outside {what}")
    out = lut[raw]
    if (out == UNKNOWN_ID).any():
        raise DataError(path, f"label ids {_few(np.unique(raw[out == UNKNOWN_ID]))} are outside {what}")
    return out


def _few(values: np.ndarray, limit: int = 6) -> str:
    values = [int(v) for v in np.asarray(values).ravel()[:limit]]
    return str(values) + ("..." if len(values) == limit else "")


def read_lines(path: str | Path, what: str = "list file") -> list[str]:
    """Non-empty, stripped lines of a text file; a missing or empty file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read {what} ({exc.__class__.__name__})") from None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise DataError(path, f"{what} is empty")
    return lines


def find_with_suffix(folder: Path, stem: str, suffixes: Sequence[str]) -> Path | None:
    """``folder/stem<suffix>`` for the first suffix that exists, else None."""
    for suffix in suffixes:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def read_matrix_txt(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Whitespace-separated numbers as a float64 matrix of ``shape`` (first ``rows*cols`` values)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot parse numbers ({exc.__class__.__name__})") from None
    need = shape[0] * shape[1]
    if values.size < need:
        raise DataError(path, f"expected {need} numbers, found {values.size}")
    return values[:need].reshape(shape)


def parse_normals_axes(spec: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Parse ``"x,-z,y"``: the OpenCV components (x right, y down, z forward) as stored components.

    ``"x,y,z"`` keeps the stored vectors; ``"x,-z,y"`` means OpenCV x = stored x, OpenCV y =
    -stored z, OpenCV z = stored y (the DenseTorch / multi-task-refinenet NYUD encoding).
    """
    parts = [p.strip().lower() for p in spec.split(",")]
    axes, signs = [], []
    for part in parts:
        sign = -1.0 if part.startswith("-") else 1.0
        name = part.lstrip("+-")
        if name not in ("x", "y", "z"):
            raise ValueError(f"normals_axes {spec!r}: expected three of x, y, z with optional '-' signs")
        axes.append("xyz".index(name))
        signs.append(sign)
    if len(axes) != 3 or sorted(axes) != [0, 1, 2]:
        raise ValueError(f"normals_axes {spec!r}: expected a permutation of x, y, z, e.g. 'x,-z,y'")
    return (axes[0], axes[1], axes[2]), (signs[0], signs[1], signs[2])


def apply_normals_axes(normals: np.ndarray, spec: str) -> np.ndarray:
    """Re-express stored normals [H, W, 3] in OpenCV camera axes (see :func:`parse_normals_axes`)."""
    if spec.replace(" ", "").lower() == "x,y,z":
        return normals
    axes, signs = parse_normals_axes(spec)
    return np.stack([signs[i] * normals[..., axes[i]] for i in range(3)], axis=-1).astype(np.float32)


class RealDataset(Dataset):
    """Base class of the real-dataset loaders; see the module docstring.

    Subclasses set :attr:`class_names`, :attr:`class_colors`, :attr:`ids` and call
    :meth:`_setup_tasks` in ``__init__``, then implement :meth:`_load`.
    """

    #: registry name, used as ``meta["dataset"]``
    name: str = "real"
    #: the splits this dataset knows and their standard sizes (the validator warns on a mismatch)
    split_sizes: ClassVar[dict[str, int]] = {}
    #: which quantity the ``depth`` label holds: ``"depth"`` (metres), ``"disparity"`` (pixels) or
    #: ``"inverse_depth"`` (mtan Cityscapes); put in ``meta["target"]`` when not ``"depth"``
    depth_target: str = "depth"

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        transform: Transform | None = None,
        strict: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(self.root, "dataset folder not found")
        self.split = split
        self.transform = transform
        self.strict = strict
        self.problems: list[DataError] = []
        self.class_names: list[str] = []
        self.class_colors: list[list[int]] = []
        self.ids: list[str] = []
        self.tasks: tuple[str, ...] = ()

    # -- helpers for subclasses ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _setup_tasks(self, tasks: Iterable[str] | None, available: Sequence[str]) -> None:
        if tasks is None:
            self.tasks = tuple(t for t in TASKS if t in available)
            return
        requested = tuple(tasks)
        for task in requested:
            if task not in TASKS:
                raise DataError(self.root, f"unknown task {task!r}; known: {', '.join(TASKS)}")
            if task not in available:
                have = ", ".join(available) or "none"
                raise DataError(
                    self.root, f"task {task!r} is not available in {self.name} here (available: {have})"
                )
        self.tasks = requested

    def _problem(self, path: str | Path, problem: str) -> None:
        """Record a missing pair / missing file found while indexing."""
        self.problems.append(DataError(path, problem))

    def _finish_index(self) -> None:
        """Raise the first indexing problem when strict; require at least one sample."""
        if self.problems and self.strict:
            first = self.problems[0]
            more = len(self.problems) - 1
            suffix = (
                f" (and {more} more problem{'s' * (more > 1)}; run `densemtl data check`)" if more else ""
            )
            raise DataError(first.path, first.problem + suffix)
        if not self.ids and not self.problems:
            raise DataError(self.root, f"no samples found for split {self.split!r} of {self.name}")

    # -- the dataset protocol ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, index: int) -> dict[str, Any]:
        """Return ``{"rgb": uint8 [H,W,3] or float [H,W,3] in [0,1], "rgb_path": str,
        task: array (semseg int64 [H,W] / depth float32 [H,W] metres / normals float32 [H,W,3]),
        "paths": {task: file}, "intrinsics": (fx, fy, cx, cy) or None, "meta": {...}}``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self._load(index)
        sample = self._to_sample(index, raw)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def _to_sample(self, index: int, raw: dict[str, Any]) -> dict[str, Any]:
        rgb = np.asarray(raw["rgb"])
        rgb_path = raw["rgb_path"]
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise DataError(rgb_path, f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
        if rgb.dtype == np.uint8:
            image = (
                torch.from_numpy(np.require(rgb, requirements=["C", "W"]))
                .permute(2, 0, 1)
                .float()
                .div_(255.0)
            )
        else:
            rgb = rgb.astype(np.float32)
            if not np.isfinite(rgb).all() or rgb.min() < -1e-3 or rgb.max() > 1.0 + 1e-3:
                raise DataError(
                    rgb_path, f"float image values must lie in [0, 1], got [{rgb.min():.3g}, {rgb.max():.3g}]"
                )
            image = torch.from_numpy(np.require(rgb.clip(0, 1), requirements=["C", "W"])).permute(2, 0, 1)
        height, width = image.shape[-2:]
        meta: dict[str, Any] = {
            "id": self.ids[index],
            "dataset": self.name,
            "pseudo": set(),
            "path": str(rgb_path),
        }
        meta.update(raw.get("meta", {}))
        if self.depth_target != "depth" and "depth" in self.tasks:
            meta["target"] = self.depth_target
        if raw.get("intrinsics") is not None:
            meta["intrinsics"] = torch.tensor([float(v) for v in raw["intrinsics"]], dtype=torch.float32)
        sample: dict[str, Any] = {"image": image, "meta": meta}
        paths = raw.get("paths", {})
        for task in self.tasks:
            if raw.get(task) is None:
                continue
            path = paths.get(task, rgb_path)
            array = np.asarray(raw[task])
            if tuple(array.shape[:2]) != (height, width):
                raise DataError(
                    path,
                    f"size {array.shape[1]}x{array.shape[0]} does not match image {width}x{height} ({rgb_path})",
                )
            sample[task] = self._label_tensor(task, array, path)
        return sample

    def _label_tensor(self, task: str, array: np.ndarray, path: str | Path) -> torch.Tensor:
        if task == "semseg":
            labels = array.astype(np.int64, copy=False)
            bad = ((labels < 0) | (labels >= self.num_classes)) & (labels != IGNORE_INDEX)
            if bad.any():
                raise DataError(
                    path, f"label ids {_few(np.unique(labels[bad]))} outside the {self.num_classes} classes"
                )
            return torch.from_numpy(np.require(labels, requirements=["C", "W"]))
        if task == "depth":
            depth = array.astype(np.float32, copy=False)
            io.check_depth(depth, path)
            return torch.from_numpy(np.require(depth, requirements=["C", "W"]))[None]
        normals = array.astype(np.float32, copy=False)
        if normals.ndim != 3 or normals.shape[-1] != 3:
            raise DataError(path, f"normals must be [H, W, 3], got shape {normals.shape}")
        # unit length and invalid = all-zero are guaranteed by io.read_normals (and kept by
        # apply_normals_axes, a signed permutation), so no second normalisation here
        return torch.from_numpy(np.require(normals, requirements=["W"])).permute(2, 0, 1).contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, tasks={self.tasks})"


def worker_pid() -> int:
    """The current process id (lazily opened file handles are re-opened after a fork)."""
    return os.getpid()


def load_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """``np.load`` without pickles; a missing / corrupt file or NaN/inf values are a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, f"cannot read .npy ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"{what} .npy must be numeric, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(path, f"{what} holds {int((~np.isfinite(array)).sum())} NaN/inf values")
    return array


def float_labels_to_ids(
    array: np.ndarray, path: str | Path, ignore_values: tuple[float, ...] = (-1.0,)
) -> np.ndarray:
    """Float label maps (mtan's ``.npy``) -> int64 ids; ``ignore_values`` -> 255; non-integers are an error."""
    array = np.squeeze(np.asarray(array))
    if array.ndim != 2:
        raise DataError(path, f"label map must be 2-D, got shape {array.shape}")
    rounded = np.round(array)
    if np.abs(array - rounded).max(initial=0) > 1e-3:
        raise DataError(path, "label map holds non-integer values")
    ids = rounded.astype(np.int64)
    for value in ignore_values:
        ids[rounded == value] = IGNORE_INDEX
    return ids
