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
and fx (``p == 1``, zero disparity, is invalid too).

Disparity: asking for the ``disparity`` task (``tasks=[..., "disparity"]``) returns ``disp``
under the ``disparity`` key (:mod:`densemtl.tasks.disparity`: pixels, scaled with the image on
resize), with ``meta["baseline"]`` (metres) beside ``meta["intrinsics"]`` when the camera file
is there, so :class:`~densemtl.metrics.disparity.DisparityMetrics` also scores depth through the
camera. By default (``tasks=None``) the disparity PNGs give ``depth`` only, as before.

Legacy: with ``depth_target="disparity"`` the ``depth`` key holds ``disp`` itself (pixels at
the original 2048x1024 resolution whatever the resize; the target of the XTasC-Net config) and
``meta["target"] == "disparity"``, which zoom augmentation reads to multiply, not divide, it.
Prefer the ``disparity`` task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.datasets.base import RealDataset, Transform, build_lut, map_ids
from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import DataError
from densemtl.tasks.disparity import disparity_from_png

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


def read_label_ids(path: str | Path, lut: np.ndarray) -> np.ndarray:
    """A ``*_labelIds.png`` mapped through :func:`label_id_lut`; ids outside 0..33 are a DataError."""
    return map_ids(io.read_label_png(path), lut, path, "the Cityscapes labelIds 0..33")


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
        depth_target: ``"depth"`` (metres from disparity + camera) or the legacy ``"disparity"``
            (pixels, returned as ``depth`` with ``meta["target"] = "disparity"``; prefer the
            ``disparity`` task).
        max_depth: depth beyond this many metres is marked invalid (None keeps everything; far
            pixels with 1-2 px of disparity are hundreds of metres away and very noisy).
    """

    name = "cityscapes"
    depth_display_range = (0.0, 80.0)
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
            "disparity": (self.root / "disparity" / split, "_disparity.png"),
            "camera": (self.root / "camera" / split, "_camera.json"),
        }
        # the disparity task only on request: by default the disparity PNGs give depth, as before
        offered = ("semseg", "depth") if tasks is None else ("semseg", "depth", "disparity")
        available = [t for t in offered if folders[t][0].is_dir()]
        self._setup_tasks(tasks, available)
        need = [*self.tasks]
        if "depth" in self.tasks and depth_target == "depth":
            need.append("camera")
        images = {
            path.name[: -len("_leftImg8bit.png")]: path
            for path in sorted(image_dir.glob("*/*_leftImg8bit.png"))
        }
        labels = {
            key: {path.name[: -len(suffix)]: path for path in sorted(folder.glob(f"*/*{suffix}"))}
            for key, (folder, suffix) in folders.items()
            if key in need
        }
        pairs = self._pair(
            images,
            labels,
            required=need,
            expected=lambda key, stem: (
                folders[key][0] / images[stem].parent.name / f"{stem}{folders[key][1]}"
            ),
            orphans=image_dir,  # labels without an image, e.g. a truncated leftImg8bit download
        )
        self.entries = [entry for _, entry in pairs]
        self.ids = [stem for stem, _ in pairs]
        self.has_camera = (self.root / "camera" / split).is_dir()
        self._finish_index()

    def _load(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        camera_path = entry.get("camera")
        if camera_path is None and self.has_camera:
            city = entry["image"].parent.name
            camera_path = self.root / "camera" / str(self.split) / city / f"{self.ids[index]}_camera.json"
        camera = read_camera(camera_path) if camera_path is not None and camera_path.is_file() else None
        raw = self._read_entry(
            entry,
            {
                "semseg": lambda path: read_label_ids(path, self._lut),
                "depth": lambda path: self._read_disparity(path, camera),
                "disparity": lambda path: disparity_from_png(io.read_depth_png(path, scale=1.0)),
            },
        )
        if camera is not None:
            raw["intrinsics"] = (camera["fx"], camera["fy"], camera["cx"], camera["cy"])
            raw["meta"] = {"baseline": camera["baseline"]}
        return raw

    def _read_disparity(self, path: Path, camera: dict[str, float] | None) -> np.ndarray:
        png = io.read_depth_png(path, scale=1.0)
        if self.depth_target == "disparity":
            return disparity_from_png(png)
        assert camera is not None  # indexing required the camera file
        depth = disparity_to_depth(png, camera["baseline"], camera["fx"])
        if self.max_depth is not None:
            depth[depth > self.max_depth] = 0.0
        return depth
