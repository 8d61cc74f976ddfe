"""``densemtl evaluate``: score saved predictions against a folder-format dataset (:mod:`densemtl.analysis.evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from densemtl.analysis.evaluate import add_delta_mtl, evaluate, print_report
from densemtl.cli.args import parse_tasks
from densemtl.data.sample import TASKS
from densemtl.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions", type=Path, required=True, help="folder with semantic/, depth/, normals/"
    )
    parser.add_argument(
        "--dataset-root", type=Path, required=True, help="dataset in the generic folder format"
    )
    parser.add_argument("--split", default="test", help="split name in <data.root>/splits/")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON file to write (default: <predictions>/metrics.json)"
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help=f"comma-separated tasks to score, of {','.join(TASKS)} (default: every prediction folder)",
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
        "--convention",
        choices=("mtl_pytorch", "libmtl", "mtan", "densetorch"),
        default=None,
        help="all of one peer's metric choices (absent classes, depth clamp, depth averaging); docs/metrics.md",
    )
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
    tasks = parse_tasks(args.tasks) if args.tasks else None
    unknown = sorted(set(tasks or ()) - set(TASKS))
    if unknown:
        raise ConfigError(f"--tasks: unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    report = evaluate(
        args.predictions,
        args.dataset_root,
        split=args.split,
        tasks=tasks,
        absent_policy=args.absent_policy,
        per_image=args.per_image,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        eigen_crop=args.eigen_crop,
        convention=args.convention,
    )
    if args.baseline is not None:
        add_delta_mtl(report, args.baseline, args.delta_mode)
    output = args.output if args.output is not None else Path(args.predictions) / "metrics.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"wrote {output}")
    return 0
