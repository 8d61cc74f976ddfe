"""``densemtl compare``: train models / weightings under one protocol over seeds and tabulate them.

Library: :mod:`densemtl.analysis.compare` (runs: :mod:`densemtl.analysis.sweep`, report:
:mod:`densemtl.analysis.report`). Rerunning the same command skips finished runs, resumes
interrupted ones from their ``checkpoints/last.ckpt`` and rebuilds the report.

Example::

    densemtl compare --models stl_aspp,mtl_hps,mtl_ssw --config configs/nyud_mtl_ssw.yaml \\
        --seeds 0,1,2 --max-steps 2000 --output runs/compare -- --data.root data/nyud
    densemtl compare --models hard_sharing --weightings fixed,uncertainty,dwa --config configs/demo.yaml \\
        --seeds 0,1,2 --baseline '' --reference fixed --launcher local --parallel 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from densemtl.analysis.compare import parse_seeds, recipe_seed, run_comparison, sweep_specs
from densemtl.cli.args import add_device_argument, positive_int
from densemtl.cli.sweep_run import run_one
from densemtl.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sweep",
        default=None,
        help="YAML file of these options (configs/sweeps/*.yaml); the command line overrides it",
    )
    parser.add_argument("--models", default=None, help="comma-separated registered model names")
    parser.add_argument("--config", default=None, help="the shared training recipe (LightningCLI YAML)")
    parser.add_argument("--output", default="runs/compare", help="folder for runs, table and plot")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimiser steps")
    parser.add_argument(
        "--baseline",
        default="stl_aspp",
        help="model whose results are the single-task reference of Δ_MTL ('' for none)",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="seeds, e.g. 0,1,2 or 0-2; one run per (model, seed) (default: the recipe's seed_everything)",
    )
    parser.add_argument(
        "--weightings",
        default=None,
        help="comma-separated loss weightings to compare (default: the recipe's model.weighting)",
    )
    parser.add_argument(
        "--reference",
        default="",
        help="model (or weighting, or model+weighting) the paired tests compare against (default: --baseline)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=50,
        help="optimiser steps between each run's checkpoints/last.ckpt (what a crash can lose)",
    )
    parser.add_argument(
        "--launcher", choices=("local", "slurm"), default="local", help="how runs are started"
    )
    parser.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        help="local launcher: runs at a time (>1: subprocesses, each with its share of threads / GPUs)",
    )
    parser.add_argument("--slurm-partition", default=None, help="slurm launcher: partition")
    parser.add_argument(
        "--slurm-time", type=positive_int, default=240, help="slurm launcher: minutes per job"
    )
    parser.add_argument("--slurm-gpus-per-job", type=int, default=0, help="slurm launcher: GPUs per job")
    parser.add_argument("--slurm-cpus-per-job", type=int, default=None, help="slurm launcher: CPUs per job")
    parser.add_argument(
        "--slurm-array-parallelism",
        type=positive_int,
        default=64,
        help="slurm launcher: jobs running at once",
    )
    parser.add_argument(
        "--slurm-cluster",
        choices=("slurm", "local", "debug"),
        default=None,
        help="submitit executor (default: slurm when sbatch is found; local: subprocesses here, for testing)",
    )
    parser.add_argument(
        "--model-options",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="per-model options merged into model.model_options, e.g. mti_net='{\"channels\": [32,64,64,128]}'",
    )
    parser.add_argument("--profile-runs", type=int, default=5, help="timed forward passes per model")
    add_device_argument(parser, help="device for profiling")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra LightningCLI overrides for every run, after a `--`: -- --data.root DIR",
    )


def _per_model_options(items: list[str]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"compare: --model-options wants NAME=JSON, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"compare: bad JSON for {name}: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"compare: --model-options {name} must be a JSON object")
        options.setdefault(name.strip(), {}).update(value)
    return options


def _apply_sweep_file(args: argparse.Namespace) -> None:
    """Fill the options left at their defaults from ``--sweep``'s YAML (keys = option names, ``_`` or ``-``).

    A relative ``config`` is relative to the sweep file; lists may replace comma-separated strings.
    """
    import yaml

    path = Path(args.sweep)
    if not path.is_file():
        raise ConfigError(f"compare: --sweep {path} not found")
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ConfigError(f"compare: --sweep {path} must be a mapping of option: value")
    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    for key, value in content.items():
        dest = str(key).replace("-", "_")
        if not hasattr(args, dest) or dest == "sweep":
            raise ConfigError(f"compare: unknown key {key!r} in --sweep {path}")
        if dest == "overrides":  # the file's first, then the command line's (later ones win)
            args.overrides = [str(v) for v in value] + list(args.overrides or [])
            continue
        if getattr(args, dest) != defaults.get_default(dest):
            continue  # given on the command line
        if dest in ("models", "seeds", "weightings") and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif dest == "model_options" and isinstance(value, dict):
            value = [f"{name}={json.dumps(options)}" for name, options in value.items()]
        elif dest == "config":
            value = str(path.parent / value) if not Path(value).is_absolute() else value
        setattr(args, dest, value)


def run(args: argparse.Namespace) -> int:
    from densemtl.models import model_names

    if args.sweep:
        _apply_sweep_file(args)
    if not args.models or not args.config:
        raise ConfigError("compare: give --models and --config (or a --sweep file with them)")
    from densemtl.weighting import WEIGHTINGS

    names = [n.strip() for n in str(args.models).split(",") if n.strip()]
    if not names:
        raise ConfigError("compare: --models is empty")
    unknown = [n for n in names if n not in model_names()]
    if unknown:
        raise ConfigError(f"compare: unknown models {unknown}; registered: {', '.join(model_names())}")
    weightings = [w.strip() for w in args.weightings.split(",") if w.strip()] if args.weightings else None
    unknown = [w for w in weightings or [] if w not in WEIGHTINGS.names()]
    if unknown:
        raise ConfigError(
            f"compare: unknown weightings {unknown}; registered: {', '.join(WEIGHTINGS.names())}"
        )
    if not Path(args.config).is_file():
        raise ConfigError(f"compare: config {args.config} not found")
    seeds = parse_seeds(args.seeds) if args.seeds else [recipe_seed(args.config)]
    specs = sweep_specs(
        names,
        args.config,
        seeds,
        weightings,
        args.max_steps,
        args.overrides,
        _per_model_options(args.model_options),
        args.checkpoint_every,
    )
    slurm = {
        "partition": args.slurm_partition,
        "time_min": args.slurm_time,
        "gpus_per_job": args.slurm_gpus_per_job,
        "array_parallelism": args.slurm_array_parallelism,
        "cpus_per_job": args.slurm_cpus_per_job,
        "cluster": args.slurm_cluster,
    }
    output = Path(args.output)
    _, paths = run_comparison(
        specs,
        output,
        run_one,
        args.launcher,
        args.parallel,
        slurm,
        args.baseline or "",
        args.reference,
        args.device,
        args.profile_runs,
    )
    print(paths["md"].read_text())
    print(f"[compare] wrote {paths['md']}, {paths['html']} and {paths['png']}")
    return 0
