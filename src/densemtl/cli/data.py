"""``densemtl data check`` (validate a dataset) and ``densemtl data convert`` (to the folder format).

The library side is :mod:`densemtl.data.check`; ``densemtl data render`` is
:mod:`densemtl.data.synthetic_cli`.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from densemtl.data.check import check_dataset, convert_dataset, print_reports
from densemtl.data.datasets import dataset_names
from densemtl.errors import DenseMTLError


def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["num_classes=13", "label_map=/x.tsv"]`` -> ``{"num_classes": 13, "label_map": "/x.tsv"}``."""
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DenseMTLError(f"dataset option {item!r} must look like key=value")
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(dataset_names())})")
    parser.add_argument("--root", required=True, type=Path, help="dataset root folder")
    parser.add_argument(
        "--split", action="append", default=None, help="split(s) to use (repeatable; default: all found)"
    )
    parser.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset constructor option, e.g. -o num_classes=13 -o label_map=/data/scannetv2-labels.combined.tsv",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples of each split")


def add_check_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``densemtl data check``."""
    _add_common(parser)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers reading samples")
    parser.add_argument("--max-errors", type=int, default=20, help="errors printed (all are counted)")
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Run ``densemtl data check``; 0 when the dataset is clean, 1 when errors were found."""
    try:
        reports, dataset = check_dataset(
            args.dataset, args.root, args.split, parse_options(args.option), args.limit, args.workers
        )
    except DenseMTLError as exc:
        print(f"error: {exc}")
        return 1
    print_reports(reports, dataset, args.max_errors)
    return 1 if any(r.errors for r in reports) else 0


def add_convert_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``densemtl data convert``."""
    _add_common(parser)
    parser.add_argument("--out", required=True, type=Path, help="output folder (generic folder format)")
    parser.add_argument("--image-ext", choices=("png", "jpg"), default="png", help="image format written")
    return parser


def run_convert(args: argparse.Namespace) -> int:
    """Run ``densemtl data convert``; 0 on success, 1 when samples had errors (the rest is written)."""
    try:
        errors = convert_dataset(
            args.dataset,
            args.root,
            args.out,
            args.split,
            parse_options(args.option),
            args.limit,
            args.image_ext,
        )
    except DenseMTLError as exc:
        print(f"error: {exc}")
        return 1
    if errors:
        print(f"{errors} error(s); run `densemtl data check` for details")
    return 1 if errors else 0
