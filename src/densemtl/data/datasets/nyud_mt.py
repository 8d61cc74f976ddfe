"""NYUD-v2 in the ``NYUD_MT`` folder format of Multi-Task-Learning-PyTorch (Vandenhende et al.,
"Multi-Task Learning for Dense Prediction Tasks: A Survey", TPAMI 2021), also the layout of the
ATRC / InvPT ``NYUDv2`` release.

::

    root/images/<id>.jpg|png          RGB (480x640 in NYUD_MT, 425x560 in the ATRC/InvPT release)
    root/segmentation/<id>.png        0 = void (-> 255), 1..40 -> classes 0..39
    root/depth/<id>.npy               float metres, 0 = invalid
    root/normals/<id>.npy|png         float unit normals, or PNG ``2 * x / 255 - 1``
    root/gt_sets/{train,val}.txt      one id per line (795 / 654; "val" = the official test set)

(``edge/`` is ignored.) The normals are not documented upstream; they are read as Eigen & Fergus'
NYU ``normals_gt`` axes (x right, y away from the camera, z up; :data:`EIGEN_NORMALS_AXES`) and
returned in OpenCV camera axes. Evidence (docs/data.md): Multi-Task-Learning-PyTorch / ASTMT
negate only channel 0 on a horizontal flip (channel 0 = x), and the ATRC/InvPT release of the same
data is cropped to 425x560, i.e. to the valid window (rows 44-470, cols 40-600) of ``normals_gt``.
``normals_axes`` overrides it; ``densemtl data check`` reports the share facing the camera.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import (
    EIGEN_NORMALS_AXES,
    RealDataset,
    Transform,
    apply_normals_axes,
    build_lut,
    find_with_suffix,
    map_ids,
    read_lines,
)
from densemtl.data.datasets.nyuv2 import NYU_INTRINSICS, from_nyu40, nyu_classes
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

#: segmentation PNG value (0 = void, 1..40) -> 0-based class id / 255
_LUT_SEG = build_lut({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 41)}})

_FOLDERS = {
    "semseg": ("segmentation", (".png",)),
    "depth": ("depth", (".npy",)),
    "normals": ("normals", (".npy", ".png")),
}


@DATASETS.register("nyud_mt")
class NYUDMT(RealDataset):
    """NYUD_MT (Multi-Task-Learning-PyTorch) / ATRC-InvPT NYUDv2 folders (see the module docstring).

    Args:
        num_classes: 40 or 13.
        normals_axes: OpenCV components as stored components (default: ``normals_gt``'s
            ``"x,-z,y"``; ``"x,y,z"`` keeps the stored vectors).
    """

    name = "nyud_mt"
    depth_display_range = (0.0, 10.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 795, "val": 654}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 40,
        normals_axes: str = EIGEN_NORMALS_AXES,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names, self.class_colors = nyu_classes(num_classes)
        self._num_classes = num_classes
        self.normals_axes = normals_axes
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise DataError(image_dir, "folder not found (expected root/images/<id>.jpg)")
        available = [t for t, (folder, _) in _FOLDERS.items() if (self.root / folder).is_dir()]
        self._setup_tasks(tasks, available)
        if split is None:
            names = sorted(p.stem for p in image_dir.iterdir() if p.suffix.lower() in io.IMAGE_SUFFIXES)
        else:
            key = "val" if split == "test" else split
            split_file = self.root / "gt_sets" / f"{key}.txt"
            if not split_file.is_file():
                raise DataError(
                    split_file, "split file not found (NYUD_MT ships gt_sets/train.txt and gt_sets/val.txt)"
                )
            names = read_lines(split_file, "split file")
        images: dict[str, Path] = {}
        for name in names:
            image = find_with_suffix(image_dir, name, (".jpg", ".png", ".jpeg"))
            if image is None:
                self._problem(image_dir / f"{name}.jpg", "image listed in the split is missing")
            else:
                images[name] = image
        labels = {}
        for task in self.tasks:
            folder, suffixes = _FOLDERS[task]
            found = {n: find_with_suffix(self.root / folder, n, suffixes) for n in images}
            labels[task] = {n: path for n, path in found.items() if path is not None}
        pairs = self._pair(
            images,
            labels,
            required=self.tasks,
            expected=lambda task, n: self.root / _FOLDERS[task][0] / f"{n}{_FOLDERS[task][1][0]}",
        )
        self.entries = [entry for _, entry in pairs]
        self.ids = [n for n, _ in pairs]
        self._finish_index()

    def _read_labels(self, path: Path) -> np.ndarray:
        labels = map_ids(io.read_label_png(path), _LUT_SEG, path, "NYUD_MT ids 0..40 (0 = void)")
        return from_nyu40(labels, self._num_classes)

    def _load(self, index: int) -> dict[str, Any]:
        raw = self._read_entry(
            self.entries[index],
            {
                "semseg": self._read_labels,
                "depth": io.read_depth_npy,
                "normals": lambda path: apply_normals_axes(io.read_normals(path), self.normals_axes),
            },
        )
        if raw["rgb"].shape[:2] == (480, 640):
            raw["intrinsics"] = NYU_INTRINSICS
        return raw
