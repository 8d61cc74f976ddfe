"""``densemtl evaluate``: score prediction files against a dataset in the generic folder format.

Predictions live in a folder laid out like the dataset's label folders (docs/data.md)::

    <predictions>/semantic/<id>.png     class ids (uint8/uint16)
    <predictions>/depth/<id>.npy|png    float32 metres (.npy) or uint16 millimetres (.png)
    <predictions>/normals/<id>.npy|png  [H, W, 3] float or RGB (n + 1) * 127.5 (optional)

Ground truth is read with :class:`densemtl.data.datasets.folder.FolderDataset` (pseudo-labels are never
read). A prediction whose size differs from its ground truth is resized to the ground-truth size:
semantic ids with nearest neighbour (``nearest-exact``, pixel centres), depth and normals
bilinearly (``align_corners=False``; normals are re-normalised by the metric). The metrics and
their conventions are those of :mod:`densemtl.metrics` (docs/metrics.md), or, with
``convention``, every choice of one peer's evaluation code at once (:data:`CONVENTIONS`); the
JSON written holds the flat metric dict, the per-class IoU keyed by class name and the number of
images per task.

Example::

    densemtl evaluate --predictions runs/x/pred --dataset-root data/nyuv2 --split test --output metrics.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.data.datasets.folder import DEPTH_PNG_SCALE, LABEL_DIRS, FolderDataset
from densemtl.data.sample import TASKS
from densemtl.errors import ConfigError, DataError
from densemtl.metrics import METRIC_TASK, MultiTaskMetrics, SegmentationMetrics, delta_mtl

__all__ = ["CONVENTIONS", "add_delta_mtl", "evaluate", "print_report", "read_prediction"]

#: A peer's metric choices (docs/metrics.md "Reproducing a peer's numbers"; the peers' code as
#: read in the project's peer survey): ``absent_policy`` of mIoU, the depth ``clamp`` of
#: non-positive predictions, and ``depth_batch_size`` for a mean of per-batch depth means (mtan
#: evaluates in batches of 2, in dataset order) instead of pixel pooling.
CONVENTIONS: dict[str, dict[str, Any]] = {
    "mtl_pytorch": {"absent_policy": "zero", "clamp": "all", "depth_batch_size": None},
    "libmtl": {"absent_policy": "propagate", "clamp": "logs", "depth_batch_size": None},
    "mtan": {"absent_policy": "propagate", "clamp": "logs", "depth_batch_size": 2},
    "densetorch": {"absent_policy": "nan", "clamp": "abs", "depth_batch_size": None},
}

#: task -> prediction file suffixes, in order of preference.
PRED_SUFFIXES: dict[str, tuple[str, ...]] = {
    "semseg": (".png",),
    "depth": (".npy", ".png"),
    "normals": (".npy", ".png"),
}


def _read_semseg(path: Path) -> torch.Tensor:
    return torch.from_numpy(io.read_label_png(path))


def _read_depth(path: Path) -> torch.Tensor:
    depth = io.read_depth_npy(path) if path.suffix == ".npy" else io.read_depth_png(path, DEPTH_PNG_SCALE)
    return torch.from_numpy(depth)[None]


def _read_normals(path: Path) -> torch.Tensor:
    return torch.from_numpy(io.read_normals(path)).permute(2, 0, 1).contiguous()


def _resize_nearest(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    resized = F.interpolate(pred[None, None].double(), size=size, mode="nearest-exact")
    return resized[0, 0].long()


def _resize_bilinear(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(pred[None], size=size, mode="bilinear", align_corners=False)[0]


#: task -> (reader(path) -> tensor in the sample layout, resize(tensor, (H, W)) -> tensor).
PRED_IO: dict[str, tuple[Callable[[Path], torch.Tensor], Callable[..., torch.Tensor]]] = {
    "semseg": (_read_semseg, _resize_nearest),
    "depth": (_read_depth, _resize_bilinear),
    "normals": (_read_normals, _resize_bilinear),
}


def prediction_path(predictions: Path, task: str, sample_id: str) -> Path:
    """The prediction file of ``task`` for ``sample_id``; :class:`DataError` naming it if missing."""
    folder = predictions / LABEL_DIRS[task]
    for suffix in PRED_SUFFIXES[task]:
        path = folder / f"{sample_id}{suffix}"
        if path.is_file():
            return path
    expected = folder / f"{sample_id}{PRED_SUFFIXES[task][0]}"
    raise DataError(expected, f"prediction file missing (looked for {', '.join(PRED_SUFFIXES[task])})")


def read_prediction(predictions: Path, task: str, sample_id: str, size: tuple[int, int]) -> torch.Tensor:
    """Read the prediction of ``task`` for ``sample_id`` and resize it to ``size`` (H, W) if needed."""
    reader, resize = PRED_IO[task]
    pred = reader(prediction_path(predictions, task, sample_id))
    if tuple(pred.shape[-2:]) != tuple(size):
        pred = resize(pred, size)
    return pred


def _select_tasks(predictions: Path, dataset_root: Path, requested: Sequence[str] | None) -> list[str]:
    if not predictions.is_dir():
        raise DataError(predictions, "predictions folder not found")
    if requested:
        for task in requested:
            if not (predictions / LABEL_DIRS[task]).is_dir():
                raise DataError(predictions / LABEL_DIRS[task], f"prediction folder for {task} not found")
            if not (dataset_root / LABEL_DIRS[task]).is_dir():
                raise DataError(dataset_root / LABEL_DIRS[task], f"ground-truth folder for {task} not found")
        return list(requested)
    tasks = [
        t for t in TASKS if (predictions / LABEL_DIRS[t]).is_dir() and (dataset_root / LABEL_DIRS[t]).is_dir()
    ]
    if not tasks:
        folders = ", ".join(f"{LABEL_DIRS[t]}/" for t in TASKS)
        raise DataError(predictions, f"no prediction folder ({folders}) matching a ground-truth folder")
    return tasks


def evaluate(
    predictions: str | Path,
    dataset_root: str | Path,
    split: str | None = "test",
    tasks: Sequence[str] | None = None,
    absent_policy: str = "nan",
    per_image: bool = False,
    min_depth: float | None = None,
    max_depth: float | None = None,
    eigen_crop: bool = False,
    convention: str | None = None,
) -> dict[str, Any]:
    """Score a predictions folder against a folder dataset; returns the JSON-ready report.

    ``convention`` (``mtl_pytorch``, ``libmtl``, ``mtan``, ``densetorch``) sets that peer's
    ``absent_policy``, depth clamp and depth averaging at once; it excludes ``per_image`` and a
    non-default ``absent_policy``.

    Every sample of ``split`` that has a ground-truth label for a task needs a prediction file
    for it; samples without that label are skipped for that task (asymmetric annotations).
    Returns ``{"metrics": {name: value}, "per_class_iou": {class: iou}, "num_images": {task: n},
    ...}`` with NaN values written as ``None``.

    Raises:
        DataError: a missing folder or prediction file, an unreadable file (negative or NaN depth
            included), or predicted class ids outside the dataset's classes.
        ConfigError: an unknown ``convention``, or one combined with an option it sets.
    """
    peer = _convention(convention, absent_policy, per_image)
    absent_policy = peer["absent_policy"]
    predictions, dataset_root = Path(predictions), Path(dataset_root)
    tasks = _select_tasks(predictions, dataset_root, tasks)
    dataset = FolderDataset(dataset_root, split=split, tasks=tasks, use_pseudo=False)
    channels = {"semseg": dataset.num_classes, "depth": 1, "normals": 3}
    batch_size = peer["depth_batch_size"]
    options = {
        "semseg": {"absent_policy": absent_policy},
        "depth": {
            "min_depth": min_depth,
            "max_depth": max_depth,
            "eigen_crop": eigen_crop,
            "per_image": per_image,
            "clamp": peer["clamp"],
            "per_batch": batch_size is not None,
        },
    }
    metrics = MultiTaskMetrics({t: channels[t] for t in tasks}, options)
    counts = dict.fromkeys(tasks, 0)
    pending: list[tuple[torch.Tensor, torch.Tensor, str]] = []  # depth of an unfinished batch
    for index in range(len(dataset)):
        sample = dataset[index]
        sample_id = sample["meta"]["id"]
        size = tuple(sample["image"].shape[-2:])
        for task in tasks:
            if task not in sample:  # no ground truth for this task (pseudo-labels are not loaded)
                continue
            pred = read_prediction(predictions, task, sample_id, size)
            counts[task] += 1
            if task == "depth" and batch_size is not None:
                pending.append((pred, sample[task], sample_id))
                if len(pending) == batch_size:
                    _update_batch(metrics, predictions, pending)
                    pending = []
                continue
            try:
                metrics.metrics[task].update(pred[None], sample[task][None])
            except ValueError as exc:  # e.g. predicted class ids outside the dataset's classes
                raise DataError(prediction_path(predictions, task, sample_id), str(exc)) from None
    if pending:  # the last, smaller batch counts as much as the others (mtan's mean of batch means)
        _update_batch(metrics, predictions, pending)
    values = metrics.compute()
    report: dict[str, Any] = {
        "metrics": {name: _json_float(value) for name, value in values.items()},
        "num_images": counts,
        "split": split,
        "dataset_root": str(dataset_root),
        "predictions": str(predictions),
        "options": {
            "absent_policy": absent_policy,
            "per_image": per_image,
            "min_depth": min_depth,
            "max_depth": max_depth,
            "eigen_crop": eigen_crop,
            "convention": convention,
        },
    }
    if "semseg" in tasks:
        seg = metrics.metrics["semseg"]
        assert isinstance(seg, SegmentationMetrics)
        iou = seg.compute_per_class().tolist()
        report["per_class_iou"] = {name: _json_float(v) for name, v in zip(dataset.class_names, iou)}
    return report


def _convention(name: str | None, absent_policy: str, per_image: bool) -> dict[str, Any]:
    """The metric choices of ``name`` (or the given options when None), checked against them."""
    if name is None:
        return {"absent_policy": absent_policy, "clamp": "logs", "depth_batch_size": None}
    if name not in CONVENTIONS:
        raise ConfigError(f"--convention: unknown {name!r}; use one of {', '.join(CONVENTIONS)}")
    peer = CONVENTIONS[name]
    if per_image:
        raise ConfigError(f"--per-image conflicts with --convention {name} (which sets the depth averaging)")
    if absent_policy not in ("nan", peer["absent_policy"]):
        raise ConfigError(
            f"--absent-policy {absent_policy} conflicts with --convention {name} (absent policy {peer['absent_policy']})"
        )
    return peer


def _update_batch(
    metrics: MultiTaskMetrics, predictions: Path, batch: list[tuple[torch.Tensor, torch.Tensor, str]]
) -> None:
    """One depth update for a batch of samples (for a mean of per-batch means)."""
    sizes = {tuple(target.shape[-2:]) for _, target, _ in batch}
    if len(sizes) > 1:
        raise DataError(
            prediction_path(predictions, "depth", batch[-1][2]),
            f"per-batch depth averaging needs one ground-truth size per batch, got {sorted(sizes)}",
        )
    preds = torch.stack([pred for pred, _, _ in batch])
    metrics.metrics["depth"].update(preds, torch.stack([target for _, target, _ in batch]))


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"densemtl evaluate ({report['split']})")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report["metrics"].items():
        table.add_row(METRIC_TASK.get(name, ""), name, "nan" if value is None else f"{value:.4f}")
    if "delta_mtl" in report:
        table.add_row("all", f"delta_mtl ({report['delta_mode']})", f"{100 * report['delta_mtl']:+.2f} %")
    console = Console()
    console.print(table)
    if "per_class_iou" in report:
        per_class = Table(title="per-class IoU")
        per_class.add_column("class")
        per_class.add_column("IoU", justify="right")
        for name, value in report["per_class_iou"].items():
            per_class.add_row(name, "absent" if value is None else f"{value:.4f}")
        console.print(per_class)


def add_delta_mtl(report: dict[str, Any], baseline: str | Path, mode: str = "maninis") -> dict[str, Any]:
    """Add ``delta_mtl`` / ``delta_mode`` to ``report`` against the metrics.json ``baseline``.

    Δ_MTL of Maninis et al., CVPR 2019, Eq. 4 (:func:`densemtl.metrics.delta_mtl`), over the metrics
    both reports have a value for.
    """
    try:
        metrics = json.loads(Path(baseline).read_text())["metrics"]
    except FileNotFoundError:
        raise DataError(baseline, "file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DataError(baseline, "not a densemtl metrics.json (needs a 'metrics' object)") from None
    results = {k: v for k, v in report["metrics"].items() if v is not None}
    reference = {k: v for k, v in metrics.items() if v is not None}
    try:
        report["delta_mtl"] = delta_mtl(results, reference, mode=mode)
    except ValueError as exc:
        raise DataError(baseline, str(exc)) from None
    report["delta_mode"] = mode
    return report
