"""``densemtl data render``: render the synthetic rooms to the generic folder format (cached), or
with ``--trajectory N`` camera walks through N rooms with poses and ground-truth surfaces."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=None,
        help="output folder (default: data_cache/synthetic-<N>-<H>x<W>-s<seed>, as the demo uses; "
        "with --trajectory: data_cache/synthetic-traj-<N>x<frames>-<H>x<W>-s<seed>)",
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
    parser.add_argument(
        "--trajectory",
        type=int,
        default=0,
        metavar="N",
        help="render N camera trajectories (one room each: frames, poses/, surface.npz; "
        "docs/data.md, Trajectories) instead of --num-images single images",
    )
    parser.add_argument("--frames", type=int, default=60, help="frames per trajectory (30-300 typical)")
    parser.add_argument(
        "--surface-spacing",
        type=float,
        default=0.01,
        help="ground-truth surface sampling pitch in metres (0.01: >= 1 point per cm^2)",
    )


def run(args: argparse.Namespace) -> int:
    from densemtl.cli.args import parse_size
    from densemtl.data.synthetic import benchmark_render, render_dataset

    height, width = parse_size(args.size)
    if args.benchmark:
        rate = benchmark_render(
            height, width, num_images=max(args.num_images // 20, 20), workers=args.workers
        )
        print(f"render speed at {height}x{width} with {args.workers} worker(s): {rate:.1f} images/s")
        return 0
    start = time.perf_counter()
    if args.trajectory:
        from densemtl.data.synthetic.trajectory import render_trajectories

        root = (
            Path(args.root)
            if args.root
            else trajectory_root(args.trajectory, args.frames, height, width, args.seed)
        )
        render_trajectories(
            root,
            args.trajectory,
            frames=args.frames,
            height=height,
            width=width,
            seed=args.seed,
            surface_spacing=args.surface_spacing,
            workers=args.workers,
        )
        elapsed = time.perf_counter() - start
        print(
            f"synthetic trajectories ready at {root} ({args.trajectory} x {args.frames} frames, {elapsed:.1f} s)"
        )
        return 0
    from densemtl.data.datamodule import synthetic_root  # imports Lightning: only when needed

    root = Path(args.root) if args.root else synthetic_root(args.num_images, height, width, args.seed)
    render_dataset(root, args.num_images, height, width, seed=args.seed, workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"synthetic dataset ready at {root} ({args.num_images} images, {elapsed:.1f} s)")
    return 0


def trajectory_root(num_trajectories: int, frames: int, height: int, width: int, seed: int) -> Path:
    """Default output folder of ``data render --trajectory`` (beside the single-image caches)."""
    return Path("data_cache") / f"synthetic-traj-{num_trajectories}x{frames}-{height}x{width}-s{seed}"
