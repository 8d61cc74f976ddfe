"""``densemtl benchmark``: batch-1 latency along the deployment paths (:mod:`densemtl.analysis.benchmark`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from densemtl.analysis.benchmark import (
    CPU_PATHS,
    CUDA_PATHS,
    command_line,
    markdown_section,
    run_benchmark,
    update_section,
)
from densemtl.analysis.profile import machine_description
from densemtl.cli.args import add_device_argument, add_model_arguments, add_threads_argument, parse_size
from densemtl.inference.export import load_for_export


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--model", default=None, help="registered model name or YAML config (default mt_refinenet)"
    )
    what.add_argument("--ckpt", default=None, help="training checkpoint to benchmark instead")
    add_model_arguments(parser)
    parser.add_argument("--size", default="480x640", help="input HEIGHTxWIDTH (default 480x640)")
    parser.add_argument(
        "--paths",
        default=None,
        help=f"comma-separated paths, timed interleaved (CPU default: {','.join(CPU_PATHS)}, the "
        "openvino ones where installed; also onnxruntime_plain and <exported path>+labels, e.g. "
        f"openvino+labels; CUDA default: {','.join(CUDA_PATHS)})",
    )
    parser.add_argument("--runs", type=int, default=20, help="timed passes per path (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes per path (default 3)")
    add_device_argument(parser)
    add_threads_argument(parser, help="torch / ORT CPU threads (default: torch's)")
    parser.add_argument(
        "--matmul-size", type=int, default=1024, help="n of the n x n matmul reference (default 1024)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown file whose benchmark section to rewrite"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also report OpenVINO's per-layer counters for the OpenVINO paths",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    name = args.ckpt or args.model or "mt_refinenet"
    model, _ = load_for_export(args.ckpt, None if args.ckpt else name, args.num_classes, args.tasks)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()] if args.paths else None
    result = run_benchmark(
        model, size, paths, args.runs, args.warmup, args.device, args.matmul_size, profile=args.profile
    )
    machine = machine_description(args.device)
    command = command_line(
        name, bool(args.ckpt), args.size, args.runs, args.warmup, args.device, args.paths, args.threads
    )
    section = markdown_section(result, name, command, machine)
    print(section)
    if args.output:
        update_section(args.output, section)
        print(f"updated {args.output}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "command": command, **result}, indent=2) + "\n")
    return 1 if any("error" in r for r in result["rows"]) else 0
