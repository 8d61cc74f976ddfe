"""NYU Depth v2 (Silberman et al., "Indoor Segmentation and Support Inference from RGBD Images", ECCV 2012).

Two loaders live here:

``nyuv2``
    The official labelled set ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read lazily with
    h5py) with the official ``splits.mat`` (``trainNdxs`` 795 / ``testNdxs`` 654, 1-based frame
    indices). h5py sees MATLAB's column-major arrays transposed: ``images`` is
    (1449, 3, 640, 480) and ``depths`` / ``labels`` are (1449, 640, 480), so frame ``i`` is
    ``images[i].transpose(2, 1, 0)`` -> [480, 640, 3]. ``depths`` are metres (in-painted);
    ``labels`` hold 894 raw class ids (0 = unlabelled) which are mapped to the 40 classes of
    Gupta et al. ("Perceptual Organization and Recognition of Indoor Scenes from RGB-D Images",
    CVPR 2013; ``classMapping40.mat``) and optionally on to the 13 classes of Couprie et al.
    ("Indoor Semantic Segmentation using depth information", ICLR 2013; ``class13Mapping.mat``).
``nyuv2_list``
    The list format of DenseTorch / Light-Weight RefineNet / multi-task-refinenet (Nekrasov et
    al., "Real-Time Joint Semantic Segmentation and Depth Estimation Using Asymmetric
    Annotations", ICRA 2019): a text file of ``image<TAB>segm[<TAB>depth[<TAB>normals]]`` paths
    relative to ``root``; segm PNGs hold 0..39 / 255 (palette indices), depth PNGs uint16 metres x
    5000, normals RGB PNGs ``(n + 1) * 127.5`` in the axes of Eigen & Fergus' ``normals_gt`` (x
    right, y away from the camera, z up; grey (127, 127, 127) = invalid), converted here to OpenCV
    camera axes.

The mapping tables are shipped below as constants (verified against the ``.mat`` files in the
tests), so neither ``classMapping40.mat`` nor ``class13Mapping.mat`` is needed at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import (
    EIGEN_NORMALS_AXES,
    LazyHDF5,
    RealDataset,
    Transform,
    apply_normals_axes,
    iter_list_file,
    load_mat,
    map_ids,
    open_mat73,
)
from densemtl.data.datasets.folder import default_palette
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

NYU40_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip
"""The 40 classes of Gupta et al. in id order 0..39 (``classMapping40.mat`` ``className``; the
misspelling "refridgerator" is the dataset's own)."""

NYU13_CLASS_NAMES: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)  # fmt: skip
"""The 13 classes of Couprie et al. in id order 0..12 (``class13Mapping.mat`` ``classNames``)."""

MAP_40_TO_13: tuple[int, ...] = (
    11, 4, 5, 0, 3, 8, 9, 11, 12, 5, 7, 5, 12, 9, 5, 12, 5, 6, 6, 4,
    6, 2, 1, 5, 10, 6, 6, 6, 6, 6, 6, 5, 6, 6, 6, 6, 6, 6, 5, 6,
)  # fmt: skip
"""0-based 40-class id -> 0-based 13-class id (``class13Mapping.mat`` ``labels13`` minus one)."""

NYU40_COLORS: list[list[int]] = default_palette(40)
NYU13_COLORS: list[list[int]] = default_palette(13)

NYU_INTRINSICS: tuple[float, float, float, float] = (518.857901, 519.469611, 325.582449, 253.736166)
"""Kinect colour camera (fx, fy, cx, cy) at 640x480, from the NYU toolbox ``camera_params.m``."""

NYU_NUM_RAW_CLASSES = 894

MAP_894_TO_40: tuple[int, ...] = (
    40, 40, 3, 22, 5, 40, 12, 38, 40, 40, 2, 39, 40, 40, 26, 40, 24, 40, 7, 40, 1, 40, 40, 34, 38,
    29, 40, 8, 40, 40, 40, 40, 38, 40, 40, 14, 40, 38, 40, 40, 40, 15, 39, 40, 30, 40, 40, 39, 40,
    39, 38, 40, 38, 40, 37, 40, 38, 38, 9, 40, 40, 38, 40, 11, 38, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 38, 13, 40, 40, 6, 40, 23, 40, 39, 10, 16, 40, 40, 40, 40, 38, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 38, 40, 39, 40, 40, 40, 40, 39, 38, 40, 40, 40, 40, 40, 40, 18, 40, 40,
    19, 28, 33, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 27, 36, 40, 40, 40, 40, 21, 40, 20, 35, 40,
    40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 4, 32, 40, 40, 39, 40, 39, 40, 40, 40, 40, 40, 17,
    40, 40, 25, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 38, 38, 40,
    40, 39, 40, 39, 40, 38, 39, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 38, 40, 40, 38,
    38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 39, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 39, 40, 40, 40, 38, 40, 40, 39, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 31, 40, 40, 40, 40, 40, 40,
    40, 38, 40, 40, 38, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 39, 40, 40, 39, 40, 40,
    40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 38, 39, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 38, 39, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 38, 40,
    40, 40, 38, 40, 39, 40, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 39, 40, 40, 39, 39, 40, 40, 40, 40, 38, 40, 40, 38, 39,
    39, 40, 39, 40, 39, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 38, 40, 39, 40, 40,
    40, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 39, 39, 40, 40, 38, 39, 39, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 39, 39, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 39, 40, 40, 39, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 38, 40, 40, 40, 40, 40, 40, 40, 39, 38, 39, 40, 38,
    39, 40, 39, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 38, 40, 40, 39, 40,
    40, 40, 39, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 39, 38, 40, 40, 38, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 38, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 38, 38, 38, 40, 40, 40, 38, 40, 40, 40, 38, 38, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 38, 40, 38, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    39, 40, 39, 40, 40, 40, 40, 38, 38, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 39, 40, 40, 39, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 39, 39, 40, 40,
    40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 38, 40, 39, 40, 40,
    40, 40, 38, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 39, 40, 40
)  # fmt: skip
"""Raw NYU class id ``k`` (1..894) -> 1-based 40-class id ``MAP_894_TO_40[k - 1]``
(``classMapping40.mat`` ``mapClass``); raw 0 = unlabelled."""

_LUT_RAW_TO_40 = np.array((IGNORE_INDEX, *(c - 1 for c in MAP_894_TO_40)), dtype=np.int64)
_LUT_40_TO_13 = np.full(256, -1, dtype=np.int64)
_LUT_40_TO_13[:40] = MAP_40_TO_13
_LUT_40_TO_13[IGNORE_INDEX] = IGNORE_INDEX

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def map_40_to_13(labels: ArrayOrTensor) -> ArrayOrTensor:
    """Map 0-based NYU-40 ids to 0-based NYU-13 ids; 255 (ignore) is kept.

    Accepts a numpy array or a torch tensor of any integer dtype and returns the same type
    (int64). Ids outside 0..39 other than 255 raise ``ValueError``.
    """
    array = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    array = array.astype(np.int64)
    bad = ((array < 0) | (array > 255)) | (_LUT_40_TO_13[np.clip(array, 0, 255)] < 0)
    if bad.any():
        raise ValueError(
            f"NYU-40 ids must be 0..39 or {IGNORE_INDEX}, got {sorted(set(np.unique(array[bad]).tolist()))[:6]}"
        )
    out = _LUT_40_TO_13[array]
    if isinstance(labels, torch.Tensor):
        return torch.from_numpy(out).to(labels.device)
    return out


def nyu_classes(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Class names and colours of the 40- or 13-class NYU label set."""
    if num_classes == 40:
        return list(NYU40_CLASS_NAMES), [list(c) for c in NYU40_COLORS]
    if num_classes == 13:
        return list(NYU13_CLASS_NAMES), [list(c) for c in NYU13_COLORS]
    raise ValueError(f"NYUv2 supports num_classes=40 or 13, got {num_classes}")


def from_nyu40(labels40: np.ndarray, num_classes: int) -> np.ndarray:
    """0-based 40-class ids (255 ignore) -> the requested label set."""
    return labels40 if num_classes == 40 else map_40_to_13(labels40)


def _read_splits_mat(path: Path) -> dict[str, list[int]]:
    """``splits.mat`` -> {"train": [0-based indices], "test": [...]}, from the 1-based arrays."""
    arrays = load_mat(path, ("trainNdxs", "testNdxs"), "splits.mat")
    return {
        "train": [int(i) - 1 for i in np.ravel(arrays["trainNdxs"])],
        "test": [int(i) - 1 for i in np.ravel(arrays["testNdxs"])],
    }


@DATASETS.register("nyuv2")
class NYUv2(RealDataset):
    """The official labelled NYU Depth v2 set, read lazily from ``nyu_depth_v2_labeled.mat``.

    Layout: ``root/nyu_depth_v2_labeled.mat`` and ``root/splits.mat`` (other names via
    ``mat_file`` / ``splits_file``). Splits: ``train`` (795), ``test`` (654; ``val`` is an alias,
    as in most multi-task codebases), ``None`` / ``"all"`` (1449). Sample ids are the 1-based
    frame numbers, zero-padded to 6 digits (``000464``), as in the multi-task-refinenet examples.

    Args:
        num_classes: 40 (Gupta et al.) or 13 (Couprie et al.).
        mat_file, splits_file: paths, relative to ``root`` unless absolute.
    """

    name = "nyuv2"
    depth_display_range = (0.0, 10.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 795, "test": 654}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 40,
        mat_file: str | Path = "nyu_depth_v2_labeled.mat",
        splits_file: str | Path = "splits.mat",
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names, self.class_colors = nyu_classes(num_classes)
        self._num_classes = num_classes
        self.mat_path = self.root / mat_file
        self._mat = LazyHDF5(self.mat_path)
        self._setup_tasks(tasks, ("semseg", "depth"))
        count = self._inspect()
        if split in (None, "all"):
            indices = list(range(count))
        else:
            key = "test" if split == "val" else split
            if key not in ("train", "test"):
                raise DataError(
                    self.root, f"unknown NYUv2 split {split!r}; use train, test (alias val) or all"
                )
            indices = _read_splits_mat(self.root / splits_file)[key]
            beyond = [i + 1 for i in indices if not 0 <= i < count]
            if beyond:
                raise DataError(
                    self.root / splits_file,
                    f"frame numbers {beyond[:5]} exceed the {count} frames in {self.mat_path.name}",
                )
        self.indices = indices
        self.ids = [f"{i + 1:06d}" for i in indices]
        self._finish_index()

    def _inspect(self) -> int:
        with open_mat73(self.mat_path) as handle:
            shapes = {k: handle[k].shape for k in ("images", "depths", "labels") if k in handle}
        for key in ("images", "depths", "labels"):
            if key not in shapes:
                raise DataError(self.mat_path, f"variable {key!r} not found")
        count = shapes["images"][0]
        if len(shapes["images"]) != 4 or shapes["images"][1] != 3:
            raise DataError(
                self.mat_path, f"'images' must be (N, 3, W, H) in HDF5 order, got {shapes['images']}"
            )
        for key in ("depths", "labels"):
            if shapes[key] != (count, *shapes["images"][2:]):
                raise DataError(
                    self.mat_path, f"{key!r} shape {shapes[key]} does not match images {shapes['images']}"
                )
        return count

    def _load(self, index: int) -> dict[str, Any]:
        frame = self.indices[index]
        handle = self._mat.get()
        where = f"{self.mat_path}:{{}}[{frame}]"
        try:
            rgb = np.asarray(handle["images"][frame]).transpose(2, 1, 0)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(where.format("images"), f"cannot read ({exc})") from None
        raw: dict[str, Any] = {
            "rgb": np.ascontiguousarray(rgb, dtype=np.uint8),
            "rgb_path": where.format("images"),
            "paths": {},
        }
        if rgb.shape[:2] == (480, 640):
            raw["intrinsics"] = NYU_INTRINSICS
        if "depth" in self.tasks:
            path = where.format("depths")
            try:
                depth = np.asarray(handle["depths"][frame], dtype=np.float32).T
            except (OSError, ValueError) as exc:
                raise DataError(path, f"cannot read ({exc})") from None
            raw["depth"], raw["paths"]["depth"] = np.ascontiguousarray(depth), path
        if "semseg" in self.tasks:
            path = where.format("labels")
            try:
                labels = np.asarray(handle["labels"][frame]).T.astype(np.int64)
            except (OSError, ValueError) as exc:
                raise DataError(path, f"cannot read ({exc})") from None
            labels40 = map_ids(labels, _LUT_RAW_TO_40, path, f"the {NYU_NUM_RAW_CLASSES} NYU raw classes")
            raw["semseg"], raw["paths"]["semseg"] = from_nyu40(labels40, self._num_classes), path
        return raw


def _find_list_file(root: Path, split: str) -> Path:
    names = [f"{split}.nyu", f"{split}.txt", f"{split}_list.txt", f"{split}.lst"]
    if split == "test":
        names += ["val.nyu", "val.txt"]
    for folder in (root, root / "data", root / "lists"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return root / names[0]


@DATASETS.register("nyuv2_list")
class NYUv2List(RealDataset):
    """NYUDv2 in the DenseTorch / Light-Weight RefineNet list format (Nekrasov et al.).

    ``root/<split>.nyu`` (also ``<split>.txt``, or under ``data/``; or ``list_file``) lists one
    sample per line: ``image<TAB>segm[<TAB>depth[<TAB>normals]]`` (whitespace also accepted),
    paths relative to ``root``; ``-`` marks a missing label. LW-RefineNet ships ``train.nyu``
    (795 lines) and ``val.nyu`` (654, the official test frames) with two columns.

    Args:
        num_classes: 40 or 13 (the segm PNGs always hold 40-class ids 0..39, 255 = ignore).
        depth_scale: depth PNG value per metre (5000 in DenseTorch / multi-task-refinenet).
        normals_axes: how the stored normals map to OpenCV axes (see
            :func:`~densemtl.data.datasets.base.parse_normals_axes`); the default is the axes of
            Eigen & Fergus' ``normals_gt``, which multi-task-refinenet's ``norm_gt_*.png`` are
            (:data:`~densemtl.data.datasets.base.EIGEN_NORMALS_AXES`).
    """

    name = "nyuv2_list"
    depth_display_range = (0.0, 10.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 795, "val": 654}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        list_file: str | Path | None = None,
        num_classes: int = 40,
        depth_scale: float = 5000.0,
        normals_axes: str = EIGEN_NORMALS_AXES,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names, self.class_colors = nyu_classes(num_classes)
        self._num_classes = num_classes
        self.depth_scale = float(depth_scale)
        self.normals_axes = normals_axes
        self.list_file = (
            self.root / list_file if list_file is not None else _find_list_file(self.root, split or "train")
        )
        columns = ("image", "semseg", "depth", "normals")
        self.entries: list[dict[str, Path | None]] = []
        seen: set[str] = set()
        for number, files in iter_list_file(self.list_file, self.root, columns):
            if not self._listed_files_exist(files, f"{self.list_file.name} (line {number})"):
                continue
            image = files["image"]
            assert image is not None
            rel = image.relative_to(self.root) if image.is_relative_to(self.root) else image
            sample_id = image.stem if image.stem not in seen else str(rel.with_suffix(""))
            seen.add(sample_id)
            self.ids.append(sample_id)
            self.entries.append(files)
        self._tasks_from_entries(tasks, self.entries, columns[1:])
        self._finish_index()

    def _read_labels(self, path: Path) -> np.ndarray:
        labels = io.read_label_png(path)
        bad = ((labels < 0) | (labels >= 40)) & (labels != IGNORE_INDEX)
        if bad.any():
            raise DataError(
                path, f"label ids {sorted(np.unique(labels[bad]).tolist())[:6]} outside the 40 NYU classes"
            )
        return from_nyu40(labels, self._num_classes)

    def _load(self, index: int) -> dict[str, Any]:
        raw = self._read_entry(
            self.entries[index],
            {
                "semseg": self._read_labels,
                "depth": lambda path: io.read_depth_png(path, self.depth_scale),
                "normals": lambda path: apply_normals_axes(io.read_normals(path), self.normals_axes),
            },
        )
        if raw["rgb"].shape[:2] == (480, 640):
            raw["intrinsics"] = NYU_INTRINSICS
        return raw
