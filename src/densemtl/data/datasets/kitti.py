"""KITTI (Geiger et al., "Vision meets Robotics: The KITTI Dataset", IJRR 2013).

``kitti`` covers depth (Uhrig et al., "Sparsity Invariant CNNs", 3DV 2017: the depth benchmark's
projected-LiDAR PNGs, uint16, metres = value / 256, 0 = invalid, ~16 % of pixels valid) and the
6-class colour-coded segmentation used by multi-task-refinenet (Nekrasov et al., ICRA 2019;
classes sky, building, road, sidewalk, vegetation, car on the CamVid colours of
:data:`KITTI6_PALETTE`, black = void). Most frames carry depth only: such a sample simply lacks
``semseg`` (the asymmetric-annotation case). Layouts:

1. depth benchmark (``data_depth_annotated.zip`` + KITTI raw; ``layout="benchmark"``)::

       root/{train,val}/<drive>/proj_depth/groundtruth/image_0{2,3}/<frame>.png
       raw_root/<date>/<drive>/image_0{2,3}/data/<frame>.png        (raw_root defaults to root/raw or root)
       raw_root/<date>/calib_cam_to_cam.txt                           (intrinsics from P_rect_0{2,3}; optional)

   and the selection split ``val_selection_cropped`` (1000 frames)::

       root/depth_selection/val_selection_cropped/{image,groundtruth_depth,intrinsics}/...

2. list files (``layout="list"``, DenseTorch column order) ``root/<split>.txt``::

       image<TAB>segm<TAB>depth          paths relative to root, "-" = no such label

   segm PNGs are colour-coded (KITTI-6 palette) and depth PNGs uint16 / 256.

3. a plain folder in the naming of multi-task-refinenet's ``examples/ExpKITTI_joint``
   (``layout="folder"``; chosen when the folder holds ``segm_gt_*.png`` or ``depth_gt_*.png``)::

       root/[<split>/]<id>.png              RGB            (root/<split>/ when it exists, else root/)
       root/[<split>/]segm_gt_<id>.png      KITTI-6 colour-coded labels       (optional per frame)
       root/[<split>/]depth_gt_<id>.png     depth-benchmark PNG, uint16 / 256  (optional per frame)

   Every image is a sample; one without ``segm_gt_`` simply lacks ``semseg`` and one without
   ``depth_gt_`` lacks ``depth``. A label file without its image is a missing pair.

``kitti_semantics`` is KITTI's semantic benchmark (Alhaija et al., "Augmented Reality Meets
Computer Vision", IJCV 2018): ``root/training/{image_2,semantic}/<id>_10.png`` (200 frames,
Cityscapes labelIds mapped to 19 trainIds or 7 categories as in :mod:`densemtl.data.datasets.cityscapes`)
and ``root/testing/image_2`` (200, unlabelled). It has no depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import (
    RealDataset,
    Transform,
    files_by_id,
    iter_list_file,
    read_matrix_txt,
)
from densemtl.data.datasets.cityscapes import cityscapes_classes, label_id_lut, read_label_ids
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

KITTI6_CLASS_NAMES: tuple[str, ...] = ("sky", "building", "road", "sidewalk", "vegetation", "car")
KITTI6_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (128, 64, 128), (0, 0, 192), (128, 128, 0), (64, 0, 128), (0, 0, 0),
)  # fmt: skip
"""Colour of classes 0..5 and, last, of void (multi-task-refinenet ``cmap_kitti.npy``, 7x3)."""

KITTI_DEPTH_SCALE = 256.0


def decode_color_labels(rgb: np.ndarray, palette: Sequence[Sequence[int]], path: str | Path) -> np.ndarray:
    """Colour-coded label image [H, W, 3] -> ids; the palette's last colour is void (-> 255).

    A colour outside the palette is a DataError naming ``path`` (e.g. a JPEG-compressed label).
    """
    rgb = np.asarray(rgb, dtype=np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(code.shape, -1, dtype=np.int64)
    for index, color in enumerate(palette):
        value = (int(color[0]) << 16) | (int(color[1]) << 8) | int(color[2])
        out[code == value] = IGNORE_INDEX if index == len(palette) - 1 else index
    if (out < 0).any():
        bad = np.unique(code[out < 0])[:4]
        colors = [((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255) for c in bad]
        raise DataError(
            path, f"{int((out < 0).sum())} pixels have colours outside the palette, e.g. {colors}"
        )
    return out


def read_calib_intrinsics(path: str | Path, camera: str) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of ``image_0X`` from KITTI raw's ``calib_cam_to_cam.txt`` (``P_rect_0X``)."""
    path = Path(path)
    key = f"P_rect_{camera[-2:]}:"
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                p = np.array(line[len(key) :].split(), dtype=np.float64).reshape(3, 4)
                return float(p[0, 0]), float(p[1, 1]), float(p[0, 2]), float(p[1, 2])
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot parse {key[:-1]} ({exc.__class__.__name__})") from None
    raise DataError(path, f"{key[:-1]} not found")


def read_kitti6_labels(path: Path) -> np.ndarray:
    """A KITTI-6 colour-coded label PNG -> ids 0..5 / 255 (void)."""
    return decode_color_labels(io.read_image(path), KITTI6_PALETTE, path)


_KITTI_READERS = {
    "semseg": read_kitti6_labels,
    "depth": lambda path: io.read_depth_png(path, KITTI_DEPTH_SCALE),
}
_FOLDER_PREFIXES = {"semseg": "segm_gt_", "depth": "depth_gt_"}
# label files of the authors' examples folders (norm_gt_: the NYUD 3-task examples' normals)
_LABEL_PREFIXES = ("segm_gt_", "depth_gt_", "norm_gt_")


@DATASETS.register("kitti")
class KITTI(RealDataset):
    """KITTI depth benchmark and KITTI-6 segmentation (see the module docstring for the layouts).

    Args:
        layout: ``"auto"`` (list when ``root/<split>.txt`` exists, else folder when the folder
            holds ``segm_gt_*.png`` / ``depth_gt_*.png``, else benchmark), ``"benchmark"``,
            ``"list"`` or ``"folder"``.
        raw_root: KITTI raw root for the benchmark layout (default ``root/raw`` if present, else ``root``).
        cameras: which cameras of the benchmark layout to use.
        list_file: list file for the list layout (default ``root/<split>.txt``).
    """

    name = "kitti"
    depth_display_range = (0.0, 80.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 85898, "val": 6852, "val_selection_cropped": 1000}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        layout: str = "auto",
        raw_root: str | Path | None = None,
        cameras: Sequence[str] = ("image_02", "image_03"),
        list_file: str | Path | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names = list(KITTI6_CLASS_NAMES)
        self.class_colors = [list(c) for c in KITTI6_PALETTE[:-1]]
        self.entries: list[dict[str, Any]] = []
        lst = self.root / (list_file if list_file is not None else f"{split}.txt")
        folder = self.root / split if split is not None and (self.root / split).is_dir() else self.root
        if layout == "auto":
            if list_file is not None or (split is not None and lst.is_file()):
                layout = "list"
            elif any(files_by_id(folder, p) for p in _FOLDER_PREFIXES.values()):
                layout = "folder"
            else:
                layout = "benchmark"
        if layout == "folder":
            self._index_folder(folder)
        elif split is None:
            raise DataError(
                self.root, "KITTI needs a split (train, val, val_selection_cropped or a list file's name)"
            )
        elif layout == "list":
            self._index_list(lst)
        elif layout == "benchmark":
            if raw_root is not None:
                self.raw_root = Path(raw_root)
            else:
                self.raw_root = self.root / "raw" if (self.root / "raw").is_dir() else self.root
            if split == "val_selection_cropped":
                self._index_selection(self.root / "depth_selection" / split)
            else:
                self._index_benchmark(self.root / split, cameras)
        else:
            raise ValueError(f"layout must be 'auto', 'benchmark', 'list' or 'folder', got {layout!r}")
        self.layout = layout
        self._tasks_from_entries(tasks, self.entries, ("semseg", "depth"))
        self._finish_index()

    def _index_list(self, path: Path) -> None:
        for number, files in iter_list_file(path, self.root, ("image", "semseg", "depth")):
            if self._listed_files_exist(files, f"{path.name} (line {number})"):
                image = files["image"]
                assert image is not None
                self.ids.append(image.stem)
                self.entries.append({**files, "intrinsics": None})

    def _index_folder(self, folder: Path) -> None:
        labelled = {task: files_by_id(folder, prefix) for task, prefix in _FOLDER_PREFIXES.items()}
        images = {
            stem: path
            for stem, path in files_by_id(folder, suffixes=io.IMAGE_SUFFIXES).items()
            if not stem.startswith(_LABEL_PREFIXES)
        }
        for sample_id, entry in self._pair(images, labelled, orphans=folder):
            self.ids.append(sample_id)
            self.entries.append({**entry, "intrinsics": None})

    def _index_benchmark(self, split_dir: Path, cameras: Sequence[str]) -> None:
        if not split_dir.is_dir():
            raise DataError(
                split_dir, "folder not found (expected root/<split>/<drive>/proj_depth/groundtruth/image_02/)"
            )
        calib_cache: dict[str, tuple[float, float, float, float] | None] = {}
        for drive_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            drive, date = drive_dir.name, drive_dir.name[:10]
            for camera in cameras:
                gt_dir = drive_dir / "proj_depth" / "groundtruth" / camera
                if not gt_dir.is_dir():
                    continue
                calib = self.raw_root / date / "calib_cam_to_cam.txt"
                key = f"{date}/{camera}"
                if key not in calib_cache:
                    calib_cache[key] = read_calib_intrinsics(calib, camera) if calib.is_file() else None
                for depth in sorted(gt_dir.glob("*.png")):
                    image = self.raw_root / date / drive / camera / "data" / depth.name
                    if not image.is_file():
                        self._problem(image, f"raw image for depth map {depth} is missing")
                        continue
                    self.ids.append(f"{drive}_{camera}_{depth.stem}")
                    self.entries.append(
                        {"image": image, "depth": depth, "semseg": None, "intrinsics": calib_cache[key]}
                    )

    def _index_selection(self, folder: Path) -> None:
        image_dir = folder / "image"
        if not image_dir.is_dir():
            raise DataError(
                image_dir, "folder not found (expected depth_selection/val_selection_cropped/image/)"
            )
        for image in sorted(image_dir.glob("*.png")):
            depth = folder / "groundtruth_depth" / image.name.replace("_image_", "_groundtruth_depth_", 1)
            intr_file = folder / "intrinsics" / f"{image.stem}.txt"
            if not depth.is_file():
                self._problem(depth, f"depth map for {image.name} is missing")
                continue
            intrinsics = None
            if intr_file.is_file():
                k = read_matrix_txt(intr_file, (3, 3))
                intrinsics = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
            self.ids.append(image.stem)
            self.entries.append({"image": image, "depth": depth, "semseg": None, "intrinsics": intrinsics})

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        raw = self._read_entry(entry, _KITTI_READERS)
        raw["intrinsics"] = entry["intrinsics"]
        return raw


@DATASETS.register("kitti_semantics")
class KITTISemantics(RealDataset):
    """KITTI semantic segmentation benchmark (Cityscapes labelIds); see the module docstring.

    Splits: ``train`` (``training/``, 200 labelled) and ``test`` (``testing/``, images only).

    Args:
        num_classes: 19 (trainIds) or 7 (categories).
    """

    name = "kitti_semantics"
    split_sizes: ClassVar[dict[str, int]] = {"train": 200, "test": 200}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 19,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names, self.class_colors = cityscapes_classes(num_classes)
        self._lut = label_id_lut(num_classes)
        folder = {"train": "training", "training": "training", "test": "testing", "testing": "testing"}.get(
            str(split)
        )
        if folder is None:
            raise DataError(self.root, f"unknown KITTI semantics split {split!r}; use train or test")
        image_dir = self.root / folder / "image_2"
        if not image_dir.is_dir():
            raise DataError(image_dir, "folder not found (expected root/training/image_2/*.png)")
        self.label_dir = self.root / folder / "semantic"
        self._setup_tasks(tasks, ["semseg"] if self.label_dir.is_dir() else [])
        labels = {"semseg": files_by_id(self.label_dir)} if "semseg" in self.tasks else {}
        pairs = self._pair(
            files_by_id(image_dir),
            labels,
            required=labels,
            expected=lambda task, stem: self.label_dir / f"{stem}.png",
            orphans=image_dir,
        )
        self.entries = [entry for _, entry in pairs]
        self.ids = [stem for stem, _ in pairs]
        self._finish_index()

    def _load(self, index: int) -> dict[str, Any]:
        return self._read_entry(
            self.entries[index],
            {"semseg": lambda path: read_label_ids(path, self._lut)},
        )
