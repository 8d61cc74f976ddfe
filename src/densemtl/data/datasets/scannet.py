"""ScanNet (Dai et al., "ScanNet: Richly-annotated 3D Reconstructions of Indoor Scenes", CVPR 2017), 2D frames.

Frames exported from the ``.sens`` streams (ScanNet's ``SensReader``) and the
``<scene>_2d-label-filt.zip`` archives::

    root/scans/<scene>/color/<frame>.jpg                  1296x968 RGB (test scenes: root/scans_test/)
    root/scans/<scene>/depth/<frame>.png                  640x480 uint16 millimetres, 0 = invalid
    root/scans/<scene>/label-filt/<frame>.png             uint16 ScanNet label ids (0 = unannotated)
    root/scans/<scene>/intrinsic/intrinsic_depth.txt      4x4 K of the depth camera (optional)
    root/scannetv2-labels.combined.tsv                    ScanNet id -> nyu40id, ... (``label_map``)
    root/scannetv2_{train,val,test}.txt                   scene splits (1201 / 312 / 100 scenes)

(``root/<scene>/...`` without ``scans/``, ``label/`` instead of ``label-filt/`` and split files
under ``root/meta_data/`` or ``root/Tasks/Benchmark/`` are found too.) Colour and labels are
resized to the depth resolution (``size``, default 480x640: image bilinear, labels nearest), the
usual ScanNet 2D protocol; intrinsics come from ``intrinsic_depth.txt`` when present. Labels are
mapped through the user's ``scannetv2-labels.combined.tsv`` to NYU-40 (``num_classes=40``) or to
the 20 classes of the ScanNet benchmark (``num_classes=20``, NYU-40 ids 1, 2, ..., 36, 39; the
other NYU-40 classes become 255). ``frame_skip`` keeps every n-th frame (the 2D benchmark's
``scannet_frames_25k`` uses 100).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import (
    UNKNOWN_ID,
    RealDataset,
    Transform,
    map_ids,
    read_lines,
    read_matrix_txt,
)
from densemtl.data.datasets.nyuv2 import NYU40_CLASS_NAMES, NYU40_COLORS
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
"""1-based NYU-40 ids of the 20 ScanNet benchmark classes (``VALID_CLASS_IDS`` of the benchmark scripts)."""

SCANNET20_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip

SCANNET20_COLORS: list[list[int]] = [list(NYU40_COLORS[i - 1]) for i in SCANNET20_NYU40_IDS]

DEPTH_SCALE = 1000.0


def read_scannet_label_map(path: str | Path, num_classes: int = 40) -> np.ndarray:
    """``scannetv2-labels.combined.tsv`` -> lookup table ScanNet id -> 0-based NYU-40 / ScanNet-20 id.

    Id 0 (unannotated) and NYU-40 id 0 map to 255; ids not in the file stay ``UNKNOWN_ID`` so
    :func:`~densemtl.data.datasets.base.map_ids` reports them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "ScanNet label map not found (pass label_map=<scannetv2-labels.combined.tsv>)")
    to_target = {nyu: index for index, nyu in enumerate(SCANNET20_NYU40_IDS)} if num_classes == 20 else None
    mapping: dict[int, int] = {0: IGNORE_INDEX}
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            if reader.fieldnames is None or not {"id", "nyu40id"} <= set(reader.fieldnames):
                raise DataError(path, "expected tab-separated columns 'id' and 'nyu40id'")
            for row in reader:
                raw, nyu = int(row["id"]), int(row["nyu40id"] or 0)
                if nyu == 0:
                    mapping[raw] = IGNORE_INDEX
                elif to_target is None:
                    mapping[raw] = nyu - 1
                else:
                    mapping[raw] = to_target.get(nyu, IGNORE_INDEX)
    except (OSError, ValueError, csv.Error) as exc:
        raise DataError(path, f"cannot parse the label map ({exc.__class__.__name__}: {exc})") from None
    lut = np.full(max(mapping) + 1, UNKNOWN_ID, dtype=np.int64)
    for raw, target in mapping.items():
        lut[raw] = target
    return lut


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize [H, W] or [H, W, 3] to size = (height, width) with PIL."""
    if tuple(array.shape[:2]) == size:
        return array
    if nearest:
        image = Image.fromarray(array.astype(np.int32))
        return np.asarray(image.resize((size[1], size[0]), Image.NEAREST)).astype(np.int64)
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.BILINEAR))


@DATASETS.register("scannet")
class ScanNet(RealDataset):
    """ScanNet exported frames (see the module docstring).

    Args:
        num_classes: 40 (NYU-40) or 20 (ScanNet benchmark).
        label_map: path of ``scannetv2-labels.combined.tsv`` (default ``root/scannetv2-labels.combined.tsv``).
        splits_dir: folder of ``scannetv2_<split>.txt`` (default: searched under root).
        frame_skip: keep every n-th frame of each scene.
        size: (height, width) everything is resized to; None keeps the stored sizes (which must
            then agree).
    """

    name = "scannet"
    depth_display_range = (0.0, 10.0)
    split_sizes: ClassVar[dict[str, int]] = {}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 40,
        label_map: str | Path | None = None,
        splits_dir: str | Path | None = None,
        frame_skip: int = 1,
        size: Sequence[int] | None = (480, 640),
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        if num_classes == 40:
            self.class_names, self.class_colors = list(NYU40_CLASS_NAMES), [list(c) for c in NYU40_COLORS]
        elif num_classes == 20:
            self.class_names, self.class_colors = (
                list(SCANNET20_CLASS_NAMES),
                [list(c) for c in SCANNET20_COLORS],
            )
        else:
            raise ValueError(f"ScanNet supports num_classes=40 (NYU-40) or 20 (benchmark), got {num_classes}")
        self._num_classes = num_classes
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        self.label_map_path = (
            Path(label_map) if label_map is not None else self.root / "scannetv2-labels.combined.tsv"
        )
        self._lut: np.ndarray | None = None
        scans = self.root / "scans" if (self.root / "scans").is_dir() else self.root
        scenes = self._scenes(split, splits_dir, scans)
        self.entries: list[dict[str, Any]] = []
        present: set[str] = set()
        for scene in scenes:
            scene_dir = scans / scene
            if not scene_dir.is_dir() and (self.root / "scans_test" / scene).is_dir():
                scene_dir = self.root / "scans_test" / scene  # the official download keeps test scenes apart
            color_dir = scene_dir / "color"
            if not color_dir.is_dir():
                self._problem(color_dir, f"scene {scene} listed in the split has no color/ folder")
                continue
            label_dir = next(
                (scene_dir / n for n in ("label-filt", "label") if (scene_dir / n).is_dir()), None
            )
            depth_dir = scene_dir / "depth" if (scene_dir / "depth").is_dir() else None
            intr = scene_dir / "intrinsic" / "intrinsic_depth.txt"
            frames = sorted(color_dir.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))[
                :: max(1, int(frame_skip))
            ]
            for color in frames:
                entry: dict[str, Any] = {"image": color, "intrinsics": intr if intr.is_file() else None}
                complete = True
                for task, folder in (("depth", depth_dir), ("semseg", label_dir)):
                    if folder is None:
                        continue
                    path = folder / f"{color.stem}.png"
                    if path.is_file():
                        entry[task] = path
                        present.add(task)
                    else:
                        self._problem(path, f"{task} file for {color} is missing")
                        complete = False
                if complete:
                    self.ids.append(f"{scene}_{color.stem}")
                    self.entries.append(entry)
        self._setup_tasks(tasks, [t for t in ("semseg", "depth") if t in present])
        if "semseg" in self.tasks:
            self._lut = read_scannet_label_map(self.label_map_path, num_classes)
        self._finish_index()

    def _scenes(self, split: str | None, splits_dir: str | Path | None, scans: Path) -> list[str]:
        if split in (None, "all"):
            return sorted(p.name for p in scans.iterdir() if p.is_dir() and p.name.startswith("scene"))
        name = f"scannetv2_{split}.txt"
        folders = (
            [Path(splits_dir)]
            if splits_dir is not None
            else [self.root, self.root / "meta_data", self.root / "Tasks" / "Benchmark", self.root / "splits"]
        )
        for folder in folders:
            if (folder / name).is_file():
                return read_lines(folder / name, "scene split file")
        raise DataError(folders[0] / name, "scene split file not found (pass splits_dir=...)")

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        rgb = io.read_image(entry["image"])
        target = self.size
        raw: dict[str, Any] = {"rgb_path": str(entry["image"]), "paths": {}}
        if "depth" in self.tasks and "depth" in entry:
            depth = io.read_depth_png(entry["depth"], DEPTH_SCALE)
            if target is not None and depth.shape != target:
                raise DataError(
                    entry["depth"],
                    f"depth is {depth.shape[1]}x{depth.shape[0]}, expected {target[1]}x{target[0]}",
                )
            raw["depth"], raw["paths"]["depth"] = depth, str(entry["depth"])
        if "semseg" in self.tasks and "semseg" in entry:
            assert self._lut is not None
            path = entry["semseg"]
            labels = map_ids(
                io.read_label_png(path), self._lut, path, f"the ScanNet ids of {self.label_map_path.name}"
            )
            raw["semseg"] = _resize(labels, target, nearest=True) if target else labels
            raw["paths"]["semseg"] = str(path)
        raw["rgb"] = _resize(rgb, target, nearest=False) if target else rgb
        if entry["intrinsics"] is not None and raw["rgb"].shape[:2] == (480, 640):  # depth-camera resolution
            k = read_matrix_txt(entry["intrinsics"], (4, 4))
            raw["intrinsics"] = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        return raw
