"""SUN RGB-D (Song et al., "SUN RGB-D: A RGB-D Scene Understanding Benchmark Suite", CVPR 2015).

Depth PNGs are uint16 stored **bit-rotated** (SUNRGBDtoolbox ``read3dPoints.m``):
``mm = (d >> 3) | (d << 13)`` in 16-bit arithmetic, 0 = invalid; the toolbox then caps depth at
8 m (values beyond are set to 8 m; ``max_depth``). Semantic labels use the 37 classes of the
toolbox's ``seg37list`` (0 = void -> 255, 1..37 -> 0..36). The standard split has 5285 training
(``alltrain`` of ``allsplit.mat``) and 5050 test images.

Two layouts are supported (the official release stores one folder per frame and the 37-class
labels in ``SUNRGBD2Dseg.mat``, so users export them to PNGs once):

1. split folders (what most segmentation codebases export)::

       root/{train,test}/rgb|image/<id>.jpg|png
       root/{train,test}/depth/<id>.png            bit-rotated uint16 (``depth`` or ``depth_bfx``)
       root/{train,test}/labels_37|label37/<id>.png  uint8/uint16 0..37          (optional)
       root/{train,test}/intrinsics/<id>.txt       3x3 K as in SUN RGB-D's intrinsics.txt (optional)

2. list files ``root/{train,test}.txt`` (or ``list_file``), one frame per line:
   ``rgb depth [label [intrinsics]]`` relative to ``root`` (``-`` = none), e.g. pointing into the
   official frame folders ``SUNRGBD/kv1/NYUdata/NYU0001/{image/NYU0001.jpg, depth_bfx/NYU0001.png}``.
   Without an intrinsics column, ``<frame folder>/intrinsics.txt`` (the image's grandparent
   folder) is used when it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.folder import default_palette
from densemtl.data.realbase import (
    RealDataset,
    Transform,
    build_lut,
    find_with_suffix,
    map_ids,
    read_lines,
    read_matrix_txt,
)
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

SUNRGBD_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor_mat", "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain",
    "box", "whiteboard", "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag",
)  # fmt: skip
"""The 37 classes (SUNRGBDtoolbox ``seg37list``), ids 0..36; they are NYU-40's first 37."""

SUNRGBD_COLORS: list[list[int]] = default_palette(37)

_LUT_37 = build_lut({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 38)}})
_IMAGE_DIRS = ("rgb", "image", "images")
_DEPTH_DIRS = ("depth", "depth_bfx")
_LABEL_DIRS = ("labels_37", "label37", "labels37", "labels", "label")


def decode_sunrgbd_depth(raw: np.ndarray, max_depth: float | None = 8.0) -> np.ndarray:
    """Bit-rotated uint16 depth PNG values -> metres (0 = invalid; capped at ``max_depth``)."""
    d = np.asarray(raw).astype(np.uint16)
    mm = np.bitwise_or(np.right_shift(d, 3), np.left_shift(d, 13)).astype(np.uint16)
    depth = mm.astype(np.float32) / 1000.0
    if max_depth is not None:
        np.minimum(depth, max_depth, out=depth)
    return depth


def encode_sunrgbd_depth(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> bit-rotated uint16 as SUN RGB-D stores it (inverse of the toolbox's decoding)."""
    mm = np.round(np.asarray(depth_m, dtype=np.float64) * 1000.0).astype(np.uint16)
    return np.bitwise_or(np.left_shift(mm, 3), np.right_shift(mm, 13)).astype(np.uint16)


def _first_dir(base: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (base / name).is_dir():
            return base / name
    return None


@DATASETS.register("sunrgbd")
class SUNRGBD(RealDataset):
    """SUN RGB-D in one of the two layouts of the module docstring (chosen automatically).

    Args:
        max_depth: the toolbox's cap in metres (None: no cap).
        list_file: a list file (layout 2) instead of ``root/<split>.txt`` / ``root/<split>/``.
    """

    name = "sunrgbd"
    split_sizes: ClassVar[dict[str, int]] = {"train": 5285, "test": 5050}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        max_depth: float | None = 8.0,
        list_file: str | Path | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names = list(SUNRGBD_CLASS_NAMES)
        self.class_colors = [list(c) for c in SUNRGBD_COLORS]
        self.max_depth = max_depth
        if split is None:
            raise DataError(self.root, "SUN RGB-D needs a split: train or test")
        key = "test" if split == "val" else split
        self.entries: list[dict[str, Path | None]] = []
        self._seen: set[str] = set()
        lst = self.root / list_file if list_file is not None else self.root / f"{key}.txt"
        if list_file is not None or lst.is_file():
            self._index_list(lst)
        elif (self.root / key).is_dir():
            self._index_folders(self.root / key)
        else:
            raise DataError(
                self.root, f"neither {key}.txt nor {key}/ found (see the SUN RGB-D layouts in docs/data.md)"
            )
        present = {t for e in self.entries for t in ("semseg", "depth") if e.get(t) is not None}
        self._setup_tasks(tasks, [t for t in ("semseg", "depth") if t in present])
        self._finish_index()

    def _index_list(self, path: Path) -> None:
        for number, line in enumerate(read_lines(path), start=1):
            parts = line.split("\t") if "\t" in line else line.split()
            if not 2 <= len(parts) <= 4:
                raise DataError(
                    path,
                    f"line {number}: expected 'rgb depth [label [intrinsics]]', got {len(parts)} columns",
                )
            files = [None if p == "-" else self.root / p for p in parts] + [None] * (4 - len(parts))
            rgb, depth, label, intr = files
            if rgb is None:
                raise DataError(path, f"line {number}: no image path")
            if intr is None and (rgb.parent.parent / "intrinsics.txt").is_file():
                intr = rgb.parent.parent / "intrinsics.txt"
            self._add(
                rgb.stem if rgb.parent.name not in ("image", "rgb") else rgb.parent.parent.name,
                rgb,
                depth,
                label,
                intr,
            )

    def _index_folders(self, base: Path) -> None:
        image_dir = _first_dir(base, _IMAGE_DIRS)
        if image_dir is None:
            raise DataError(base, f"no image folder ({' or '.join(_IMAGE_DIRS)})")
        depth_dir = _first_dir(base, _DEPTH_DIRS)
        label_dir = _first_dir(base, _LABEL_DIRS)
        intr_dir = _first_dir(base, ("intrinsics",))
        stems = sorted(p.stem for p in image_dir.iterdir() if p.suffix.lower() in io.IMAGE_SUFFIXES)
        for stem in stems:
            rgb = find_with_suffix(image_dir, stem, (".jpg", ".png", ".jpeg"))
            depth = depth_dir / f"{stem}.png" if depth_dir else None
            label = label_dir / f"{stem}.png" if label_dir else None
            intr = intr_dir / f"{stem}.txt" if intr_dir and (intr_dir / f"{stem}.txt").is_file() else None
            self._add(stem, rgb, depth, label, intr)  # type: ignore[arg-type]
        stem_set = set(stems)
        for folder in (depth_dir, label_dir):
            if folder is not None:
                for path in sorted(folder.glob("*.png")):
                    if path.stem not in stem_set:
                        self._problem(path, f"label file has no image in {image_dir}")

    def _add(
        self, sample_id: str, rgb: Path, depth: Path | None, label: Path | None, intr: Path | None
    ) -> None:
        missing = [p for p in (rgb, depth, label) if p is not None and not p.is_file()]
        for path in missing:
            what = "image" if path == rgb else "depth" if path == depth else "label"
            self._problem(path, f"{what} file of sample {sample_id} is missing")
        if missing:
            return
        if sample_id in self._seen:
            rel = rgb.relative_to(self.root) if rgb.is_relative_to(self.root) else rgb
            sample_id = str(rel.with_suffix("")).strip("/").replace("/", "_")
        self._seen.add(sample_id)
        self.ids.append(sample_id)
        self.entries.append({"image": rgb, "depth": depth, "semseg": label, "intrinsics": intr})

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        image = entry["image"]
        assert image is not None
        raw: dict[str, Any] = {"rgb": io.read_image(image), "rgb_path": str(image), "paths": {}}
        if entry["intrinsics"] is not None:
            k = read_matrix_txt(entry["intrinsics"], (3, 3))
            raw["intrinsics"] = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        for task in self.tasks:
            path = entry[task]
            if path is None:
                continue
            raw["paths"][task] = str(path)
            if task == "depth":
                raw["depth"] = decode_sunrgbd_depth(io.read_depth_png(path, scale=1.0), self.max_depth)
            else:
                raw["semseg"] = map_ids(
                    io.read_label_png(path), _LUT_37, path, "the SUN RGB-D ids 0..37 (0 = void)"
                )
        return raw
