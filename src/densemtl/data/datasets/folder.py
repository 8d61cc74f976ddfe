"""The generic folder format (docs/data.md): the one on-disk layout synthetic and users' data share.

::

    root/
      rgb/<id>.png|jpg          RGB images
      depth/<id>.png            uint16 millimetres, 0 = invalid          (optional per sample)
      semantic/<id>.png         uint8/uint16 ids, 255 = ignore           (optional per sample)
      normals/<id>.png          RGB (n + 1) * 127.5, (0,0,0) = invalid   (optional per sample)
      intrinsics.json           {"fx", "fy", "cx", "cy"} at the stored image size (optional)
      classes.json              {"names": [...], "colors": [[r,g,b], ...], "ignore_index": 255}
      splits/{train,val,test}.txt   one id per line
      pseudo/<task>/<id>.png    teacher pseudo-labels (hard distillation); marked as pseudo

A sample lacking a label file simply has no label for that task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from densemtl.data import io
from densemtl.data.datasets import DATASETS
from densemtl.data.sample import IGNORE_INDEX, TASKS
from densemtl.errors import DataError
from densemtl.tasks import get_task
from densemtl.tasks.depth import PNG_SCALE as DEPTH_PNG_SCALE
from densemtl.tasks.semseg import default_palette

#: task -> label sub-folder / accepted suffixes (:attr:`Task.folder`, :attr:`Task.suffixes`).
LABEL_DIRS = {name: get_task(name).folder for name in TASKS}
LABEL_SUFFIXES = {name: get_task(name).suffixes for name in TASKS}
__all__ = ["DEPTH_PNG_SCALE", "LABEL_DIRS", "LABEL_SUFFIXES", "FolderDataset", "default_palette"]


def write_sample(
    root: str | Path,
    sample_id: str,
    rgb: np.ndarray,
    depth: np.ndarray | None = None,
    semantic: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    image_ext: str = "png",
) -> None:
    """Write one sample (numpy arrays: uint8 [H,W,3], metres [H,W], ids [H,W], unit [H,W,3])."""
    root = Path(root)
    io.write_image(root / "rgb" / f"{sample_id}.{image_ext}", rgb)
    write_labels(root, sample_id, {"semseg": semantic, "depth": depth, "normals": normals})


def write_labels(root: str | Path, sample_id: str, labels: Mapping[str, np.ndarray | None]) -> None:
    """Write ``{task: numpy-layout label}`` as ``root/<task folder>/<id><suffix>`` (None: skipped)."""
    for name, array in labels.items():
        if array is not None:
            task = get_task(name)
            task.write(Path(root) / task.folder / f"{sample_id}{task.suffixes[0]}", array)


def write_metadata(
    root: str | Path,
    class_names: Sequence[str],
    class_colors: Sequence[Sequence[int]] | None = None,
    intrinsics: Mapping[str, float] | None = None,
    splits: Mapping[str, Iterable[str]] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> None:
    """Write ``classes.json``, ``intrinsics.json`` and ``splits/*.txt``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    colors = (
        [list(map(int, c)) for c in class_colors]
        if class_colors is not None
        else default_palette(len(class_names))
    )
    classes = {"names": list(class_names), "colors": colors, "ignore_index": ignore_index}
    (root / "classes.json").write_text(json.dumps(classes, indent=1))
    if intrinsics is not None:
        (root / "intrinsics.json").write_text(
            json.dumps({k: float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy")})
        )
    for split, ids in (splits or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """A dataset in the generic folder format; yields sample dicts (see :mod:`densemtl.data.sample`).

    Args:
        root: dataset folder.
        split: a name in ``splits/`` (``train``, ``val``, ``test``) or ``None`` for every image.
        tasks: tasks to load (default: every task with a label folder).
        transform: callable on the sample dict (see :mod:`densemtl.data.transforms`).
        use_pseudo: also load ``pseudo/<task>/<id>.png`` where a ground-truth label is missing.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        tasks: Iterable[str] | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        use_pseudo: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "dataset folder not found")
        classes = _read_json(self.root / "classes.json")
        try:
            self.class_names: list[str] = list(classes["names"])
        except (KeyError, TypeError):
            raise DataError(self.root / "classes.json", "needs a 'names' list") from None
        self.class_colors = classes.get("colors") or default_palette(len(self.class_names))
        self.ignore_index = int(classes.get("ignore_index", IGNORE_INDEX))
        intrinsics_file = self.root / "intrinsics.json"
        self.intrinsics = None
        if intrinsics_file.exists():
            k = _read_json(intrinsics_file)
            try:
                self.intrinsics = torch.tensor([k["fx"], k["fy"], k["cx"], k["cy"]], dtype=torch.float32)
            except KeyError as exc:
                raise DataError(intrinsics_file, f"missing key {exc}") from None
        if tasks is None:
            tasks = [t for t in TASKS if (self.root / LABEL_DIRS[t]).is_dir()]
        self.tasks = tuple(tasks)
        for task in self.tasks:
            if task not in TASKS:
                raise DataError(self.root, f"unknown task {task!r}; known: {', '.join(TASKS)}")
        self.transform = transform
        self.use_pseudo = use_pseudo
        self.split = split
        self.ids = self._read_ids(split)
        self._rgb_paths = [self._find_rgb(i) for i in self.ids]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _read_ids(self, split: str | None) -> list[str]:
        if split is None:
            return sorted(
                p.stem for p in (self.root / "rgb").iterdir() if p.suffix.lower() in io.IMAGE_SUFFIXES
            )
        path = self.root / "splits" / f"{split}.txt"
        if not path.is_file():
            raise DataError(path, f"split file not found (available: {self._available_splits()})")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise DataError(path, "split file is empty")
        return ids

    def _available_splits(self) -> str:
        folder = self.root / "splits"
        names = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
        return ", ".join(names) or "none"

    def _find_rgb(self, sample_id: str) -> Path:
        for suffix in io.IMAGE_SUFFIXES:
            path = self.root / "rgb" / f"{sample_id}{suffix}"
            if path.is_file():
                return path
        raise DataError(self.root / "rgb" / f"{sample_id}.png", "image listed in the split is missing")

    def label_path(self, task: str, sample_id: str, pseudo: bool = False) -> Path | None:
        """Path of the label file for ``task`` (ground truth, or pseudo-label), or None."""
        folder = self.root / "pseudo" / task if pseudo else self.root / LABEL_DIRS[task]
        for suffix in LABEL_SUFFIXES[task]:
            path = folder / f"{sample_id}{suffix}"
            if path.is_file():
                return path
        return None

    def _read_label(self, task: str, path: Path) -> torch.Tensor:
        rule = get_task(task)
        array = rule.read(path, num_classes=self.num_classes, ignore_index=self.ignore_index)
        return rule.from_numpy(array)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample_id = self.ids[index]
        rgb_path = self._rgb_paths[index]
        rgb = io.read_image(rgb_path)
        height, width = rgb.shape[:2]
        sample: dict[str, Any] = {
            "image": torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0),
            "meta": {"id": sample_id, "dataset": self.root.name, "pseudo": set(), "path": str(rgb_path)},
        }
        if self.intrinsics is not None:
            sample["meta"]["intrinsics"] = self.intrinsics.clone()
        for task in self.tasks:
            path = self.label_path(task, sample_id)
            if path is None and self.use_pseudo:
                path = self.label_path(task, sample_id, pseudo=True)
                if path is not None:
                    sample["meta"]["pseudo"].add(task)
            if path is None:
                continue
            label = self._read_label(task, path)
            if tuple(label.shape[-2:]) != (height, width):
                raise DataError(
                    path, f"size {label.shape[-1]}x{label.shape[-2]} does not match image {width}x{height}"
                )
            sample[task] = label
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
