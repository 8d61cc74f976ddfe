"""``densemtl evaluate``: score prediction files against a dataset in the generic folder format.

Predictions live in a folder laid out like the dataset's label folders (docs/data.md)::

    <predictions>/semantic/<id>.png     class ids (uint8/uint16)
    <predictions>/depth/<id>.npy|png    float32 metres (.npy) or uint16 millimetres (.png)
    <predictions>/normals/<id>.npy|png  [H, W, 3] float or RGB (n + 1) * 127.5 (optional)

Ground truth is read with :class:`densemtl.data.datasets.folder.FolderDataset` (pseudo-labels are never
read). A prediction whose size differs from its ground truth is resized to the ground-truth size:
semantic ids with nearest neighbour (``nearest-exact``, pixel centres), depth and normals
bilinearly (``align_corners=False``; normals are re-normalised by the metric). The metrics and
their conventions are those of :mod:`densemtl.metrics` (docs/metrics.md); the JSON written holds
the flat metric dict, the per-class IoU keyed by class name and the number of images per task.

Example::

    densemtl evaluate --predictions runs/x/pred --dataset-root data/nyuv2 --split test --output metrics.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.data.datasets.folder import DEPTH_PNG_SCALE, LABEL_DIRS, FolderDataset
from densemtl.data.sample import TASKS
from densemtl.errors import DataError, DenseMTLError
from densemtl.metrics import METRIC_TASK, MultiTaskMetrics, SegmentationMetrics, delta_mtl

__all__ = ["add_arguments", "evaluate", "main", "read_prediction", "run"]

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
) -> dict[str, Any]:
    """Score a predictions folder against a folder dataset; returns the JSON-ready report.

    Every sample of ``split`` that has a ground-truth label for a task needs a prediction file
    for it; samples without that label are skipped for that task (asymmetric annotations).
    Returns ``{"metrics": {name: value}, "per_class_iou": {class: iou}, "num_images": {task: n},
    ...}`` with NaN values written as ``None``.

    Raises:
        DataError: a missing folder or prediction file, an unreadable file, or predicted class ids
            outside the dataset's classes.
    """
    predictions, dataset_root = Path(predictions), Path(dataset_root)
    tasks = _select_tasks(predictions, dataset_root, tasks)
    dataset = FolderDataset(dataset_root, split=split, tasks=tasks, use_pseudo=False)
    channels = {"semseg": dataset.num_classes, "depth": 1, "normals": 3}
    options = {
        "semseg": {"absent_policy": absent_policy},
        "depth": {
            "min_depth": min_depth,
            "max_depth": max_depth,
            "eigen_crop": eigen_crop,
            "per_image": per_image,
        },
    }
    metrics = MultiTaskMetrics({t: channels[t] for t in tasks}, options)
    counts = dict.fromkeys(tasks, 0)
    for index in range(len(dataset)):
        sample = dataset[index]
        sample_id = sample["meta"]["id"]
        size = tuple(sample["image"].shape[-2:])
        for task in tasks:
            if task not in sample:  # no ground truth for this task (pseudo-labels are not loaded)
                continue
            pred = read_prediction(predictions, task, sample_id, size)
            try:
                metrics.metrics[task].update(pred[None], sample[task][None])
            except ValueError as exc:  # e.g. predicted class ids outside the dataset's classes
                raise DataError(prediction_path(predictions, task, sample_id), str(exc)) from None
            counts[task] += 1
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
        },
    }
    if "semseg" in tasks:
        seg = metrics.metrics["semseg"]
        assert isinstance(seg, SegmentationMetrics)
        iou = seg.compute_per_class().tolist()
        report["per_class_iou"] = {name: _json_float(v) for name, v in zip(dataset.class_names, iou)}
    return report


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _print_report(report: dict[str, Any]) -> None:
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser`` (used by ``densemtl.cli`` and :func:`main`)."""
    parser.add_argument(
        "--predictions", type=Path, required=True, help="folder with semantic/, depth/, normals/"
    )
    parser.add_argument(
        "--dataset-root", type=Path, required=True, help="dataset in the generic folder format"
    )
    parser.add_argument(
        "--split", default="test", help="split name in <dataset-root>/splits/ (default: test)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON file to write (default: <predictions>/metrics.json)"
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=TASKS,
        default=None,
        help="tasks to score (default: every prediction folder)",
    )
    parser.add_argument(
        "--absent-policy",
        choices=("nan", "zero"),
        default="nan",
        help="IoU of a class absent from prediction and ground truth: skipped (nan) or 0 (zero)",
    )
    parser.add_argument(
        "--per-image", action="store_true", help="average depth metrics per image, not per pixel"
    )
    parser.add_argument("--min-depth", type=float, default=None, help="ignore ground truth <= this (metres)")
    parser.add_argument("--max-depth", type=float, default=None, help="ignore ground truth >= this (metres)")
    parser.add_argument("--eigen-crop", action="store_true", help="evaluate depth inside the Eigen crop only")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="a baseline metrics.json: also report Δ_MTL"
    )
    parser.add_argument(
        "--delta-mode",
        choices=("maninis", "task_mean", "metric_mean"),
        default="maninis",
        help="Δ_MTL variant (default: maninis, one metric per task)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; prints a table, writes JSON, returns 0.

    Raises:
        DenseMTLError: bad input (the CLI prints it as one line).
    """
    report = evaluate(
        args.predictions,
        args.dataset_root,
        split=args.split,
        tasks=args.tasks,
        absent_policy=args.absent_policy,
        per_image=args.per_image,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        eigen_crop=args.eigen_crop,
    )
    if args.baseline is not None:
        try:
            baseline = json.loads(Path(args.baseline).read_text())["metrics"]
        except FileNotFoundError:
            raise DataError(args.baseline, "file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(args.baseline, "not a densemtl metrics.json (needs a 'metrics' object)") from None
        results = {k: v for k, v in report["metrics"].items() if v is not None}
        baseline = {k: v for k, v in baseline.items() if v is not None}
        try:
            report["delta_mtl"] = delta_mtl(results, baseline, mode=args.delta_mode)
        except ValueError as exc:
            raise DataError(args.baseline, str(exc)) from None
        report["delta_mode"] = args.delta_mode
    output = args.output if args.output is not None else Path(args.predictions) / "metrics.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    _print_report(report)
    print(f"wrote {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m densemtl.analysis.evaluate``); prints user errors as one line."""
    parser = argparse.ArgumentParser(prog="densemtl evaluate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DenseMTLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
