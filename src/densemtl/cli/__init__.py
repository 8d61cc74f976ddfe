"""The ``densemtl`` command.

``fit``, ``validate`` and ``test`` are LightningCLI subcommands (YAML configs, dotted overrides,
``--print_config``); ``semi fit|validate|test`` is the same LightningCLI with the mean-teacher
:class:`~densemtl.training.semi.SemiSupervisedModule` and the labelled/unlabelled
:class:`~densemtl.training.semi.SemiDataModule` (a second CLI rather than LightningCLI's subclass mode,
which would force ``class_path``/``init_args`` on every existing config). The tools (``demo``,
``predict``, ``evaluate``, ``profile``, ``data ...``, ``benchmark``) are plain argparse
subcommands. User errors are printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from densemtl.errors import DenseMTLError

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI: --config FILE, --model.*, --data.*, --trainer.*, --ckpt_path last)",
    "validate": "evaluate on the validation split (LightningCLI, --ckpt_path FILE)",
    "test": "evaluate on the test split (LightningCLI, --ckpt_path FILE)",
}
SEMI_COMMAND = "semi"
SEMI_HELP = (
    "semi-supervised fit / validate / test: mean teacher on labelled + unlabelled images "
    "(the LightningCLI with --model.ema_decay, --data.labelled_fraction, ...)"
)

# name -> (module, help); each module has add_arguments(parser) and run(args) -> int
TOOLS: dict[str, tuple[str, str]] = {
    "demo": ("densemtl.analysis.demo", "render synthetic rooms, train, evaluate and write a report"),
    "predict": ("densemtl.inference.predict", "run a checkpoint on images / a folder / a video"),
    "evaluate": ("densemtl.analysis.evaluate", "score saved predictions against a dataset"),
    "profile": ("densemtl.analysis.profile", "parameters, MACs/FLOPs, latency and memory of a model"),
    "benchmark": (
        "densemtl.analysis.benchmark",
        "inference latency of the deployment paths (eager, compile, ONNX...)",
    ),
    "export": ("densemtl.inference.export", "export a model to ONNX or TorchScript"),
    "distill": (
        "densemtl.training.distill",
        "write a teacher's pseudo-labels for samples lacking a task's label",
    ),
    "compare": ("densemtl.analysis.compare", "train several models under one protocol and tabulate them"),
}
DATA_TOOLS: dict[str, tuple[str, str, str, str]] = {
    "render": ("densemtl.data.synthetic_cli", "add_arguments", "run", "render the synthetic dataset"),
    "check": ("densemtl.data.check", "add_check_arguments", "run_check", "validate a dataset on disk"),
    "convert": (
        "densemtl.data.check",
        "add_convert_arguments",
        "run_convert",
        "convert a dataset to the folder format",
    ),
}


def build_cli(argv: Sequence[str] | None, run: bool = True, semi: bool = False) -> Any:
    """The LightningCLI of densemtl (``run=False``: parse and instantiate only, for ``demo``).

    ``semi=True``: the same CLI (links, callbacks, checkpoint IO) over
    :class:`~densemtl.training.semi.SemiSupervisedModule` and :class:`~densemtl.training.semi.SemiDataModule`;
    their signatures extend the supervised ones, so every supervised config is a valid semi config.
    """
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from densemtl.training.checkpoint import AtomicCheckpointIO

    if semi:
        from densemtl.training.semi import SemiDataModule as DataModule
        from densemtl.training.semi import SemiSupervisedModule as Module
    else:
        from densemtl.data.datamodule import DenseDataModule as DataModule
        from densemtl.training.module import DenseMTLModule as Module

    class DenseMTLCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.link_arguments("model.tasks", "data.tasks")
            for name in ("num_classes", "class_names", "class_colors"):
                parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

    return DenseMTLCLI(
        Module,
        DataModule,
        args=list(argv) if argv is not None else None,
        run=run,
        trainer_defaults={
            "default_root_dir": "runs",
            "callbacks": [
                ModelCheckpoint(
                    filename="best", monitor="val/loss", mode="min", save_last=True, save_top_k=1
                ),
                LearningRateMonitor(logging_interval="step"),
            ],
            "plugins": [AtomicCheckpointIO()],
        },
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
        auto_configure_optimizers=False,
    )


def build_parser() -> argparse.ArgumentParser:
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
        tool = sub.add_parser(name, help=text, description=text)
        tool.set_defaults(_module=module, _run="run")
        _add_tool_arguments(tool, module, "add_arguments")
    data = sub.add_parser("data", help="render, check or convert datasets", description="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, (module, add, run, text) in DATA_TOOLS.items():
        tool = data_sub.add_parser(name, help=text, description=text)
        tool.set_defaults(_module=module, _run=run)
        _add_tool_arguments(tool, module, add)
    return parser


def _add_tool_arguments(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    try:
        getattr(importlib.import_module(module), function)(parser)
    except (ImportError, AttributeError) as exc:  # a tool still being built must not break the others
        parser.set_defaults(_unavailable=str(exc))


def _run_lightning(argv: Sequence[str] | None, semi: bool = False) -> None:
    try:
        build_cli(argv, semi=semi)
    except argparse.ArgumentError as exc:
        text = " ".join(str(exc).split())
        # LightningCLI applies a --ckpt_path's hyper-parameters to the model: a semi run's have
        # options the supervised CLI does not know.
        if not semi and any(f"'{option}'" in text for option in _semi_only_options()):
            text += f"; semi-supervised configs and checkpoints need `densemtl {SEMI_COMMAND} ...`"
        raise DenseMTLError(f"bad configuration: {text}") from None


def _semi_only_options() -> list[str]:
    import inspect

    from densemtl.data.datamodule import DenseDataModule
    from densemtl.training.module import DenseMTLModule
    from densemtl.training.semi import SemiDataModule, SemiSupervisedModule

    options = []
    for key, semi_class, base in (
        ("model", SemiSupervisedModule, DenseMTLModule),
        ("data", SemiDataModule, DenseDataModule),
    ):
        extra = set(inspect.signature(semi_class).parameters) - set(inspect.signature(base).parameters)
        options += [f"{key}.{name}" for name in sorted(extra - {"args", "kwargs"})]
    return options


def main(argv: Sequence[str] | None = None) -> int:
    from_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
            _run_lightning(None if from_process else argv)
            return 0
        if len(argv) > 1 and argv[0] == SEMI_COMMAND and argv[1] in LIGHTNING_SUBCOMMANDS:
            # sys.argv keeps "semi" (DDP relaunches the same command line), so the CLI gets the rest
            # explicitly; LightningCLI's warning about args given beside sys.argv is meant for that.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                _run_lightning(argv[1:], semi=True)
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
        return 2
    except KeyboardInterrupt:
        print("densemtl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
