"""``densemtl compare``: train several models under one protocol and tabulate them.

Every model in ``--models`` is trained with the same recipe (``--config``, a LightningCLI YAML; only
``model.model`` changes, plus ``--model-options NAME=JSON`` for per-model options), tested on the
test split, and profiled (``densemtl.analysis.profile.profile_model``: params, MACs and CPU latency at the
recipe's image size). The report gives the test metrics, Δ_MTL (``densemtl.metrics.delta_mtl``,
Maninis et al.: mean over tasks of the relative change of each task's primary metric) against the
single-task runs (``--baseline``, default ``stl_aspp``: one independent network per task), params
(Mi = 2^20 and M), GMACs and latency, as ``compare.md`` + ``compare.json`` + ``compare.png`` (Δ_MTL,
or the first metric when there is no baseline, against params and against GMACs).

Example::

    densemtl compare --models stl_aspp,mtl_hps,mtl_ssw --config configs/nyud_mtl_ssw.yaml \\
        --max-steps 2000 --output runs/compare -- --data.root data/nyud
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from densemtl.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SHOWN_METRICS = ("miou", "pixel_acc", "rmse", "rmse_log", "abs_rel", "delta1", "normal_mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="comma-separated registered model names")
    parser.add_argument("--config", required=True, help="the shared training recipe (LightningCLI YAML)")
    parser.add_argument("--output", default="runs/compare", help="folder for runs, table and plot")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimiser steps")
    parser.add_argument(
        "--baseline",
        default="stl_aspp",
        help="model whose results are the single-task reference of Δ_MTL ('' for none)",
    )
    parser.add_argument(
        "--model-options",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="per-model options merged into model.model_options, e.g. mti_net='{\"channels\": [32,64,64,128]}'",
    )
    parser.add_argument("--profile-runs", type=int, default=5, help="timed forward passes per model")
    parser.add_argument("--device", default="cpu", help="device for profiling")
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


def train_and_test(name: str, args: argparse.Namespace, extra_options: dict[str, Any]) -> dict[str, Any]:
    """Train model ``name`` under the shared recipe; its test metrics, cost and timings."""
    from densemtl.analysis.profile import profile_model
    from densemtl.cli import build_cli

    out = Path(args.output) / name
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(out), "name": "logs", "version": ""},
    }
    overrides = [
        "--config",
        args.config,
        "--model.model",
        name,
        "--trainer.default_root_dir",
        str(out),
        "--trainer.logger",
        json.dumps(logger),
    ]
    if args.max_steps is not None:
        overrides += ["--trainer.max_steps", str(args.max_steps)]
    overrides += list(args.overrides)
    if extra_options:  # the recipe's model_options with this model's own on top
        import yaml

        recipe = yaml.safe_load(Path(args.config).read_text()) or {}
        base = dict((recipe.get("model") or {}).get("model_options") or {})
        overrides += ["--model.model_options", json.dumps({**base, **extra_options})]
    cli = build_cli(overrides, run=False)
    trainer, module, data = cli.trainer, cli.model, cli.datamodule
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    train_s = time.perf_counter() - start
    trainer.test(module, datamodule=data, verbose=False)
    metrics = {k: float(v) for k, v in module.test_results.items()}
    cost = profile_model(
        module.net,
        input_size=tuple(data.image_size),
        device=args.device,
        warmup=1,
        runs=max(1, args.profile_runs),
    )
    return {
        "model": name,
        "metrics": metrics,
        "params": cost["params"],
        "params_mi": cost["params_mi"],
        "gmacs": cost["macs"] / 1e9,
        "latency_ms": cost["latency_ms_median"],
        "train_s": train_s,
        "steps": int(trainer.global_step),
        "image_size": list(data.image_size),
        "tasks": list(module.tasks),
    }


def add_delta(rows: list[dict[str, Any]], baseline: str) -> None:
    """Add ``delta_mtl`` (in %) to every row, against the row of ``baseline`` (if present)."""
    from densemtl.metrics import delta_mtl

    base = next((r for r in rows if r["model"] == baseline), None)
    for row in rows:
        row["delta_mtl"] = None
        if base is not None:
            try:
                row["delta_mtl"] = 100.0 * delta_mtl(row["metrics"], base["metrics"])
            except ValueError:
                row["delta_mtl"] = None


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]], baseline: str) -> str:
    metrics = [m for m in SHOWN_METRICS if any(m in r["metrics"] for r in rows)]
    head = [
        "model",
        *metrics,
        f"Δ_MTL vs {baseline} (%)",
        "params (Mi)",
        "params (M)",
        "GMACs",
        "latency (ms)",
        "steps",
        "train (s)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"`{r['model']}`",
            *(_fmt(r["metrics"].get(m)) for m in metrics),
            _fmt(r["delta_mtl"], 2),
            f"{r['params_mi']:.2f}",
            f"{r['params'] / 1e6:.2f}",
            f"{r['gmacs']:.2f}",
            f"{r['latency_ms']:.1f}",
            str(r["steps"]),
            f"{r['train_s']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, baseline: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_delta = any(r["delta_mtl"] is not None for r in rows)
    first = next((m for m in SHOWN_METRICS if all(m in r["metrics"] for r in rows)), None)
    ylabel = f"Δ_MTL vs {baseline} (%)" if use_delta else (first or "metric")

    def y(r: dict[str, Any]) -> float:
        v = r["delta_mtl"] if use_delta else r["metrics"].get(first or "", float("nan"))
        return float("nan") if v is None else float(v)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, xlabel in (
        (axes[0], "params_mi", "parameters (Mi = 2^20)"),
        (axes[1], "gmacs", "GMACs per image"),
    ):
        for r in rows:
            ax.scatter(r[key], y(r), s=40)
            ax.annotate(r["model"], (r[key], y(r)), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if use_delta:
            ax.axhline(0.0, color="gray", lw=0.8)
    fig.suptitle("accuracy vs cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise ConfigError("compare: --models is empty")
    from densemtl.models import model_names

    unknown = [n for n in names if n not in model_names()]
    if unknown:
        raise ConfigError(f"compare: unknown models {unknown}; registered: {', '.join(model_names())}")
    if not Path(args.config).is_file():
        raise ConfigError(f"compare: config {args.config} not found")
    options = _per_model_options(args.model_options)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        print(f"[compare] training {name} ...", flush=True)
        rows.append(train_and_test(name, args, options.get(name, {})))
    baseline = args.baseline or ""
    add_delta(rows, baseline)
    table = markdown_table(rows, baseline or "–")
    size = rows[0]["image_size"]
    text = "\n".join(
        [
            "# densemtl compare",
            "",
            f"Recipe `{args.config}`"
            + (f", {args.max_steps} steps" if args.max_steps is not None else "")
            + f", tasks {', '.join(rows[0]['tasks'])}, {size[0]}x{size[1]} input; test split metrics. "
            f"Δ_MTL (Maninis et al.; primary metric per task) against `{baseline or '–'}`. Params counted exactly "
            f"(Mi = 2^20); MACs per image with FlopCounterMode; latency = median batch-1 forward on {args.device}.",
            "",
            table,
            "",
            "![accuracy vs cost](compare.png)",
            "",
        ]
    )
    (output / "compare.md").write_text(text)
    (output / "compare.json").write_text(json.dumps(rows, indent=1))
    plot(rows, output / "compare.png", baseline or "–")
    print(table)
    print(f"[compare] wrote {output / 'compare.md'} and {output / 'compare.png'}")
    return 0
