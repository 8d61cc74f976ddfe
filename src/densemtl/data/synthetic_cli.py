"""``densemtl data render``: render the synthetic rooms to the generic folder format (cached)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=None,
        help="output folder (default: data_cache/synthetic-<N>-<H>x<W>-s<seed>, as the demo uses)",
    )
    parser.add_argument("--num-images", type=int, default=1200)
    parser.add_argument("--size", default="240x320", help="HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help="only measure rendering speed (images/s, no disk writes) and print it",
    )


def run(args: argparse.Namespace) -> int:
    from densemtl.data.datamodule import synthetic_root
    from densemtl.data.synthetic import benchmark_render, render_dataset
    from densemtl.inference.predict import parse_size

    height, width = parse_size(args.size)
    if args.benchmark:
        rate = benchmark_render(
            height, width, num_images=max(args.num_images // 20, 20), workers=args.workers
        )
        print(f"render speed at {height}x{width} with {args.workers} worker(s): {rate:.1f} images/s")
        return 0
    root = Path(args.root) if args.root else synthetic_root(args.num_images, height, width, args.seed)
    start = time.perf_counter()
    render_dataset(root, args.num_images, height, width, seed=args.seed, workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"synthetic dataset ready at {root} ({args.num_images} images, {elapsed:.1f} s)")
    return 0
