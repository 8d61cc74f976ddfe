"""Semantic segmentation: per-pixel class ids, ``IGNORE_INDEX`` (255) = unlabelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from densemtl.tasks import TASKS
from densemtl.tasks.base import Task

if TYPE_CHECKING:
    from torchmetrics import Metric

IGNORE_INDEX = 255


def default_palette(num_classes: int) -> list[list[int]]:
    """A deterministic, well-separated palette (PASCAL VOC bit-interleaving scheme)."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        c = index + 1
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette.append([r, g, b])
    return palette


@TASKS.register("semseg")
class SemsegTask(Task):
    """Semantic segmentation: logits ``[B, C, H, W]`` (no activation), int64 ``[H, W]`` ids.

    Folder format: ``semantic/<id>.png``, uint8 (uint16 above 255 classes) ids.
    """

    name = "semseg"
    label_channels = None
    label_dtype = torch.int64
    fill_value = IGNORE_INDEX
    default_loss = "cross_entropy"
    folder = "semantic"
    suffixes = (".png",)

    def channels(self, num_classes: int) -> int:
        return num_classes

    def valid_mask(self, label: torch.Tensor) -> torch.Tensor:
        return label != IGNORE_INDEX

    def build_metric(self, num_classes: int, per_image: bool = False, **options: Any) -> Metric:
        """Dataset-level mIoU / pixel accuracy; ``per_image``: the XTasC-Net authors' per-image mIoU."""
        if per_image:
            from densemtl.metrics.xtasc import PerImageSegmentationMetrics

            return PerImageSegmentationMetrics(num_classes, **options)
        from densemtl.metrics import SegmentationMetrics

        return SegmentationMetrics(num_classes=num_classes, **options)

    def colorize(
        self, array: np.ndarray, palette: Sequence[Sequence[int]] | None = None, **options: Any
    ) -> np.ndarray:
        """Class ids [H, W] -> uint8 RGB by ``palette`` (default :func:`default_palette`); ignore is black."""
        if palette is None:
            palette = default_palette(IGNORE_INDEX)
        table = np.zeros((max(256, len(palette)), 3), dtype=np.uint8)
        table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
        table[IGNORE_INDEX] = 0
        return table[np.clip(array, 0, len(table) - 1).astype(np.int64)]

    def panel_legend(
        self,
        pred: np.ndarray,
        gt: np.ndarray | None = None,
        width: int = 320,
        palette: Sequence[Sequence[int]] | None = None,
        class_names: Sequence[str] | None = None,
        legend_classes: str = "present",
        **options: Any,
    ) -> np.ndarray:
        """Swatches with the names of the classes in the prediction or the GT (ignore left out), or
        of every class with ``legend_classes="all"`` (one legend size for every frame of a video)."""
        from densemtl.tasks.legend import swatches

        if legend_classes == "all" and (class_names or palette):
            ids = list(range(len(class_names) if class_names else len(palette)))  # type: ignore[arg-type]
        else:
            present = np.unique(pred) if gt is None else np.union1d(np.unique(pred), np.unique(gt))
            ids = [int(i) for i in present if i != IGNORE_INDEX]
        colours = self.colorize(np.asarray([ids], dtype=np.int64), palette=palette)[0]
        names = [class_names[i] if class_names and i < len(class_names) else f"class {i}" for i in ids]
        return swatches(list(zip(names, colours.tolist())), width)

    def to_numpy(self, prediction: torch.Tensor) -> np.ndarray:
        """Logits [C, H, W] -> int64 class ids [H, W] (argmax)."""
        return prediction.detach().float().cpu().argmax(0).numpy()

    def read(
        self,
        path: str | Path,
        num_classes: int | None = None,
        ignore_index: int = IGNORE_INDEX,
        **options: Any,
    ) -> np.ndarray:
        """Ids as int64 [H, W]; the dataset's ``ignore_index`` becomes ``IGNORE_INDEX`` and, given
        ``num_classes``, any other id ``>= num_classes`` is a DataError."""
        from densemtl.data import io
        from densemtl.errors import DataError

        labels = io.read_label_png(path)
        if num_classes is not None:
            bad = (labels >= num_classes) & (labels != ignore_index)
            if bad.any():
                ids = sorted(set(np.unique(labels[bad]).tolist()))[:5]
                raise DataError(path, f"label ids {ids} out of range for {num_classes} classes")
        labels[labels == ignore_index] = IGNORE_INDEX
        return labels

    def write(self, path: str | Path, array: np.ndarray) -> None:
        from densemtl.data import io

        io.write_label_png(path, array)
