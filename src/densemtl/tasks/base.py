"""The :class:`Task` interface: everything densemtl knows about one dense-prediction task.

A task owns its label layout (dtype, channels, "no label" fill value), its output activation,
its geometric rules (what a left-right mirror, a zoom, a resize or a paste do to its values), its
default loss, its metric, its colouring and its files in the folder format. The engine, the
transforms, the batch augmentations, the visualisations and the folder reader only ask the task,
so adding a task is one file (a :class:`Task` subclass) plus one registry line.

Layouts (see :mod:`densemtl.data.sample` for the full sample contract):

* **label** (a sample's ``sample[name]``): ``[H, W]`` integer ids when :attr:`Task.label_channels`
  is ``None`` (semseg), else float ``[C, H, W]``; batched labels have a leading ``B``.
* **prediction** (model output after :meth:`Task.activate`): float ``[B, channels, H, W]``.
* **numpy** (files, panels, ``densemtl predict`` outputs): ids or single-channel maps ``[H, W]``,
  multi-channel maps channels-last ``[H, W, C]``.

Options: :meth:`Task.activate`, :meth:`Task.read` and :meth:`Task.colorize` take the caller's
settings as keyword arguments; a task reads the ones it knows and ignores the others, so a caller
passes the same settings to every task without asking which task it is.

Example::

    from densemtl.tasks import get_task

    normals = get_task("normals")
    pred = normals.activate(raw)                          # unit vectors
    pred = normals.merge_mirrored(pred, raw_on_mirrored)  # test-time flip averaging
    rgb = normals.colorize(normals.to_numpy(pred[0]))     # uint8 [H, W, 3]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from torchmetrics import Metric

#: A loss spec as :class:`densemtl.training.module.WeightedLossSum` takes it: a registered loss
#: name, ``{"name": ..., **options}``, or a list of those with ``weight`` keys.
LossSpec = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


class Task:
    """One dense-prediction task. Subclass it, set the class attributes, override the rules.

    The defaults describe a float ``[C, H, W]`` map whose values do not change under a mirror or a
    zoom, with 0 meaning "no label" (e.g. a confidence or an edge map).

    Class attributes:
        name: the key of the task in samples, batches, model outputs and the registry.
        label_channels: channels of the label (``None``: ``[H, W]`` integer ids).
        label_dtype: dtype of the label tensor.
        fill_value: label value meaning "no label here" (what :meth:`empty_label` holds).
        default_loss: loss spec used when the config names none for this task.
        folder: sub-folder of the folder format (``docs/data.md``) holding this task's files.
        suffixes: label file suffixes the folder reader accepts, in order of preference;
            :meth:`write` writes the first.
    """

    name: ClassVar[str]
    label_channels: ClassVar[int | None] = 1
    label_dtype: ClassVar[torch.dtype] = torch.float32
    fill_value: ClassVar[float] = 0.0
    default_loss: ClassVar[LossSpec]
    folder: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = (".png",)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- model outputs -------------------------------------------------------------------------

    def channels(self, num_classes: int) -> int:
        """Output channels of the model head (semseg: ``num_classes``; others: fixed)."""
        return self.label_channels or 1

    def activate(self, raw: torch.Tensor, **options: Any) -> torch.Tensor:
        """Raw head output ``[B, C, H, W]`` -> prediction (e.g. depth in metres); identity by default.

        ``options`` are the model's output settings (``depth_activation``, ``max_depth``, ...);
        a task reads the ones it knows.
        """
        return raw

    # --- labels --------------------------------------------------------------------------------

    def empty_label(self, height: int, width: int) -> torch.Tensor:
        """The all-invalid label at ``height`` x ``width`` (what collate puts for a missing label)."""
        channels = self.label_channels
        shape = (height, width) if channels is None else (channels, height, width)
        return torch.full(shape, self.fill_value, dtype=self.label_dtype)

    def valid_mask(self, label: torch.Tensor) -> torch.Tensor:
        """Bool mask of labelled pixels: ``[B, H, W]`` for a batched label, ``[H, W]`` for one.

        Losses skip the other pixels; metrics may narrow it further (depth range, crops).
        """
        return (label != self.fill_value).any(dim=-3)

    # --- geometry ------------------------------------------------------------------------------

    def mirror_values(self, x: torch.Tensor) -> torch.Tensor:
        """The values of a label or prediction under a left-right mirror of the camera frame,
        *without* moving pixels (normals: x negated); identity by default.

        ``x`` is ``[..., C, H, W]`` (or ``[..., H, W]`` ids). Used by :meth:`flip_label` and by
        warps that mirror some samples of a batch (:class:`densemtl.training.augment.AffineMix`).
        """
        return x

    def flip_label(self, label: torch.Tensor) -> torch.Tensor:
        """Horizontal mirror of a label (``[..., H, W]``): pixels flipped, then :meth:`mirror_values`."""
        return self.mirror_values(label.flip(-1))

    def flip_prediction(self, pred: torch.Tensor) -> torch.Tensor:
        """Horizontal mirror of a prediction ``[B, C, H, W]`` (same rule as :meth:`flip_label`)."""
        return self.flip_label(pred)

    def merge_mirrored(self, pred: torch.Tensor, mirrored_pred: torch.Tensor) -> torch.Tensor:
        """Test-time flip averaging: ``pred`` on the image, ``mirrored_pred`` on its mirror image.

        ``mirrored_pred`` is mirrored back with :meth:`flip_prediction`, then the two are averaged
        (``0.5 * (a + b)``; normals override this to re-normalise the sum).
        """
        return 0.5 * (pred + self.flip_prediction(mirrored_pred))

    def resize_label(self, label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Resize a label (``[H, W]`` or ``[C, H, W]``) to ``size`` = (height, width).

        Nearest (``nearest-exact``, pixel-centre aligned) for every built-in task: no label value
        is invented and an invalid pixel (depth 0, normals 0, ignore id) never bleeds into valid
        ones. Values are unchanged; a zoom's effect on values is :meth:`zoom_label`.
        """
        squeeze = label.dim() == 2
        x = label[None, None] if squeeze else label[None]
        dtype = x.dtype
        x = F.interpolate(x.float(), size=size, mode="nearest-exact").to(dtype)
        return x[0, 0] if squeeze else x[0]

    def zoom_label(
        self, label: torch.Tensor, scale: float | torch.Tensor, meta: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """The label's *values* after the image was zoomed in by ``scale`` (pixels already moved).

        A zoom is treated as the camera moving closer (mtan, XTasC-Net), so depth is divided by
        ``scale``; identity by default (ids, normals: a pure approach keeps surface orientation).
        ``scale`` is a float or a tensor broadcasting against ``label`` (``[B, 1, 1, 1]``);
        ``meta`` is the sample's meta (depth reads ``meta["target"]``).
        """
        return label

    def mix(self, pasted: torch.Tensor, base: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Paste ``pasted`` onto ``base`` where ``mask`` (bool ``[B, H, W]``) is True (ClassMix /
        AffineMix compositing of labels or predictions, ``[B, H, W]`` or ``[B, C, H, W]``)."""
        m = mask if base.dim() == mask.dim() else mask.unsqueeze(-3)
        return torch.where(m, pasted, base)

    # --- evaluation and display ----------------------------------------------------------------

    def build_metric(self, num_classes: int, **options: Any) -> Metric:
        """The task's dataset-level :class:`torchmetrics.Metric` (from :mod:`densemtl.metrics`).

        ``options`` are the metric's keyword arguments (``metric_options[task]`` of the config).
        """
        raise NotImplementedError(f"task {self.name!r} has no metric")

    def colorize(self, array: np.ndarray, **options: Any) -> np.ndarray:
        """A numpy-layout map (see module doc) -> uint8 RGB ``[H, W, 3]``; invalid pixels black.

        ``options``: display settings a task may read (``palette`` for ids, ``vmin`` / ``vmax``
        for depth).
        """
        raise NotImplementedError(f"task {self.name!r} has no colouring")

    def panel_tiles(self, pred: np.ndarray, gt: np.ndarray | None = None, **options: Any) -> list[np.ndarray]:
        """The tiles of this task in a prediction panel: ground truth (when given), prediction.

        Depth overrides this to share one colour range and add an error map.
        """
        tiles = [] if gt is None else [self.colorize(gt, **options)]
        return [*tiles, self.colorize(pred, **options)]

    def panel_legend(
        self, pred: np.ndarray, gt: np.ndarray | None = None, width: int = 320, **options: Any
    ) -> np.ndarray | None:
        """A strip (uint8 RGB ``[h, w, 3]``, ``w <= width`` where it can) that explains this task's
        colours under a prediction panel, or None when the colours need no key (normals)."""
        return None

    def to_numpy(self, prediction: torch.Tensor) -> np.ndarray:
        """One sample's prediction ``[C, H, W]`` -> numpy layout (float32; semseg: argmax ids)."""
        return _channels_last(prediction.detach().float().cpu())

    def label_to_numpy(self, label: torch.Tensor) -> np.ndarray:
        """One sample's label -> numpy layout (dtype kept)."""
        return _channels_last(label.detach().cpu())

    def from_numpy(self, array: np.ndarray) -> torch.Tensor:
        """Numpy layout -> the label tensor of a sample (inverse of :meth:`label_to_numpy`)."""
        tensor = torch.from_numpy(array)
        if self.label_channels is None:
            return tensor
        if array.ndim == 2:
            return tensor[None]
        return tensor.permute(2, 0, 1).contiguous()

    # --- files ---------------------------------------------------------------------------------

    def read(self, path: str | Path, **options: Any) -> np.ndarray:
        """Read a label (or saved prediction) file in the folder format -> numpy layout.

        Raises :class:`~densemtl.errors.DataError` naming the file. ``options``: the dataset's
        settings a task may read (``num_classes``, ``ignore_index`` for ids).
        """
        raise NotImplementedError(f"task {self.name!r} has no file format")

    def write(self, path: str | Path, array: np.ndarray) -> None:
        """Write a numpy-layout map in the folder format (so :meth:`read` gives it back)."""
        raise NotImplementedError(f"task {self.name!r} has no file format")


def _channels_last(x: torch.Tensor) -> np.ndarray:
    """``[H, W]`` stays, ``[1, H, W]`` -> ``[H, W]``, ``[C, H, W]`` -> ``[H, W, C]``."""
    if x.dim() == 2:
        return x.numpy()
    if x.shape[0] == 1:
        return x[0].numpy()
    return x.permute(1, 2, 0).numpy()
