"""Cityscapes (Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene Understanding", CVPR 2016).

Official layout (``leftImg8bit_trainvaltest.zip``, ``gtFine_trainvaltest.zip``,
``disparity_trainvaltest.zip``, ``camera_trainvaltest.zip``)::

    root/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      ids 0..33
    root/disparity/{split}/<city>/<city>_<seq>_<frame>_disparity.png         uint16
    root/camera/{split}/<city>/<city>_<seq>_<frame>_camera.json

Labels: ``labelIds`` are mapped with ``cityscapesscripts.helpers.labels`` to the 19 ``trainId``
classes (default) or to the 7 categories (flat, construction, object, nature, sky, human,
vehicle = ``categoryId - 1``). In both, labels that the official evaluation ignores
(``ignoreInEval``: unlabeled, ego vehicle, ..., parking, rail track, guard rail, bridge,
tunnel, polegroup, caravan, trailer, license plate) become 255, as in the official category
evaluation.

Depth: the disparity PNG ``p`` gives ``disp = (p - 1) / 256`` pixels for ``p > 0`` (0 =
invalid), and metric depth ``baseline * fx / disp`` metres with the ``camera/*.json`` baseline
and fx (``p == 1``, zero disparity, is invalid too). With ``depth_target="disparity"`` the
``depth`` key holds ``disp`` itself (pixels at the original 2048x1024 resolution, 0 = invalid;
XTasC-Net's target) and ``meta["target"] == "disparity"``: losses/metrics must then not treat it
as metres, and zoom augmentation must multiply, not divide, it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.realbase import RealDataset, Transform, build_lut, map_ids
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError

CITYSCAPES_CATEGORY_NAMES: tuple[str, ...] = (
    "flat",
    "construction",
    "object",
    "nature",
    "sky",
    "human",
    "vehicle",
)
CITYSCAPES_CATEGORY_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (70, 70, 70), (153, 153, 153), (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142),
)  # fmt: skip
"""One colour per category: that of its most common class (road, building, pole, ...)."""


def _labels() -> list[Any]:
    from cityscapesscripts.helpers.labels import labels

    return list(labels)


def cityscapes_classes(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Names and colours of the 19 trainId classes or of the 7 categories."""
    if num_classes == 19:
        train = sorted((lab for lab in _labels() if 0 <= lab.trainId < 255), key=lambda lab: lab.trainId)
        return [lab.name for lab in train], [list(lab.color) for lab in train]
    if num_classes == 7:
        return list(CITYSCAPES_CATEGORY_NAMES), [list(c) for c in CITYSCAPES_CATEGORY_COLORS]
    raise ValueError(f"Cityscapes supports num_classes=19 (trainIds) or 7 (categories), got {num_classes}")


def label_id_lut(num_classes: int) -> np.ndarray:
    """Lookup table labelId (0..33) -> trainId (19 classes) or category (7), 255 = ignore."""
    mapping: dict[int, int] = {}
    for lab in _labels():
        if lab.id < 0:
            continue
        if lab.ignoreInEval or not 0 <= lab.trainId < 255:
            mapping[lab.id] = IGNORE_INDEX
        else:
            mapping[lab.id] = lab.trainId if num_classes == 19 else lab.categoryId - 1
    return build_lut(mapping)


def disparity_to_depth(png: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Cityscapes disparity PNG values -> metric depth (metres, 0 = invalid).

    ``depth = baseline * fx / ((p - 1) / 256)`` for ``p > 1``; ``p == 0`` (invalid) and ``p == 1``
    (zero disparity, infinitely far) give 0.
    """
    png = np.asarray(png, dtype=np.float32)
    depth = np.zeros(png.shape, dtype=np.float32)
    valid = png > 1
    depth[valid] = np.float32(baseline * fx * 256.0) / (png[valid] - 1.0)
    return depth


def disparity_pixels(png: np.ndarray) -> np.ndarray:
    """Cityscapes disparity PNG values -> disparity in pixels ``(p - 1) / 256`` (0 = invalid)."""
    png = np.asarray(png, dtype=np.float32)
    return np.where(png > 0, (png - 1.0) / 256.0, 0.0).astype(np.float32)


def read_camera(path: str | Path) -> dict[str, float]:
    """``camera/*.json`` -> {"baseline", "fx", "fy", "cx", "cy"}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        data = json.loads(path.read_text())
        extrinsic, intrinsic = data["extrinsic"], data["intrinsic"]
        return {
            "baseline": float(extrinsic["baseline"]),
            "fx": float(intrinsic["fx"]),
            "fy": float(intrinsic["fy"]),
            "cx": float(intrinsic["u0"]),
            "cy": float(intrinsic["v0"]),
        }
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            path, f"camera file lacks extrinsic.baseline / intrinsic.fx,fy,u0,v0 ({exc})"
        ) from None


@DATASETS.register("cityscapes")
class Cityscapes(RealDataset):
    """Cityscapes from its official folders (see the module docstring for layout and units).

    Args:
        num_classes: 19 (trainIds, default) or 7 (categories).
        depth_target: ``"depth"`` (metres from disparity + camera) or ``"disparity"`` (pixels,
            returned as ``depth`` with ``meta["target"] = "disparity"``).
        max_depth: depth beyond this many metres is marked invalid (None keeps everything; far
            pixels with 1-2 px of disparity are hundreds of metres away and very noisy).
    """

    name = "cityscapes"
    split_sizes: ClassVar[dict[str, int]] = {"train": 2975, "val": 500, "test": 1525}

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Transform | None = None,
        num_classes: int = 19,
        depth_target: str = "depth",
        max_depth: float | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(root, split, transform, strict)
        if depth_target not in ("depth", "disparity"):
            raise ValueError(f"depth_target must be 'depth' or 'disparity', got {depth_target!r}")
        if split is None:
            raise DataError(self.root, "Cityscapes needs a split: train, val or test")
        self.depth_target = depth_target
        self.max_depth = max_depth
        self.class_names, self.class_colors = cityscapes_classes(num_classes)
        self._lut = label_id_lut(num_classes)
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DataError(
                image_dir, "folder not found (expected root/leftImg8bit/<split>/<city>/*_leftImg8bit.png)"
            )
        folders = {
            "semseg": (self.root / "gtFine" / split, "_gtFine_labelIds.png"),
            "depth": (self.root / "disparity" / split, "_disparity.png"),
            "camera": (self.root / "camera" / split, "_camera.json"),
        }
        available = [t for t in ("semseg", "depth") if folders[t][0].is_dir()]
        self._setup_tasks(tasks, available)
        need = [*self.tasks]
        if "depth" in self.tasks and depth_target == "depth":
            need.append("camera")
        self.entries: list[dict[str, Path]] = []
        found: dict[str, set[str]] = {}
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            found.setdefault("image", set()).add(stem)
            entry = {"image": image}
            complete = True
            for key in need:
                folder, suffix = folders[key]
                path = folder / image.parent.name / f"{stem}{suffix}"
                entry[key] = path
                if not path.is_file():
                    self._problem(path, f"{key} file for {image.name} is missing")
                    complete = False
            if complete:
                self.entries.append(entry)
                self.ids.append(stem)
        # labels without an image (e.g. a truncated leftImg8bit download)
        for key in need:
            folder, suffix = folders[key]
            for path in sorted(folder.glob(f"*/*{suffix}")):
                if path.name[: -len(suffix)] not in found.get("image", set()):
                    self._problem(path, f"{key} file has no image in {image_dir}")
        self.has_camera = (self.root / "camera" / split).is_dir()
        self._finish_index()

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        raw: dict[str, Any] = {
            "rgb": io.read_image(entry["image"]),
            "rgb_path": str(entry["image"]),
            "paths": {},
        }
        camera = None
        camera_path = entry.get("camera")
        if camera_path is None and self.has_camera:
            camera_path = (
                self.root
                / "camera"
                / str(self.split)
                / entry["image"].parent.name
                / f"{self.ids[index]}_camera.json"
            )
        if camera_path is not None and camera_path.is_file():
            camera = read_camera(camera_path)
            raw["intrinsics"] = (camera["fx"], camera["fy"], camera["cx"], camera["cy"])
        if "semseg" in self.tasks:
            path = entry["semseg"]
            raw["semseg"] = map_ids(io.read_label_png(path), self._lut, path, "the Cityscapes labelIds 0..33")
            raw["paths"]["semseg"] = str(path)
        if "depth" in self.tasks:
            path = entry["depth"]
            png = io.read_depth_png(path, scale=1.0)
            if self.depth_target == "disparity":
                depth = disparity_pixels(png)
            else:
                assert camera is not None
                depth = disparity_to_depth(png, camera["baseline"], camera["fx"])
                if self.max_depth is not None:
                    depth[depth > self.max_depth] = 0.0
            raw["depth"], raw["paths"]["depth"] = depth, str(path)
        return raw
