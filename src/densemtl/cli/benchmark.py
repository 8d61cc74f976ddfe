"""``densemtl benchmark``: batch-1 latency along the deployment paths (:mod:`densemtl.analysis.benchmark`);
``--train``: steps/s of the ``fit`` loop against the bare optimiser step (:mod:`densemtl.analysis.train_throughput`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

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
from densemtl.errors import ConfigError, DenseMTLError
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
    train = parser.add_argument_group("training throughput (--train)")
    train.add_argument(
        "--train",
        action="store_true",
        help="time the fit loop of --config against the bare optimiser step, interleaved in rounds; "
        "--output rewrites the config's subsection of the training-throughput section",
    )
    train.add_argument("--config", default=None, help="training recipe (LightningCLI YAML) for --train")
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per round and path (default: the config's log_every_n_steps, so every "
        "round holds one metrics write)",
    )
    train.add_argument("--warmup_steps", type=int, default=10, help="untimed first steps of each path")
    train.add_argument("--rounds", type=int, default=20, help="rounds (bare, loop) to take medians over")
    train.add_argument(
        "overrides",
        nargs="*",
        help="--train: LightningCLI overrides of the config after --, e.g. -- --data.root data/nyu",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train:
        return run_train(args)
    if args.config or args.overrides:
        raise ConfigError("benchmark: --config and LightningCLI overrides are options of --train")
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


def run_train(args: argparse.Namespace) -> int:
    from densemtl.analysis import train_throughput as tt

    if args.model or args.ckpt:
        raise ConfigError("benchmark --train times a training recipe: give --config, not --model / --ckpt")
    if not args.config:
        raise ConfigError("benchmark --train needs --config FILE (a training recipe, e.g. configs/demo.yaml)")
    tt.check_counts(1 if args.steps is None else args.steps, args.warmup_steps, args.rounds)
    with tempfile.TemporaryDirectory(prefix="densemtl-throughput-") as root:
        cli = _build_cli(tt.throughput_overrides(args.config, root, args.overrides))
        result = tt.measure_train_throughput(
            cli.trainer, cli.model, cli.datamodule, args.steps, args.warmup_steps, args.rounds
        )
    machine = machine_description(result["settings"]["device"])
    command = tt.command_line(
        args.config, result["steps"], args.warmup_steps, args.rounds, args.threads, args.overrides
    )
    section = tt.markdown_section(result, args.config, command, machine)
    print(section)
    if args.output:
        tt.update_subsection(args.output, section)
        print(f"updated {args.output}")
    if args.json:
        tt.write_json(args.json, result, machine, command)
    return 0


def _build_cli(overrides: list[str]) -> Any:
    import warnings

    from densemtl.cli.lightning import build_cli

    try:
        with warnings.catch_warnings():  # the overrides are given beside sys.argv on purpose
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            return build_cli(overrides, run=False)
    except argparse.ArgumentError as exc:
        raise DenseMTLError(f"bad configuration: {' '.join(str(exc).split())}") from None
