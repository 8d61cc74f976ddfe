"""The densemtl LightningCLI: ``fit``, ``validate``, ``test`` (and ``semi ...``) with YAML configs.

``semi=True`` is the same CLI over the mean-teacher :class:`~densemtl.training.semi.SemiSupervisedModule`
and the labelled/unlabelled :class:`~densemtl.training.semi.SemiDataModule` (a second CLI rather
than LightningCLI's subclass mode, which would force ``class_path``/``init_args`` on every
existing config).

The run folder of ``fit`` is stable: ``<trainer.default_root_dir>/<name>/`` (``--name``, else the
stem of the first ``--config``, else ``default``) holding ``checkpoints/last.ckpt``, ``best.ckpt``,
``config.yaml`` and the TensorBoard events, so ``--ckpt_path last`` finds the run it continues
(an explicit ``--trainer.logger`` chooses its own folder instead). ``validate`` / ``test`` keep
Lightning's ``lightning_logs/version_N`` folders.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ProgressBar

from densemtl.errors import ConfigError, DenseMTLError

__all__ = ["build_cli", "run_lightning"]

SEMI_COMMAND = "semi"
DEFAULT_RUN_NAME = "default"
# ckpt_path keywords Lightning resolves itself (anything else must be a readable file)
CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


class LineProgressBar(ProgressBar):
    """Progress for logs and pipes (stderr is not a terminal): one line every ``log_every_n_steps``
    optimiser steps with ``step N/max_steps``, the step rate and the progress-bar metrics,
    instead of tqdm's carriage-return frames (which read ``Epoch 39/-2 ... 0.00it/s`` in a file).
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._start = (0.0, 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        step, every = trainer.global_step, max(int(trainer.log_every_n_steps), 1)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if not self._enabled or not trainer.is_global_zero or (step % every and step != total):
            return
        elapsed, first = time.perf_counter() - self._start[0], self._start[1]
        rate = (step - first) / elapsed if elapsed > 0 else 0.0
        text = f"step {step}/{total if total is not None else '?'}  {rate:.2f} steps/s"
        if total is not None and rate > 0:
            text += f"  eta {(total - step) / rate / 60:.1f} min"
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key != "v_num":
                text += f"  {key} {value:.4g}" if isinstance(value, float) else f"  {key} {value}"
        print(text, file=sys.stderr, flush=True)


def build_cli(argv: Sequence[str] | None, run: bool = True, semi: bool = False) -> Any:
    """The LightningCLI of densemtl (``run=False``: parse and instantiate only, for ``demo``).

    ``semi=True``: the same CLI (links, callbacks, checkpoint IO) over
    :class:`~densemtl.training.semi.SemiSupervisedModule` and :class:`~densemtl.training.semi.SemiDataModule`;
    their signatures extend the supervised ones, so every supervised config is a valid semi config.
    """
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.cli import LightningCLI

    from densemtl.training.checkpoint import AtomicCheckpointIO, RunCheckpoint, read_checkpoint

    if semi:
        from densemtl.training.semi import SemiDataModule as DataModule
        from densemtl.training.semi import SemiSupervisedModule as Module
    else:
        from densemtl.data.datamodule import DenseDataModule as DataModule
        from densemtl.training.module import DenseMTLModule as Module

    class DenseMTLCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--name",
                type=str | None,
                default=None,
                help="fit: the run folder <trainer.default_root_dir>/<name>/ (default: the --config "
                "file's stem, else 'default'); `--ckpt_path last` resumes it",
            )
            parser.link_arguments("model.tasks", "data.tasks")
            for name in ("num_classes", "class_names", "class_colors"):
                parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

        def _parse_ckpt_path(self) -> None:
            # LightningCLI's own torch.load of --ckpt_path would print a traceback for a bad file
            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if ckpt_path and ckpt_path not in CKPT_KEYWORDS:
                read_checkpoint(ckpt_path)
            super()._parse_ckpt_path()

        def before_instantiate_classes(self) -> None:
            config = self.config[self.subcommand] if self.subcommand else self.config
            _check_trainer_options(config.trainer)
            if self.subcommand == "fit" and config.trainer.get("logger") in (None, True):
                config.trainer.logger = {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {
                        "save_dir": str(config.trainer.default_root_dir or "runs"),
                        "name": _run_name(config),
                        "version": "",
                    },
                }
            for option, kind in (
                ("enable_checkpointing", RunCheckpoint),
                ("enable_progress_bar", ProgressBar),
            ):
                if config.trainer.get(option) is False:  # the Trainer refuses such a callback then
                    self.trainer_defaults["callbacks"] = [
                        c for c in self.trainer_defaults["callbacks"] if not isinstance(c, kind)
                    ]

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except TypeError as exc:  # a misspelt key of a free-form dict (model_options, ...)
                if "unexpected keyword argument" not in str(exc) and "required positional" not in str(exc):
                    raise
                raise ConfigError(f"bad configuration: {exc}") from None

        def before_fit(self) -> None:
            folder = _checkpoint_folder(self.trainer)
            ckpt_path = self.config_init["fit"].get("ckpt_path")
            if ckpt_path == "last":
                last = folder / "last.ckpt" if folder is not None else None
                if last is None or not last.is_file():
                    raise ConfigError(
                        f"--ckpt_path last: no checkpoint to resume in {folder or 'this run'} "
                        "(check --name / --trainer.default_root_dir, or start without --ckpt_path)"
                    )
                read_checkpoint(last)  # a truncated file is an error, not a fresh start
                self.config_init["fit"]["ckpt_path"] = str(last)
            elif ckpt_path is None and folder is not None and (folder / "last.ckpt").is_file():
                raise ConfigError(
                    f"{folder.parent} already holds a run: resume it with --ckpt_path last, "
                    "or choose another --name"
                )

    return DenseMTLCLI(
        Module,
        DataModule,
        args=list(argv) if argv is not None else None,
        run=run,
        trainer_defaults={
            "default_root_dir": "runs",
            "callbacks": [
                RunCheckpoint(filename="best", monitor="val/loss", mode="min", save_last=True, save_top_k=1),
                LearningRateMonitor(logging_interval="step"),
                *([] if sys.stderr.isatty() else [LineProgressBar()]),
            ],
            "plugins": [AtomicCheckpointIO()],
        },
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
        auto_configure_optimizers=False,
    )


def _run_name(config: Any) -> str:
    if config.get("name"):
        return str(config.name)
    configs = config.get("config") or []
    first = configs[0] if configs else None
    path = getattr(first, "absolute", None) or getattr(first, "relative", None) or first
    return Path(str(path)).stem if path else DEFAULT_RUN_NAME


def _check_trainer_options(trainer: Any) -> None:
    """Values Lightning would reject with a traceback deep inside the Trainer."""
    for key in ("max_steps", "max_epochs"):
        value = trainer.get(key)
        if value is not None and value < -1:
            raise ConfigError(f"--trainer.{key} must be -1 (no limit) or >= 0, got {value}")


def _checkpoint_folder(trainer: Any) -> Path | None:
    """Where the run's ModelCheckpoint writes (as ``ModelCheckpoint`` resolves it); None without one."""
    from densemtl.training.checkpoint import RunCheckpoint

    callback = next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), None)
    if callback is None:
        return None
    if callback.dirpath is not None:
        return Path(callback.dirpath)
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        return Path(trainer.default_root_dir) / "checkpoints"
    if logger.save_dir is None:
        return Path(trainer.default_root_dir) / "checkpoints"
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return Path(logger.save_dir, str(logger.name), version, "checkpoints")


def run_lightning(argv: Sequence[str] | None, semi: bool = False) -> None:
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
