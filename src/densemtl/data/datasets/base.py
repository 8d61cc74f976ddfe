"""Shared machinery of the real-dataset loaders (NYUv2, Cityscapes, SUN RGB-D, KITTI, ScanNet, ...).

Every loader subclasses :class:`RealDataset`: it indexes its files in ``__init__`` and implements
:meth:`RealDataset._load`, which returns numpy arrays in the units of the sample contract
(:mod:`densemtl.data.sample`) together with the file each array came from. The base class turns
them into the sample dict, checks sizes and label ranges (raising a one-line
:class:`~densemtl.errors.DataError` naming the offending file) and applies the transform, so all
loaders return exactly what :class:`~densemtl.data.datasets.folder.FolderDataset` returns.

Missing pairs found while indexing (an image without its label file, a label without its image, a
split entry without its image) are collected in :attr:`RealDataset.problems`; with ``strict=True``
(the default) the constructor raises the first of them, with ``strict=False`` (used by
``densemtl data check``) the affected samples are dropped and the problems kept for the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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


def first_dir(base: Path, names: Iterable[str]) -> Path | None:
    """``base/name`` for the first of ``names`` that is a folder, else None."""
    for name in names:
        if (base / name).is_dir():
            return base / name
    return None


def files_by_id(folder: Path, prefix: str = "", suffixes: Sequence[str] = (".png",)) -> dict[str, Path]:
    """``{id: path}`` of the files ``folder/<prefix><id><suffix>`` (sorted; empty if no folder)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in suffixes and path.name.startswith(prefix) and path.is_file():
            found.setdefault(path.name[len(prefix) : -len(path.suffix)], path)
    return found


def iter_list_file(
    path: Path, root: Path, columns: Sequence[str], min_columns: int = 1
) -> Iterator[tuple[int, dict[str, Path | None]]]:
    """Lines of a DenseTorch-style list file as ``(line number, {column: root/path or None})``.

    Columns are tab- (or whitespace-) separated paths relative to ``root``; ``-`` marks a label the
    frame does not have. A wrong column count or a missing first (image) column is a DataError.
    """
    usage = " ".join(columns[:min_columns]) + "".join(f" [{c}" for c in columns[min_columns:])
    usage += "]" * (len(columns) - min_columns)
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.split("\t") if "\t" in line else line.split()
        if not min_columns <= len(parts) <= len(columns):
            raise DataError(path, f"line {number}: expected '{usage}' ('-' = none), got {len(parts)} columns")
        files = {c: None if p in ("-", "") else root / p for c, p in zip(columns, parts)}
        if files[columns[0]] is None:
            raise DataError(path, f"line {number}: no {columns[0]} path")
        yield number, {c: files.get(c) for c in columns}


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


EIGEN_NORMALS_AXES = "x,-z,y"
"""Axes of the NYU surface normals of Eigen & Fergus (ICCV 2015, ``normals_gt.tgz``): stored
(x right, y away from the camera, z up), i.e. OpenCV x = x, y = -z, z = y. Measured on
multi-task-refinenet's ``norm_gt_000433.png``, which carries normals_gt's fingerprint (valid window
rows 44-470, cols 40-600, grey (127, 127, 127) outside): against normals computed from its depth
map with the Kinect intrinsics the median angle is under 20 deg in these axes and over 30 deg in
each of the 47 other signed permutations. The mtan ``.npy`` normals are "directly extracted" from
the same release (lorenmt/mtan#10); see docs/data.md for the NYUD_MT evidence."""


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
    #: ``"inverse_depth"`` (mtan Cityscapes); put in ``meta["target"]`` when not ``"depth"``, where
    #: zoom augmentation reads it (the ``disparity`` task carries its meaning itself and needs no flag)
    depth_target: str = "depth"
    #: the colour range (metres) of depth in prediction panels: one range for the whole dataset,
    #: so that panels of different images compare (None: each panel uses its own GT's range)
    depth_display_range: ClassVar[tuple[float, float] | None] = None

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

    def _tasks_from_entries(
        self, tasks: Iterable[str] | None, entries: Sequence[Mapping[str, Any]], candidates: Sequence[str]
    ) -> None:
        """:meth:`_setup_tasks` with the tasks that at least one entry has a label for."""
        present = {t for e in entries for t in candidates if e.get(t) is not None}
        self._setup_tasks(tasks, [t for t in candidates if t in present])

    def _listed_files_exist(self, files: Mapping[str, Path | None], where: str) -> bool:
        """Record a problem for every listed file that is missing; True when none is."""
        missing = [(what, p) for what, p in files.items() if p is not None and not p.is_file()]
        for what, path in missing:
            self._problem(path, f"{what} file listed in {where} is missing")
        return not missing

    def _pair(
        self,
        images: Mapping[str, Path],
        labels: Mapping[str, Mapping[str, Path]],
        required: Iterable[str] = (),
        expected: Callable[[str, str], Path] | None = None,
        orphans: str | Path | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Pair images ``{id: path}`` with label files ``{task: {id: path}}`` found on disk.

        A ``required`` task without a file is a problem (at ``expected(task, id)``) and drops the
        image; other tasks are simply absent (``None``). With ``orphans`` (the image folder, for the
        message), label files whose id has no image are problems too.
        """
        required = set(required)
        pairs = []
        for sample_id, image in images.items():
            entry: dict[str, Any] = {"image": image}
            complete = True
            for task, found in labels.items():
                entry[task] = found.get(sample_id)
                if entry[task] is None and task in required:
                    where = expected(task, sample_id) if expected else image
                    self._problem(where, f"{task} file for {image.name} is missing")
                    complete = False
            if complete:
                pairs.append((sample_id, entry))
        if orphans is not None:
            for task, found in labels.items():
                for sample_id, path in found.items():
                    if sample_id not in images:
                        self._problem(path, f"{task} file has no image in {orphans}")
        return pairs

    def _read_entry(
        self,
        entry: Mapping[str, Any],
        readers: Mapping[str, Callable[[Any], np.ndarray]],
        read_image: Callable[[Path], np.ndarray] = io.read_image,
    ) -> dict[str, Any]:
        """The raw dict of :meth:`_load` for ``entry`` ({"image": path, task: path or None, ...}):
        the image, and each task of :attr:`tasks` the entry has a file for, read by ``readers[task]``."""
        image = entry["image"]
        raw: dict[str, Any] = {"rgb": read_image(image), "rgb_path": str(image), "paths": {}}
        for task in self.tasks:
            source = entry.get(task)
            if source is None:
                continue
            raw[task] = readers[task](source)
            raw["paths"][task] = str(source)
        return raw

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
        if task in ("depth", "disparity"):  # one float channel, finite and >= 0 (0 = invalid)
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


@contextmanager
def open_mat73(path: Path) -> Iterator[Any]:
    """Open a MATLAB v7.3 file (HDF5) with h5py; a missing file or another format is a DataError."""
    import h5py

    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, f"not a MATLAB v7.3 (HDF5) file or corrupt ({exc})") from None
    with handle:
        yield handle


def load_mat(path: Path, names: Sequence[str], what: str) -> dict[str, Any]:
    """Variables ``names`` of a MATLAB file (v5/v7 with scipy, v7.3 numeric arrays with h5py);
    ``what`` names the file in the messages, e.g. ``"splits.mat"``. All names must be present."""
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        import scipy.io

        mat = scipy.io.loadmat(str(path), variable_names=list(names), squeeze_me=True, struct_as_record=False)
        found = {k: mat[k] for k in names if k in mat}
    except NotImplementedError:  # a v7.3 (HDF5) file
        with open_mat73(path) as handle:
            found = {k: np.squeeze(np.asarray(handle[k])) for k in names if k in handle}
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(path, f"cannot read MATLAB file ({exc.__class__.__name__}: {exc})") from None
    if set(found) != set(names):
        raise DataError(path, f"expected variables {', '.join(repr(n) for n in names)} in {what}")
    return found


class LazyHDF5:
    """An HDF5 (MATLAB v7.3) file opened on first use and re-opened in each DataLoader worker.

    h5py handles must not cross a fork, and cannot be pickled for spawned workers: the handle is
    dropped when pickled and re-opened when the process id changes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: Any = None
        self._pid = -1

    def get(self) -> Any:
        import h5py

        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_handle": None, "_pid": -1}


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
