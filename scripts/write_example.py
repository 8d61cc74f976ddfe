"""Write a procedurally generated example of a real dataset in its official on-disk format.

The writers are ``tests/fixtures/real_formats.py``'s; e.g. the training-throughput stand-ins of
docs/benchmarks.md: ``python scripts/write_example.py nyuv2 data_cache/example_nyuv2 --samples 80``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.real_formats import EXAMPLE_SIZES, write_example


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(EXAMPLE_SIZES))
    parser.add_argument("root", type=Path, help="folder to write (the dataset's data.root)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="default: the official size"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kwargs = write_example(args.dataset, args.root, args.samples, args.size, args.seed)
    print(f"wrote {args.samples} {args.dataset} samples under {kwargs['root']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
