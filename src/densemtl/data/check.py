"""``densemtl data check`` (validate a dataset) and ``densemtl data convert`` (to the folder format).

``check`` builds the dataset leniently (``strict=False``), reads every sample and reports:
missing pairs (an image without its label or a label without its image), unreadable files, size
mismatches, label ids outside the class set, NaN/negative depth (each as one line naming the
file), plus the depth range and invalid fraction, the fraction of normals facing the camera, and
per-class pixel counts. It prints rich tables and returns a non-zero exit code when any error was
found. ``convert`` writes any registered dataset to the generic folder format
(:mod:`densemtl.data.datasets.folder`: depth uint16 millimetres, labels in the dataset's class set, e.g.
the 19 Cityscapes trainIds by default).

The commands are :mod:`densemtl.cli.data`; this module holds :func:`check_dataset`,
:func:`print_reports`, :func:`convert_dataset` and :func:`measure_loader_speed`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from densemtl.data.datasets import build_dataset
from densemtl.data.sample import IGNORE_INDEX, collate
from densemtl.errors import DataError, DenseMTLError

DEFAULT_SPLITS = ("train", "val", "test")


def open_splits(
    name: str, root: Path, requested: Sequence[str] | None, options: dict[str, Any]
) -> list[tuple[str, Any]]:
    """``[(split, dataset or DataError)]`` for the requested splits, or for the dataset's standard
    splits that exist (``strict=False``: missing pairs are kept in ``dataset.problems``)."""
    if requested:
        return [(split, _build_or_error(name, root, split, options)) for split in requested]
    from densemtl.data.datasets import DATASETS

    known = list(getattr(DATASETS.get(name), "split_sizes", {}) or DEFAULT_SPLITS)
    opened = [(split, _build_or_error(name, root, split, options)) for split in known]
    found = [(split, d) for split, d in opened if not isinstance(d, DataError)]
    if not found:
        first = opened[0][1]
        raise DataError(first.path, f"{first.problem} (tried splits {', '.join(known)}; pass --split)")
    return found


def _build_or_error(name: str, root: Path, split: str, options: dict[str, Any]) -> Any:
    try:
        return _build(name, root, split, options)
    except DataError as exc:
        return exc


def _build(name: str, root: Path, split: str, options: dict[str, Any]) -> Any:
    try:
        return build_dataset(name, root=root, split=split, strict=False, **options)
    except TypeError as exc:
        if "strict" not in str(exc):
            raise DenseMTLError(f"bad option for dataset {name!r}: {exc}") from None
        return build_dataset(name, root=root, split=split, **options)


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
@dataclass
class SplitReport:
    """What ``check`` found in one split."""

    split: str
    num_samples: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    class_pixels: np.ndarray | None = None
    ignore_pixels: int = 0
    labelled: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # samples without a label, per task
    depth_min: float = math.inf
    depth_max: float = 0.0
    depth_sum: float = 0.0
    depth_valid: int = 0
    depth_pixels: int = 0
    normals_valid: int = 0
    normals_pixels: int = 0
    normals_facing: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)


def _identity(x: Any) -> Any:
    return x


class _SampleStats(Dataset):
    """Wraps a dataset: item i -> small dict of statistics, or the error message (runs in workers)."""

    def __init__(self, dataset: Any, limit: int | None) -> None:
        self.dataset = dataset
        self.length = len(dataset) if limit is None else min(limit, len(dataset))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            sample = self.dataset[index]
        except DataError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # a bug or an unexpected format: still report, with the sample id
            ident = self.dataset.ids[index] if hasattr(self.dataset, "ids") else index
            return {"error": f"sample {ident}: unexpected {exc.__class__.__name__}: {exc}"}
        return sample_stats(sample, getattr(self.dataset, "num_classes", 0))


def sample_stats(sample: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Per-sample statistics: class pixel counts, depth range / validity, normals facing the camera."""
    height, width = sample["image"].shape[-2:]
    stats: dict[str, Any] = {"size": (int(height), int(width)), "tasks": []}
    if "semseg" in sample:
        labels = sample["semseg"].numpy().ravel()
        ignore = labels == IGNORE_INDEX
        stats["ignore"] = int(ignore.sum())
        stats["classes"] = np.bincount(labels[~ignore], minlength=num_classes)[:num_classes]
        stats["tasks"].append("semseg")
    if "depth" in sample:
        depth = sample["depth"].numpy().ravel()
        valid = depth[depth > 0]
        stats["depth"] = (
            float(valid.min()) if valid.size else math.inf,
            float(valid.max()) if valid.size else 0.0,
            float(valid.sum(dtype=np.float64)),
            int(valid.size),
            int(depth.size),
        )
        stats["tasks"].append("depth")
    if "normals" in sample:
        normals = sample["normals"].numpy()
        valid = np.abs(normals).sum(0) > 0
        intrinsics = sample.get("meta", {}).get("intrinsics")
        if intrinsics is not None:
            fx, fy, cx, cy = (float(v) for v in intrinsics)
        else:
            fx = fy = float(max(height, width))
            cx, cy = (width - 1) / 2, (height - 1) / 2
        u = (np.arange(width) - cx) / fx
        v = (np.arange(height) - cy) / fy
        facing = normals[0] * u[None, :] + normals[1] * v[:, None] + normals[2] < 0
        stats["normals"] = (int(valid.sum()), int(valid.size), int((facing & valid).sum()))
        stats["tasks"].append("normals")
    return stats


def _accumulate(report: SplitReport, stats: dict[str, Any], num_classes: int) -> None:
    if "error" in stats:
        report.errors.append(stats["error"])
        return
    report.sizes.add(stats["size"])
    for task in stats["tasks"]:
        report.labelled[task] = report.labelled.get(task, 0) + 1
    if "classes" in stats:
        if report.class_pixels is None:
            report.class_pixels = np.zeros(num_classes, dtype=np.int64)
        report.class_pixels += stats["classes"]
        report.ignore_pixels += stats["ignore"]
    if "depth" in stats:
        lo, hi, total, valid, pixels = stats["depth"]
        report.depth_min, report.depth_max = min(report.depth_min, lo), max(report.depth_max, hi)
        report.depth_sum += total
        report.depth_valid += valid
        report.depth_pixels += pixels
    if "normals" in stats:
        valid, pixels, facing = stats["normals"]
        report.normals_valid += valid
        report.normals_pixels += pixels
        report.normals_facing += facing


def check_dataset(
    name: str,
    root: str | Path,
    splits: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    workers: int = 0,
) -> tuple[list[SplitReport], Any]:
    """Validate ``name`` at ``root``; returns one :class:`SplitReport` per split and the last dataset."""
    options = dict(options or {})
    root = Path(root)
    reports, dataset = [], None
    for split, opened in open_splits(name, root, splits, options):
        report = SplitReport(split)
        reports.append(report)
        if isinstance(opened, DataError):
            report.errors.append(str(opened))
            continue
        dataset = opened
        report.errors.extend(str(p) for p in getattr(dataset, "problems", []))
        report.num_samples = len(dataset)
        expected = getattr(dataset, "split_sizes", {}).get(split)
        if expected is not None and expected != report.num_samples:
            report.warnings.append(
                f"{split}: {report.num_samples} samples, the standard split has {expected}"
            )
        num_classes = dataset.num_classes
        loader = DataLoader(
            _SampleStats(dataset, limit), batch_size=None, num_workers=workers, collate_fn=_identity
        )
        for stats in loader:
            _accumulate(report, stats, num_classes)
        checked = min(report.num_samples, limit) if limit else report.num_samples
        checked -= len(report.errors)
        for task in getattr(dataset, "tasks", ()):
            lacking = checked - report.labelled.get(task, 0)
            if lacking > 0:
                report.missing[task] = lacking
                report.warnings.append(
                    f"{split}: {lacking} of {checked} samples lack a {task} label "
                    f"(no file in {task}'s folder): they train and score without {task}"
                )
        if report.class_pixels is not None:
            unseen = [dataset.class_names[i] for i in np.flatnonzero(report.class_pixels == 0)]
            if unseen:
                report.warnings.append(
                    f"{split}: classes without any pixel: {', '.join(unseen[:8])}{'...' * (len(unseen) > 8)}"
                )
        if report.normals_valid and report.normals_facing / report.normals_valid < 0.9:
            report.warnings.append(
                f"{split}: only {100 * report.normals_facing / report.normals_valid:.1f} % of the normals face the camera; "
                "are they in OpenCV camera axes (x right, y down, z forward)? see the normals_axes option"
            )
        target = getattr(dataset, "depth_target", "depth")
        if target != "depth" and report.depth_valid:
            report.warnings.append(f"{split}: 'depth' holds {target}, not metres")
    return reports, dataset


def print_reports(reports: Sequence[SplitReport], dataset: Any, max_errors: int = 20) -> None:
    """Summary tables (rich) of :func:`check_dataset`'s reports."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    summary = Table(title="dataset check")
    for column in (
        "split",
        "samples",
        "sizes (HxW)",
        "labelled",
        "depth range",
        "depth invalid",
        "normals facing",
        "errors",
    ):
        summary.add_column(column, justify="right" if column not in ("split", "labelled") else "left")
    for r in reports:
        sizes = ", ".join(f"{h}x{w}" for h, w in sorted(r.sizes)[:3]) + (" ..." if len(r.sizes) > 3 else "")
        labelled = ", ".join(f"{t} {n}" for t, n in r.labelled.items()) or "-"
        depth = (
            f"{r.depth_min:.3g} .. {r.depth_max:.3g} (mean {r.depth_sum / r.depth_valid:.3g})"
            if r.depth_valid
            else "-"
        )
        invalid = f"{100 * (1 - r.depth_valid / r.depth_pixels):.1f} %" if r.depth_pixels else "-"
        facing = f"{100 * r.normals_facing / r.normals_valid:.1f} %" if r.normals_valid else "-"
        errors = f"[red]{len(r.errors)}[/red]" if r.errors else "0"
        summary.add_row(r.split, str(r.num_samples), sizes or "-", labelled, depth, invalid, facing, errors)
    console.print(summary)
    with_classes = [r for r in reports if r.class_pixels is not None]
    if with_classes and dataset is not None:
        classes = Table(title="pixels per class")
        classes.add_column("id", justify="right")
        classes.add_column("class")
        for r in with_classes:
            classes.add_column(r.split, justify="right")
        totals = [max(1, int(r.class_pixels.sum()) + r.ignore_pixels) for r in with_classes]  # type: ignore[union-attr]
        for index, cname in enumerate(dataset.class_names):
            cells = [
                f"{int(r.class_pixels[index]):,} ({100 * r.class_pixels[index] / t:.1f} %)"
                for r, t in zip(with_classes, totals)
            ]  # type: ignore[index]
            classes.add_row(str(index), cname, *cells)
        classes.add_row(
            str(IGNORE_INDEX),
            "(ignore)",
            *[
                f"{r.ignore_pixels:,} ({100 * r.ignore_pixels / t:.1f} %)"
                for r, t in zip(with_classes, totals)
            ],
        )
        console.print(classes)
    for r in reports:
        for warning in r.warnings:
            console.print(
                "warning: " + warning, style="yellow", highlight=False, markup=False, soft_wrap=True
            )
    errors = [e for r in reports for e in r.errors]
    for error in errors[:max_errors]:
        console.print("error: " + error, style="red", highlight=False, markup=False, soft_wrap=True)
    if len(errors) > max_errors:
        console.print(f"... and {len(errors) - max_errors} more errors", style="red")
    console.print("[green]OK[/green]" if not errors else f"[red]{len(errors)} error(s)[/red]")


# --------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------
FOLDER_MAX_DEPTH = 65.535  # uint16 millimetres


def convert_dataset(
    name: str,
    root: str | Path,
    out: str | Path,
    splits: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    image_ext: str = "png",
    log: Any = print,
) -> int:
    """Write ``name`` at ``root`` to the folder format at ``out``; returns the number of errors."""
    from densemtl.data.datasets.folder import write_metadata, write_sample

    options = dict(options or {})
    root, out = Path(root), Path(out)
    datasets = {}
    for split, opened in open_splits(name, root, splits, options):
        if isinstance(opened, DataError):
            raise opened
        datasets[split] = opened
    all_ids = [i for d in datasets.values() for i in d.ids]
    prefix = len(set(all_ids)) != len(all_ids)
    errors = 0
    written: dict[str, list[str]] = {}
    intrinsics: list[tuple[float, ...]] = []
    far_pixels = 0
    skipped_depth = False
    dataset = None
    for split, dataset in datasets.items():
        for problem in getattr(dataset, "problems", []):
            log(f"error: {problem}")
            errors += 1
        written[split] = []
        target = getattr(dataset, "depth_target", "depth")
        count = len(dataset) if limit is None else min(limit, len(dataset))
        for index in range(count):
            try:
                sample = dataset[index]
            except DataError as exc:
                log(f"error: {exc}")
                errors += 1
                continue
            sample_id = f"{split}_{dataset.ids[index]}" if prefix else str(dataset.ids[index])
            rgb = (sample["image"].permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
            depth = None
            if "depth" in sample:
                if target != "depth":
                    skipped_depth = True
                else:
                    depth = sample["depth"][0].numpy().copy()
                    far = depth > FOLDER_MAX_DEPTH
                    far_pixels += int(far.sum())
                    depth[far] = 0.0
            semantic = sample["semseg"].numpy() if "semseg" in sample else None
            normals = sample["normals"].permute(1, 2, 0).numpy() if "normals" in sample else None
            write_sample(
                out, sample_id, rgb, depth=depth, semantic=semantic, normals=normals, image_ext=image_ext
            )
            if "intrinsics" in sample["meta"]:
                intrinsics.append(tuple(float(v) for v in sample["meta"]["intrinsics"]))
            written[split].append(sample_id)
        log(f"{split}: wrote {len(written[split])} samples to {out}")
    assert dataset is not None
    common = None
    if intrinsics and len(intrinsics) == sum(len(v) for v in written.values()):
        first = np.array(intrinsics[0])
        if all(np.allclose(first, k, rtol=1e-4) for k in intrinsics):
            common = dict(zip(("fx", "fy", "cx", "cy"), first.tolist()))
    if intrinsics and common is None:
        log(
            "note: intrinsics differ between samples; the folder format stores one intrinsics.json, none written"
        )
    if skipped_depth:
        log(f"note: 'depth' of {name} holds {getattr(dataset, 'depth_target', '?')}, not metres: not written")
    if far_pixels:
        log(
            f"note: {far_pixels} depth pixels beyond {FOLDER_MAX_DEPTH} m (the uint16-mm limit) written as invalid"
        )
    write_metadata(out, dataset.class_names, dataset.class_colors, intrinsics=common, splits=written)
    return errors


# --------------------------------------------------------------------------------------------
# loader speed
# --------------------------------------------------------------------------------------------
def measure_loader_speed(
    dataset: Any, num_workers: int = 2, batch_size: int = 8, max_batches: int | None = None, warmup: int = 1
) -> float:
    """Samples per second through a DataLoader (``collate`` of :mod:`densemtl.data.sample`).

    The first ``warmup`` batches (worker start-up) are not timed.
    """
    tasks = tuple(getattr(dataset, "tasks", ()))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, tasks=tasks),
        persistent_workers=False,
    )
    count, start = 0, None
    for number, batch in enumerate(loader):
        if number == warmup:
            start = time.perf_counter()
        if number >= warmup:
            count += batch["image"].shape[0]
        if max_batches is not None and number + 1 >= warmup + max_batches:
            break
    if start is None or count == 0:
        raise ValueError("not enough batches to time; lower warmup or use a larger dataset")
    return count / (time.perf_counter() - start)
