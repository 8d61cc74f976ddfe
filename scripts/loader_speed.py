"""Loader samples/s of every real-dataset format at its training resolution.

The datasets are tiny procedurally generated stand-ins written in each official on-disk format
(``tests/fixtures/real_formats.py``), so this runs without the real data:
``python scripts/loader_speed.py --samples 96`` (table in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from densemtl.data.check import measure_loader_speed
from densemtl.data.datasets import build_dataset
from densemtl.data.transforms import build_transforms
from fixtures.real_formats import EXAMPLE_SIZES, write_example


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="default: per dataset"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--dataset", action="append", default=None)
    args = parser.parse_args(argv)
    names = args.dataset or sorted(EXAMPLE_SIZES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            stored, train_size = EXAMPLE_SIZES[name]
            if args.size:
                stored = train_size = (int(args.size[0]), int(args.size[1]))
            kwargs = write_example(name, Path(tmp) / name, num_samples=args.samples, size=stored)
            dataset = build_dataset(name, transform=build_transforms(train_size, train=True), **kwargs)
            rate = measure_loader_speed(dataset, num_workers=args.workers, batch_size=args.batch_size)
            print(
                f"{name:16s} {rate:7.1f} samples/s  stored {stored[0]}x{stored[1]} -> train {train_size[0]}x{train_size[1]}"
                f"  ({args.workers} workers, batch {args.batch_size}, tasks {','.join(dataset.tasks)})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
