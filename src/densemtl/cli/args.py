"""Argument helpers shared by the ``densemtl`` tool commands (sizes, devices, threads, checkpoints)
and the one option vocabulary of every command (``docs/cli.md``): LightningCLI's spellings
(``--ckpt_path``, ``--data.root``, ``--data.dataset``, underscores) for the tools as well.
"""

from __future__ import annotations

import argparse
from typing import Any

from densemtl.errors import ConfigError

__all__ = [
    "RENAMES",
    "DefaultsHelpFormatter",
    "add_checkpoint_argument",
    "add_device_argument",
    "add_model_arguments",
    "add_threads_argument",
    "check_device",
    "normalize_options",
    "parse_intrinsics",
    "parse_size",
    "parse_tasks",
    "positive_int",
]

# old tool spelling -> the one spelling (LightningCLI's where the same thing exists there); the old
# spellings keep working as hidden aliases.
RENAMES: dict[str, str] = {
    "--ckpt": "--ckpt_path",
    "--teacher": "--ckpt_path",
    "--out": "--output",
    "--json": "--output_json",
    "--dataset-root": "--data.root",
    "--root": "--data.root",
    "--dataset": "--data.dataset",
}
# per command, where a tool option is a LightningCLI option under another name
COMMAND_RENAMES: dict[str, dict[str, str]] = {
    "demo": {"--max-steps": "--trainer.max_steps", "--num-images": "--data.synthetic.num_images"},
}


def normalize_options(parser: argparse.ArgumentParser, command: str = "") -> None:
    """Give every option of ``parser`` its one spelling (:data:`RENAMES`, then hyphens inside a
    name -> underscores); the previous spellings stay accepted but are hidden from ``--help``."""
    renames = {**RENAMES, **COMMAND_RENAMES.get(command, {})}
    for action in parser._actions:
        if not action.option_strings or action.option_strings[0] in ("-h", "--help"):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs:
            continue
        canonical = renames.get(longs[0], "--" + longs[0][2:].replace("-", "_"))
        if parser._option_string_actions.get(canonical, action) is not action:
            canonical = "--" + longs[0][2:].replace("-", "_")  # the one spelling is another option's
        shorts = [o for o in action.option_strings if not o.startswith("--")]
        for alias in action.option_strings:
            parser._option_string_actions.setdefault(alias, action)
        parser._option_string_actions[canonical] = action
        action.option_strings = [*shorts, canonical]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless it already names its default
    (flags and options without a default value show none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


def parse_tasks(text: str | list[str]) -> list[str]:
    """``"semseg,depth"``, ``"[semseg,depth]"`` or ``["semseg", "depth"]`` -> ``["semseg", "depth"]``."""
    items = text if isinstance(text, list) else [text]
    tasks = [t.strip() for item in items for t in str(item).strip("[] ").split(",") if t.strip()]
    if not tasks:
        raise ConfigError(f"--tasks must be comma-separated task names like semseg,depth, got {text!r}")
    return tasks


def check_device(text: str) -> str:
    """``--device`` value: ``cpu``, ``cuda`` or ``cuda:N``, refused early when CUDA is absent."""
    import torch

    name = str(text).strip().lower()
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {text}: CUDA is not available on this machine; use --device cpu")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ConfigError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return name
    raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {text!r}")


def parse_size(text: Any) -> tuple[int, int]:
    """``"480x640"`` -> (480, 640) (height x width); a single number means a square: ``"480"`` -> (480, 480).

    The LightningCLI spelling of ``--data.image_size``, ``[480,640]`` (or a list), is accepted too.
    """
    if isinstance(text, (list, tuple)):
        text = "x".join(map(str, text))
    parts = str(text).lower().strip().strip("[]()").replace(",", "x").replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ConfigError(f"--size must be HEIGHTxWIDTH like 480x640 (or one number: a square), got {text!r}")
    return values[0], values[1]


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_intrinsics(text: str) -> list[float]:
    """``"FX,FY,CX,CY"`` -> four floats (pinhole intrinsics in pixels)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ConfigError(f"--intrinsics must be FX,FY,CX,CY, got {text!r}")
    return values


def add_device_argument(parser: argparse.ArgumentParser, help: str = "cpu or cuda[:N]") -> None:
    # check_device raises ConfigError (not ArgumentTypeError), so a missing GPU is a one-line error
    parser.add_argument("--device", default="cpu", type=check_device, help=help)


def add_threads_argument(
    parser: argparse.ArgumentParser, help: str = "torch CPU threads (default: torch's choice)"
) -> None:
    parser.add_argument("--threads", type=int, default=None, help=help)


def add_checkpoint_argument(
    parser: argparse.ArgumentParser,
    flag: str = "--ckpt",
    required: bool = False,
    help: str = "checkpoint written by `densemtl fit` / `densemtl demo`",
) -> None:
    parser.add_argument(flag, required=required, default=None, help=help)


def add_model_arguments(parser: argparse.ArgumentParser, help_suffix: str = " for --model") -> None:
    """``--num-classes`` / ``--tasks`` of a model built from its registered name or YAML config."""
    parser.add_argument("--num-classes", type=int, default=40, help=f"semseg classes{help_suffix}")
    parser.add_argument("--tasks", default="semseg,depth", help=f"comma-separated tasks{help_suffix}")
