"""SUN RGB-D (Song et al., "SUN RGB-D: A RGB-D Scene Understanding Benchmark Suite", CVPR 2015).

Depth PNGs are uint16 stored **bit-rotated** (SUNRGBDtoolbox ``read3dPoints.m``):
``mm = (d >> 3) | (d << 13)`` in 16-bit arithmetic, 0 = invalid; the toolbox then caps depth at
8 m (values beyond are set to 8 m; ``max_depth``). Semantic labels use the 37 classes of the
toolbox's ``seg37list`` (0 = void -> 255, 1..37 -> 0..36). The standard split has 5285 training
(``alltrain`` of ``allsplit.mat``) and 5050 test images (``alltest``).

Three layouts are supported, chosen in this order (or with ``layout=``):

1. list files ``root/{train,test}.txt`` (or ``list_file``), one frame per line:
   ``rgb depth [label [intrinsics]]`` relative to ``root`` (``-`` = none), e.g. pointing into the
   official frame folders ``SUNRGBD/kv1/NYUdata/NYU0001/{image/NYU0001.jpg, depth_bfx/NYU0001.png}``.
   Without an intrinsics column, ``<frame folder>/intrinsics.txt`` (the image's grandparent
   folder) is used when it exists.

2. split folders (what most segmentation codebases export)::

       root/{train,test}/rgb|image/<id>.jpg|png
       root/{train,test}/depth/<id>.png            bit-rotated uint16 (``depth`` or ``depth_bfx``)
       root/{train,test}/labels_37|label37/<id>.png  uint8/uint16 0..37          (optional)
       root/{train,test}/intrinsics/<id>.txt       3x3 K as in SUN RGB-D's intrinsics.txt (optional)

3. the official release as unzipped (``SUNRGBD.zip`` + ``SUNRGBDtoolbox.zip``; ``layout="toolbox"``)::

       root/SUNRGBD/<sensor>/.../<frame>/image/<name>.jpg, depth/<name>.png, depth_bfx/...,
                                        intrinsics.txt
       root/SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat        frame order: rgbpath, depthpath
       root/SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat       37-class labels (MATLAB v7.3 = HDF5)
       root/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat   alltrain / alltest frame folders

   ``SUNRGBD2Dseg.mat`` is read lazily with h5py: the struct ``SUNRGBD2Dseg`` has a field
   ``seglabel``, an (N, 1) dataset of object references, one per frame in ``SUNRGBDMeta`` order;
   each points to a uint8 label array that h5py sees transposed (W, H), as MATLAB stores arrays
   column-major. Frame ``i``'s labels are ``f[f["SUNRGBD2Dseg"]["seglabel"][i, 0]][()].T``
   (TUI-NICR/ESANet ``src/datasets/sunrgbd/prepare_dataset.py`` reads it this way and pairs index
   ``i`` with ``SUNRGBDMeta[i]``; a frame is a training frame when its folder,
   ``rgbpath`` without ``image/<name>``, is listed in ``alltrain``). Paths in the ``.mat`` files
   start with ``/n/fs/sun3d/data/SUNRGBD/``; the part after ``SUNRGBD/`` is looked up under
   ``root/SUNRGBD/`` (or ``root/``). ``SUNRGBDMeta.mat`` is a MATLAB v5 file read once with scipy
   (it also holds the 3D boxes: tens of seconds for all 10335 frames).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import (
    LazyHDF5,
    RealDataset,
    Transform,
    build_lut,
    files_by_id,
    first_dir,
    iter_list_file,
    load_mat,
    map_ids,
    open_mat73,
    read_matrix_txt,
)
from densemtl.data.datasets.folder import default_palette
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


_SUNRGBD_PREFIX = "SUNRGBD"
_TOOLBOX_FILES = {
    "seg_mat": "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat",
    "meta_mat": "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat",
    "split_mat": "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
}


def _release_path(path: str) -> str:
    """``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/`` -> ``kv1/NYUdata/NYU0001``."""
    parts = [p for p in str(path).strip().replace("\\", "/").split("/") if p]
    if _SUNRGBD_PREFIX in parts:
        parts = parts[parts.index(_SUNRGBD_PREFIX) + 1 :]
    return "/".join(parts)


@dataclass(frozen=True)
class SegRef:
    """Frame ``index`` of ``SUNRGBD2Dseg.mat`` (what a sample's ``paths["semseg"]`` names)."""

    mat: Path
    index: int

    def __str__(self) -> str:
        return f"{self.mat}:SUNRGBD2Dseg.seglabel[{self.index}]"


@DATASETS.register("sunrgbd")
class SUNRGBD(RealDataset):
    """SUN RGB-D in one of the three layouts of the module docstring.

    Args:
        max_depth: the toolbox's cap in metres (None: no cap).
        layout: ``"auto"`` (list file, else split folders, else toolbox), ``"list"``, ``"folders"``
            or ``"toolbox"``.
        list_file: a list file (layout 1) instead of ``root/<split>.txt``.
        seg_mat, meta_mat, split_mat: the toolbox files of layout 3, relative to ``root`` unless
            absolute (defaults under ``root/SUNRGBDtoolbox/``).
        depth_folder: layout 3's depth maps: ``"depth"`` (raw, what ``read3dPoints`` reads) or
            ``"depth_bfx"`` (hole-filled).
    """

    name = "sunrgbd"
    depth_display_range = (0.0, 8.0)
    split_sizes: ClassVar[dict[str, int]] = {"train": 5285, "test": 5050}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        max_depth: float | None = 8.0,
        layout: str = "auto",
        list_file: str | Path | None = None,
        seg_mat: str | Path = _TOOLBOX_FILES["seg_mat"],
        meta_mat: str | Path = _TOOLBOX_FILES["meta_mat"],
        split_mat: str | Path = _TOOLBOX_FILES["split_mat"],
        depth_folder: str = "depth",
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        self.class_names = list(SUNRGBD_CLASS_NAMES)
        self.class_colors = [list(c) for c in SUNRGBD_COLORS]
        self.max_depth = max_depth
        key = {"val": "test", "all": None}.get(str(split), split)
        self.entries: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._seg: LazyHDF5 | None = None
        lst = self.root / (list_file if list_file is not None else f"{key}.txt")
        seg_path = self.root / seg_mat
        if layout == "auto":
            if list_file is not None or (key is not None and lst.is_file()):
                layout = "list"
            elif key is not None and (self.root / key).is_dir():
                layout = "folders"
            elif seg_path.is_file():
                layout = "toolbox"
            else:
                raise DataError(
                    self.root,
                    f"neither {key}.txt, {key}/ nor {seg_mat} found (SUN RGB-D layouts: docs/data.md)",
                )
        if layout == "list":
            if key is None and list_file is None:
                raise DataError(self.root, "the list-file layout needs a split or a list_file")
            self._index_list(lst)
        elif layout == "folders":
            if key is None:
                raise DataError(self.root, "the split-folder layout needs a split: train or test")
            self._index_folders(self.root / key)
        elif layout == "toolbox":
            self._index_toolbox(seg_path, self.root / meta_mat, self.root / split_mat, key, depth_folder)
        else:
            raise ValueError(f"layout must be 'auto', 'list', 'folders' or 'toolbox', got {layout!r}")
        self.layout = layout
        self._tasks_from_entries(tasks, self.entries, ("semseg", "depth"))
        self._finish_index()

    def _index_list(self, path: Path) -> None:
        columns = ("image", "depth", "semseg", "intrinsics")
        for number, files in iter_list_file(path, self.root, columns, min_columns=2):
            rgb = files["image"]
            assert rgb is not None
            if files["intrinsics"] is None and (rgb.parent.parent / "intrinsics.txt").is_file():
                files["intrinsics"] = rgb.parent.parent / "intrinsics.txt"
            if self._listed_files_exist(files, f"{path.name} (line {number})"):
                self._add(
                    rgb.stem if rgb.parent.name not in ("image", "rgb") else rgb.parent.parent.name, files
                )

    def _index_folders(self, base: Path) -> None:
        image_dir = first_dir(base, _IMAGE_DIRS)
        if image_dir is None:
            raise DataError(base, f"no image folder ({' or '.join(_IMAGE_DIRS)})")
        folders = {"depth": first_dir(base, _DEPTH_DIRS), "semseg": first_dir(base, _LABEL_DIRS)}
        labels = {task: files_by_id(folder) for task, folder in folders.items() if folder is not None}
        intr_dir = first_dir(base, ("intrinsics",))
        pairs = self._pair(
            files_by_id(image_dir, suffixes=(".jpg", ".png", ".jpeg")),
            labels,
            required=labels,
            expected=lambda task, stem: folders[task] / f"{stem}.png",  # type: ignore[operator]
            orphans=image_dir,
        )
        for stem, entry in pairs:
            intr = intr_dir / f"{stem}.txt" if intr_dir is not None else None
            entry["intrinsics"] = intr if intr is not None and intr.is_file() else None
            self._add(stem, entry)

    def _index_toolbox(
        self, seg_path: Path, meta_path: Path, split_path: Path, key: str | None, depth_folder: str
    ) -> None:
        if key not in (None, "train", "test"):
            raise DataError(self.root, f"unknown SUN RGB-D split {key!r}; use train, test (alias val) or all")
        count = _seglabel_count(seg_path)
        meta = np.atleast_1d(load_mat(meta_path, ("SUNRGBDMeta",), "SUNRGBDMeta.mat")["SUNRGBDMeta"])
        if len(meta) != count:
            raise DataError(seg_path, f"{count} label maps, but {meta_path.name} lists {len(meta)} frames")
        wanted = None
        if key is not None:
            listed = load_mat(split_path, ("alltrain", "alltest"), "allsplit.mat")[f"all{key}"]
            wanted = {_release_path(p) for p in np.atleast_1d(listed)}
        data = self.root / _SUNRGBD_PREFIX if (self.root / _SUNRGBD_PREFIX).is_dir() else self.root
        self._seg = LazyHDF5(seg_path)
        for index, frame in enumerate(meta):
            try:
                rgb_rel, depth_rel = _release_path(frame.rgbpath), _release_path(frame.depthpath)
            except AttributeError:
                raise DataError(meta_path, "SUNRGBDMeta entries lack 'rgbpath' / 'depthpath'") from None
            folder = rgb_rel.rsplit("/", 2)[0]  # <frame>/image/<name>.jpg -> <frame>
            if wanted is not None and folder not in wanted:
                continue
            files = {
                "image": data / rgb_rel,
                "depth": data / folder / depth_folder / depth_rel.rsplit("/", 1)[-1],
            }
            if self._listed_files_exist(files, f"{meta_path.name} (frame {index + 1})"):
                intr = data / folder / "intrinsics.txt"
                files.update(semseg=SegRef(seg_path, index), intrinsics=intr if intr.is_file() else None)
                self._add(folder.rsplit("/", 1)[-1], files)

    def _add(self, sample_id: str, entry: dict[str, Any]) -> None:
        if sample_id in self._seen:
            rgb = entry["image"]
            rel = rgb.relative_to(self.root) if rgb.is_relative_to(self.root) else rgb
            sample_id = str(rel.with_suffix("")).strip("/").replace("/", "_")
        self._seen.add(sample_id)
        self.ids.append(sample_id)
        self.entries.append(entry)

    def _read_labels(self, source: Path | SegRef) -> np.ndarray:
        raw = self._read_seglabel(source) if isinstance(source, SegRef) else io.read_label_png(source)
        return map_ids(raw, _LUT_37, str(source), "the SUN RGB-D ids 0..37 (0 = void)")

    def _read_seglabel(self, ref: SegRef) -> np.ndarray:
        assert self._seg is not None
        handle = self._seg.get()
        try:
            refs = handle["SUNRGBD2Dseg"]["seglabel"]
            obj = refs[ref.index, 0] if refs.shape[-1] == 1 else refs[0, ref.index]
            labels = np.asarray(handle[obj][()])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(ref, f"cannot read ({exc.__class__.__name__}: {exc})") from None
        if labels.ndim != 2 or labels.dtype.kind not in "biuf":
            raise DataError(ref, f"expected a 2-D numeric label map, got {labels.dtype} {labels.shape}")
        if labels.dtype.kind == "f" and not (
            np.isfinite(labels).all() and (labels == np.round(labels)).all()
        ):
            raise DataError(ref, "label map holds non-integer values")
        return labels.T.astype(np.int64)  # MATLAB stores column-major: h5py sees (W, H)

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        raw = self._read_entry(
            entry,
            {
                "depth": lambda path: decode_sunrgbd_depth(
                    io.read_depth_png(path, scale=1.0), self.max_depth
                ),
                "semseg": self._read_labels,
            },
        )
        if entry["intrinsics"] is not None:
            k = read_matrix_txt(entry["intrinsics"], (3, 3))
            raw["intrinsics"] = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        return raw


def _seglabel_count(path: Path) -> int:
    """Frames in ``SUNRGBD2Dseg.mat``; checks the struct / field / reference layout (one-line errors)."""
    import h5py

    with open_mat73(path) as handle:
        group = handle.get("SUNRGBD2Dseg")
        if not isinstance(group, h5py.Group) or not isinstance(group.get("seglabel"), h5py.Dataset):
            raise DataError(path, "expected the struct 'SUNRGBD2Dseg' with a field 'seglabel'")
        refs = group["seglabel"]
        if h5py.check_dtype(ref=refs.dtype) is not h5py.Reference or refs.ndim != 2 or 1 not in refs.shape:
            got = f"{refs.dtype} {refs.shape}"
            raise DataError(path, f"'SUNRGBD2Dseg.seglabel' must be (N, 1) object references, got {got}")
        return int(refs.size)
