"""``densemtl demo``: render synthetic rooms, train the default joint model, evaluate, write a report.

The library side is :mod:`densemtl.analysis.demo`; the recipe is ``configs/demo.yaml``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from densemtl.analysis.demo import CONFIG_DIR, demo_overrides, run_demo
from densemtl.cli.lightning import build_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="run folder (report, checkpoints, logs)")
    parser.add_argument(
        "--config", default=str(CONFIG_DIR / "demo.yaml"), help="training recipe (LightningCLI YAML)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimiser steps")
    parser.add_argument("--num-images", type=int, default=None, help="override the number of rendered rooms")
    parser.add_argument("--panels", type=int, default=6, help="prediction panels in the report")
    parser.add_argument(
        "--fuse-trajectory",
        type=int,
        default=0,
        metavar="FRAMES",
        help="also fuse a rendered trajectory of FRAMES frames into a 3D semantic map with the trained "
        "checkpoint and the ground truth, and add it to the report (docs/fusion.md; default: off)",
    )
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides, e.g. --data.batch_size=8")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    start = time.perf_counter()
    overrides = demo_overrides(output, args.config, args.max_steps, args.num_images, args.overrides)
    cli = build_cli(overrides, run=False)
    metrics, timings, report = run_demo(
        cli.trainer, cli.model, cli.datamodule, output, args.panels, start, args.fuse_trajectory
    )
    print(
        f"[demo] mIoU {metrics.get('miou', float('nan')):.3f}  delta1 {metrics.get('delta1', float('nan')):.3f}  "
        f"abs_rel {metrics.get('abs_rel', float('nan')):.3f}  ({timings['total_s'] / 60:.1f} min)"
    )
    print(f"[demo] report: {report}")
    return 0
