"""The preprocessed ``.npy`` datasets of mtan (Liu et al., "End-to-End Multi-Task Learning with
Attention", CVPR 2019), also used by LibMTL, auto-lambda, CAGrad and Nash-MTL.

``nyuv2_mtan``  (NYUv2-13, 288x384)::

    root/{train,val}/image/<i>.npy    float [H, W, 3] in [0, 1]
    root/{train,val}/label/<i>.npy    float [H, W], 13 classes 0..12, -1 = ignore
    root/{train,val}/depth/<i>.npy    float [H, W, 1] metres, 0 = invalid
    root/{train,val}/normal/<i>.npy   float [H, W, 3] unit normals (Eigen & Fergus), 0 = invalid

``train`` has 795 samples and ``val`` 654 (the official NYUv2 test frames; ``test`` is an
alias). The 13 classes are those of Couprie et al. in the order of
:data:`densemtl.data.datasets.nyuv2.NYU13_CLASS_NAMES`. The normals were "directly extracted" from Eigen &
Fergus' ``normals_gt`` (lorenmt/mtan#10; the grey border of its invalid window cropped, #42), so
they are read in its axes (x right, y away from the camera, z up;
:data:`~densemtl.data.datasets.base.EIGEN_NORMALS_AXES`) and returned in OpenCV camera axes; mtan's own
horizontal flip negates channel 0 only, consistent with channel 0 = x. ``normals_axes``
overrides it (``"x,y,z"`` keeps the stored vectors).

``cityscapes_mtan``  (128x256 or 256x512)::

    root/{train,val}/image/<i>.npy                     float [H, W, 3] in [0, 1]
    root/{train,val}/label_7|label_19/<i>.npy          float [H, W], -1 = ignore
    root/{train,val}/depth/<i>.npy                     float [H, W, 1], 0 = invalid

(2975 / 500 samples). LibMTL renames ``label_7`` to ``label``; both are accepted for 7 classes.
Its "depth" is **not metres**: it is a scaled inverse depth (disparity, range about 0..0.49; mtan
issues #15 and #25). Asking for the ``disparity`` task returns it under the ``disparity`` key
(:mod:`densemtl.tasks.disparity`), in its stored units (there is no camera file, so no depth
through the camera). Otherwise, as before, it is returned as ``depth`` with
``meta["target"] == "inverse_depth"``, which zoom augmentation reads (it multiplies instead of
divides) and ``densemtl data convert`` uses to skip it; metric-depth losses and metrics do not. The 7 classes are assumed to be the
Cityscapes categories in ``categoryId`` order (mtan's preprocessing code is not published).
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
    files_by_id,
    float_labels_to_ids,
)
from densemtl.data.datasets.cityscapes import cityscapes_classes
from densemtl.data.datasets.nyuv2 import NYU13_CLASS_NAMES, NYU13_COLORS
from densemtl.errors import DataError


class _MtanNpy(RealDataset):
    """Shared indexing of ``root/<split>/<folder>/<i>.npy``."""

    folders: ClassVar[dict[str, str]] = {}
    normals_axes = EIGEN_NORMALS_AXES

    def _index(self, split: str | None, tasks: Iterable[str] | None) -> None:
        if split is None:
            raise DataError(self.root, f"{self.name} needs a split: train or val")
        folder_split = "val" if split == "test" else split
        self.split_dir = self.root / folder_split
        image_dir = self.split_dir / "image"
        if not image_dir.is_dir():
            raise DataError(image_dir, "folder not found (expected root/<split>/image/<i>.npy)")
        available = [t for t, f in self.folders.items() if (self.split_dir / f).is_dir()]
        self._setup_tasks(tasks, available)
        found = files_by_id(image_dir, suffixes=(".npy",))
        images = {i: found[i] for i in sorted(found, key=lambda s: (len(s), s))}  # 0, 1, ..., 10
        labels = {t: files_by_id(self.split_dir / self.folders[t], suffixes=(".npy",)) for t in self.tasks}
        pairs = self._pair(
            images,
            labels,
            required=self.tasks,
            expected=lambda task, i: self.split_dir / self.folders[task] / f"{i}.npy",
            orphans=image_dir,
        )
        self.entries = [entry for _, entry in pairs]
        self.ids = [f"{folder_split}_{i}" for i, _ in pairs]
        self._finish_index()

    def _load(self, index: int) -> dict[str, Any]:
        return self._read_entry(
            self.entries[index],
            {
                "semseg": lambda path: float_labels_to_ids(io.read_npy(path, "label"), path),
                "depth": io.read_depth_npy,
                "disparity": io.read_depth_npy,
                "normals": lambda path: apply_normals_axes(io.read_normals(path), self.normals_axes),
            },
            read_image=_read_float_image,
        )


def _read_float_image(path: Path) -> np.ndarray:
    rgb = io.read_npy(path, "image").astype(np.float32)
    if rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.shape[-1] != 3:
        rgb = rgb.transpose(1, 2, 0)
    return rgb


@DATASETS.register("nyuv2_mtan")
class NYUv2Mtan(_MtanNpy):
    """mtan's preprocessed NYUv2-13 (see the module docstring).

    Args:
        normals_axes: OpenCV components as stored components (default ``normals_gt``'s ``"x,-z,y"``).
    """

    name = "nyuv2_mtan"
    depth_display_range = (0.0, 10.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 795, "val": 654}
    folders: ClassVar[dict[str, str]] = {"semseg": "label", "depth": "depth", "normals": "normal"}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        normals_axes: str = EIGEN_NORMALS_AXES,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names = list(NYU13_CLASS_NAMES)
        self.class_colors = [list(c) for c in NYU13_COLORS]
        self.normals_axes = normals_axes
        self._index(split, tasks)


@DATASETS.register("cityscapes_mtan")
class CityscapesMtan(_MtanNpy):
    """mtan's preprocessed Cityscapes; its ``depth`` folder is scaled inverse depth, returned as the
    ``disparity`` task on request, else as ``depth`` (see the module docstring).

    Args:
        num_classes: 7 (``label_7``, or LibMTL's ``label``) or 19 (``label_19``).
    """

    name = "cityscapes_mtan"
    split_sizes: ClassVar[dict[str, int]] = {"train": 2975, "val": 500}
    depth_target = "inverse_depth"

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 7,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names, self.class_colors = cityscapes_classes(num_classes)
        folder_split = "val" if split == "test" else str(split)
        label = f"label_{num_classes}"
        if (
            num_classes == 7
            and not (self.root / folder_split / label).is_dir()
            and (self.root / folder_split / "label").is_dir()
        ):
            label = "label"
        self.folders = {"semseg": label, "depth": "depth"}
        if tasks is not None:  # only on request: by default the folder gives depth, as before
            self.folders["disparity"] = "depth"
        self._index(split, tasks)
