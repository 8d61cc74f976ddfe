"""``densemtl profile``: parameters, MACs / FLOPs, latency and peak memory (:mod:`densemtl.analysis.profile`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from densemtl.analysis import profile
from densemtl.cli.args import add_device_argument, add_threads_argument, parse_size
from densemtl.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="backbone name, registered model name, or path of a YAML config")
    what.add_argument("--list", action="store_true", help="list the registered backbones and models")
    what.add_argument(
        "--all",
        action="store_true",
        help="profile every registered backbone and model, update --benchmarks-file",
    )
    parser.add_argument("--size", default="480x640", help="input HEIGHTxWIDTH (default 480x640)")
    parser.add_argument("--num-classes", type=int, default=40, help="semseg channels (default 40, NYUv2)")
    parser.add_argument(
        "--tasks", default="semseg,depth", help="comma-separated tasks for models (default semseg,depth)"
    )
    add_device_argument(parser)
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes first (default 3)")
    parser.add_argument("--runs", type=int, default=10, help="timed passes (default 10)")
    add_threads_argument(parser)
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON"
    )
    parser.add_argument(
        "--benchmarks-file",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="markdown file whose '## Model cost' section --all rewrites (default docs/benchmarks.md)",
    )
    return parser


def _command_line(args: argparse.Namespace) -> str:
    parts = ["densemtl profile", "--all" if args.all else f"--model {args.model}", f"--size {args.size}"]
    parts += [f"--tasks {args.tasks}", f"--num-classes {args.num_classes}", f"--device {args.device}"]
    parts += [f"--batch {args.batch}", f"--warmup {args.warmup}", f"--runs {args.runs}"]
    if args.threads:
        parts.append(f"--threads {args.threads}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.list:
        names = profile.registered_names()
        backbones = [n for n, kind in names if kind == "backbone"]
        models = [n for n, kind in names if kind == "model"]
        print("backbones: " + ", ".join(backbones))
        print("models: " + (", ".join(models) if models else "(none available)"))
        return 0
    size = parse_size(args.size)
    profile.parse_tasks(args.tasks, args.num_classes)
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs: dict[str, Any] = {
        "input_size": size,
        "batch": args.batch,
        "device": args.device,
        "warmup": args.warmup,
        "runs": args.runs,
    }
    machine = profile.machine_description(args.device)
    if not args.all:
        model, kind = profile.resolve_model(args.model, args.tasks, args.num_classes)
        result = profile.profile_model(model, **kwargs)
        profile.print_result(args.model, kind, result)
        if args.json:
            payload = {"model": args.model, "kind": kind, "machine": machine, **result}
            args.json.write_text(json.dumps(payload, indent=2) + "\n")
        return 0

    from rich.console import Console

    console = Console()
    rows = profile.profile_registered(args.tasks, args.num_classes, log=console.print, **kwargs)
    section = profile.benchmark_section(rows, _command_line(args), machine)
    console.print(section)
    bench = Path(args.benchmarks_file)
    if not bench.parent.is_dir():
        raise ConfigError(
            f"{bench.parent}/ not found: run from the repository root or pass --benchmarks-file"
        )
    profile.update_benchmarks_section(bench, section)
    console.print(f"updated {bench}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    return 1 if any("error" in r for r in rows) else 0
