"""``densemtl report DIR...``: the comparison report of runs that already exist, without retraining.

Finds every run under the folders (``test_metrics.json`` beside its ``config.yaml`` / ``hparams.yaml``:
runs of ``fit``, ``test`` and ``compare`` alike), groups them by model and weighting, averages over
seeds and writes the tables, paired tests and figures of :mod:`densemtl.analysis.report`.

Example::

    densemtl report runs/compare runs/lightning_logs --output runs/report --reference mtl_hps
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densemtl.analysis.report import build_report, find_runs
from densemtl.analysis.stats import ALPHA
from densemtl.cli.args import add_device_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders searched (recursively) for runs")
    parser.add_argument("--output", default=None, help="folder for the report (default: the first DIR)")
    parser.add_argument(
        "--baseline", default="stl_aspp", help="single-task model of Δ_MTL, paired by seed ('' for none)"
    )
    parser.add_argument(
        "--reference",
        default="",
        help="model / weighting / model+weighting the paired tests compare against (default: --baseline)",
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level of the paired t-test")
    parser.add_argument("--profile-runs", type=positive_int, default=5, help="timed forward passes per model")
    add_device_argument(parser, help="device for profiling (cpu or cuda[:N])")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output or args.dirs[0])
    _, paths = build_report(
        find_runs(args.dirs),
        output,
        baseline=args.baseline or "",
        reference=args.reference,
        alpha=args.alpha,
        device=args.device,
        profile_runs=args.profile_runs,
    )
    print(paths["md"].read_text())
    print(f"[report] wrote {paths['md']} and {paths['html']}")
    return 0
