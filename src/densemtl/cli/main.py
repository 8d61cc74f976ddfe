"""The ``densemtl`` command.

``fit``, ``validate`` and ``test`` are LightningCLI subcommands (YAML configs, dotted overrides,
``--print_config``; :mod:`densemtl.cli.lightning`); ``semi fit|validate|test`` is the same
LightningCLI over the mean-teacher module and data. The tools (``demo``, ``predict``, ``evaluate``,
``profile``, ``data ...``, ``benchmark``, ``list`` ...) are plain argparse subcommands, one module
each in :data:`TOOLS`. User errors are printed as one line. Exit codes: 0 success, 2 user error
(and argparse's own usage errors), 130 interrupted; ``data check|convert`` and ``profile --all`` /
``benchmark`` return 1 when the data or a measured path had errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from densemtl.cli.args import DefaultsHelpFormatter, normalize_options
from densemtl.cli.lightning import SEMI_COMMAND, run_lightning
from densemtl.errors import DenseMTLError

__all__ = ["DATA_TOOLS", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "TOOLS", "build_parser", "main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI: --config FILE, --model.*, --data.*, --trainer.*, --ckpt_path last)",
    "validate": "evaluate on the validation split (LightningCLI, --ckpt_path FILE)",
    "test": "evaluate on the test split (LightningCLI, --ckpt_path FILE)",
}
SEMI_HELP = (
    "semi-supervised fit / validate / test: mean teacher on labelled + unlabelled images "
    "(the LightningCLI with --model.ema_decay, --data.labelled_fraction, ...)"
)

# name -> (module, help); each module has add_arguments(parser) and run(args) -> int
TOOLS: dict[str, tuple[str, str]] = {
    "demo": ("densemtl.cli.demo", "render synthetic rooms, train, evaluate and write a report"),
    "predict": ("densemtl.cli.predict", "run a checkpoint on images / a folder / a video"),
    "evaluate": ("densemtl.cli.evaluate", "score saved predictions against a dataset"),
    "profile": ("densemtl.cli.profile", "parameters, MACs/FLOPs, latency and memory of a model"),
    "benchmark": (
        "densemtl.cli.benchmark",
        "inference latency of the deployment paths (eager, compile, ONNX...)",
    ),
    "export": ("densemtl.cli.export", "export a model to ONNX or TorchScript"),
    "distill": (
        "densemtl.cli.distill",
        "write a teacher's pseudo-labels for samples lacking a task's label",
    ),
    "compare": ("densemtl.cli.compare", "train several models under one protocol and tabulate them"),
    "report": ("densemtl.cli.report", "tables, paired tests and plots of finished runs, without retraining"),
    "list": ("densemtl.cli.list", "list the registered tasks, models, backbones, datasets or weightings"),
    "fuse": ("densemtl.cli.fuse", "fuse a sequence's depth + semantics into a 3D semantic mesh"),
}
# action -> (module, add-arguments function, run function, help)
DATA_TOOLS: dict[str, tuple[str, str, str, str]] = {
    "render": ("densemtl.data.synthetic_cli", "add_arguments", "run", "render the synthetic dataset"),
    "check": ("densemtl.cli.data", "add_check_arguments", "run_check", "validate a dataset on disk"),
    "convert": (
        "densemtl.cli.data",
        "add_convert_arguments",
        "run_convert",
        "convert a dataset to the folder format",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand (the LightningCLI ones only for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="densemtl",
        description="Multi-task dense prediction: semantic segmentation + monocular depth (+ normals).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    semi = sub.add_parser(
        SEMI_COMMAND,
        help=SEMI_HELP,
        description=SEMI_HELP + ". `densemtl semi fit --help` lists every option.",
    )
    semi_sub = semi.add_subparsers(dest="semi_command", metavar="ACTION", required=True)
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        semi_sub.add_parser(name, help=text.replace("LightningCLI", "semi-supervised LightningCLI"))
    for name, (module, text) in TOOLS.items():
        tool = sub.add_parser(name, help=text, description=text, formatter_class=DefaultsHelpFormatter)
        tool.set_defaults(_module=module, _run="run")
        _add_tool_arguments(tool, module, "add_arguments")
        normalize_options(tool, name)
    data = sub.add_parser("data", help="render, check or convert datasets", description="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, (module, add, run, text) in DATA_TOOLS.items():
        tool = data_sub.add_parser(name, help=text, description=text, formatter_class=DefaultsHelpFormatter)
        tool.set_defaults(_module=module, _run=run)
        _add_tool_arguments(tool, module, add)
        normalize_options(tool, f"data {name}")
    return parser


def _add_tool_arguments(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    try:
        getattr(importlib.import_module(module), function)(parser)
    except (ImportError, AttributeError) as exc:  # a tool still being built must not break the others
        parser.set_defaults(_unavailable=str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``densemtl ARGV...`` (default ``sys.argv[1:]``); returns the exit code."""
    from_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
            run_lightning(None if from_process else argv)
            return 0
        if len(argv) > 1 and argv[0] == SEMI_COMMAND and argv[1] in LIGHTNING_SUBCOMMANDS:
            # sys.argv keeps "semi" (DDP relaunches the same command line), so the CLI gets the rest
            # explicitly; LightningCLI's warning about args given beside sys.argv is meant for that.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                run_lightning(argv[1:], semi=True)
            return 0
        args = build_parser().parse_args(argv)
        if not getattr(args, "_module", None):
            build_parser().print_help()
            return 0
        if getattr(args, "_unavailable", None):
            raise DenseMTLError(f"this command is unavailable: {args._unavailable}")
        return int(getattr(importlib.import_module(args._module), args._run)(args) or 0)
    except DenseMTLError as exc:
        print(f"densemtl: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("densemtl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
