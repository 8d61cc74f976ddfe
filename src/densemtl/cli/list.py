"""``densemtl list KIND``: the registered tasks, models, backbones, datasets or weightings, one per line.

Each line is the name and the first line of its constructor's docstring (the paper, or for
datasets the on-disk format): :func:`densemtl.analysis.registries.registry_rows`.
"""

from __future__ import annotations

import argparse

from densemtl.analysis.registries import KINDS, registry_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=tuple(KINDS), help="which registry to list")


def run(args: argparse.Namespace) -> int:
    rows = registry_rows(args.kind)
    width = max((len(name) for name, _ in rows), default=0)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0
