"""Comparison reports from finished runs: mean ± std over seeds, Δ_MTL, paired tests, cost, figures.

Any folder with a ``test_metrics.json`` (written by the module at the end of ``densemtl fit`` /
``test`` / ``compare``) and its LightningCLI ``config.yaml`` (or the logger's ``hparams.yaml``) is a
run. Runs are grouped by (model, weighting) and averaged over seeds (``seed_everything``):

* each metric as mean ± **sample** standard deviation (``ddof=1``) over seeds;
* Δ_MTL (Maninis et al., CVPR 2019, Eq. 4; the protocol of Vandenhende et al., TPAMI 2021) computed
  *per seed* against that seed's single-task run (the ``baseline`` group), then averaged;
* a paired test against the ``reference`` group, paired by seed (:mod:`densemtl.analysis.stats`);
  cells whose difference is not significant are marked ``†``;
* cost per model (params, MACs, CPU latency: :func:`densemtl.analysis.profile.profile_model`),
  measured once per (model, options, tasks, resolution) and cached in ``profile_cache.json``.

Writes ``<prefix>.md``, ``<prefix>.json``, ``<prefix>.png`` (accuracy vs params / MACs / latency, with
the Pareto front), ``<prefix>_per_class_iou.png`` (runs that saved ``per_class_iou.json``) and a
self-contained ``<prefix>.html`` (figures embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densemtl.analysis.stats import ALPHA, mean_std, paired_test
from densemtl.errors import ConfigError, DataError

__all__ = ["SHOWN_METRICS", "RunRecord", "build_report", "find_runs", "summarize"]

SHOWN_METRICS = ("miou", "pixel_acc", "rmse", "rmse_log", "abs_rel", "delta1", "normal_mean")
NOT_SIGNIFICANT = "†"
DELTA = "delta_mtl"


@dataclass
class RunRecord:
    """One finished run: what it trained (from its config) and its test metrics."""

    path: Path
    model: str
    weighting: str
    seed: int | None
    tasks: list[str]
    num_classes: int
    model_options: dict[str, Any]
    image_size: list[int]
    metrics: dict[str, float]
    per_class: dict[str, float | None] | None = None
    steps: int | None = None
    train_s: float | None = None


@dataclass
class Group:
    label: str
    runs: dict[int, RunRecord] = field(default_factory=dict)


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    # LightningCLI writes "Unable to serialize instance ..." strings, never python tags: safe_load works
    return yaml.safe_load(path.read_text()) or {}


def _read_run(metrics_path: Path) -> RunRecord | None:
    """The run of ``metrics_path`` (None when no config sits beside it: not a densemtl run folder)."""
    folder = metrics_path.parent
    try:
        metrics = {k: float(v) for k, v in json.loads(metrics_path.read_text()).items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise DataError(
            metrics_path, "not a densemtl test_metrics.json (a flat {metric: number} object)"
        ) from None
    if (folder / "config.yaml").is_file():
        config = _load_yaml(folder / "config.yaml")
        model, data, seed = config.get("model") or {}, config.get("data") or {}, config.get("seed_everything")
    elif (folder / "hparams.yaml").is_file():
        model = data = _load_yaml(folder / "hparams.yaml")
        seed = None
    else:
        return None
    spec_file, result_file = folder / "sweep_run.json", folder / "result.json"
    if spec_file.is_file():
        seed = json.loads(spec_file.read_text()).get("seed", seed)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    per_class_file = folder / "per_class_iou.json"
    return RunRecord(
        path=folder,
        model=str(model.get("model", "hard_sharing")),
        weighting=str(model.get("weighting", "fixed")),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        tasks=list(model.get("tasks") or ["semseg", "depth"]),
        num_classes=int(model.get("num_classes") or data.get("num_classes") or 8),
        model_options=dict(model.get("model_options") or {}),
        image_size=[int(v) for v in (data.get("image_size") or [480, 640])],
        metrics=metrics,
        per_class=json.loads(per_class_file.read_text()) if per_class_file.is_file() else None,
        steps=result.get("steps"),
        train_s=result.get("train_s"),
    )


def find_runs(dirs: Sequence[str | Path]) -> list[RunRecord]:
    """Every run under ``dirs`` (recursively), in path order."""
    records = []
    for root in dirs:
        if not Path(root).is_dir():
            raise DataError(root, "not a folder")
        for path in sorted(Path(root).rglob("test_metrics.json")):
            record = _read_run(path)
            if record is not None:
                records.append(record)
    return records


def group_runs(records: Sequence[RunRecord], log: Callable[[str], None] = print) -> list[Group]:
    """Group by (model, weighting), first-seen order; label ``model`` or ``model+weighting``.

    A run without a recorded seed gets the next unused index; of two runs with the same seed the
    newer (``test_metrics.json`` modification time) counts.
    """
    several_weightings = len({r.weighting for r in records}) > 1
    groups: dict[tuple[str, str], Group] = {}
    for record in records:
        label = f"{record.model}+{record.weighting}" if several_weightings else record.model
        group = groups.setdefault((record.model, record.weighting), Group(label))
        seed = record.seed if record.seed is not None else len(group.runs)
        old = group.runs.get(seed)
        if old is not None:
            newer = max((old, record), key=lambda r: (r.path / "test_metrics.json").stat().st_mtime)
            log(f"[report] {label} seed {seed}: two runs ({old.path}, {record.path}); using {newer.path}")
            record = newer
        group.runs[seed] = record
    return list(groups.values())


def _find_group(groups: Sequence[Group], name: str) -> Group | None:
    """The group called ``name``: its label, else the only group of that model or weighting."""
    for group in groups:
        if group.label == name:
            return group
    for attribute in ("model", "weighting"):
        matches = [g for g in groups if getattr(next(iter(g.runs.values())), attribute) == name]
        if len(matches) == 1:
            return matches[0]
    return None


def _seed_deltas(group: Group, baseline: Group | None) -> dict[int, float]:
    """Δ_MTL (%) of each seed against the baseline's run with the same seed."""
    from densemtl.metrics import delta_mtl

    if baseline is None:
        return {}
    deltas = {}
    for seed, run in group.runs.items():
        if seed in baseline.runs:
            try:
                deltas[seed] = 100.0 * delta_mtl(run.metrics, baseline.runs[seed].metrics)
            except ValueError:
                continue
    return deltas


def summarize(
    groups: Sequence[Group], baseline: str = "stl_aspp", reference: str = "", alpha: float = ALPHA
) -> list[dict[str, Any]]:
    """One JSON-ready row per group: per-seed values, mean / std, Δ_MTL and the paired tests."""
    base = _find_group(groups, baseline) if baseline else None
    ref = _find_group(groups, reference) if reference else (base or (groups[0] if groups else None))
    shown = [m for m in SHOWN_METRICS if any(m in r.metrics for g in groups for r in g.runs.values())]
    per_seed: dict[str, dict[str, dict[int, float]]] = {}
    for group in groups:
        values = {m: {s: r.metrics[m] for s, r in group.runs.items() if m in r.metrics} for m in shown}
        values[DELTA] = _seed_deltas(group, base)
        per_seed[group.label] = values
    rows = []
    for group in groups:
        first = next(iter(group.runs.values()))
        values = per_seed[group.label]
        row: dict[str, Any] = {
            "model": first.model,
            "weighting": first.weighting,
            "label": group.label,
            "seeds": sorted(group.runs),
            "runs": [str(group.runs[s].path) for s in sorted(group.runs)],
            "tasks": first.tasks,
            "image_size": first.image_size,
            "per_seed": {m: {str(s): v for s, v in sorted(vs.items())} for m, vs in values.items()},
            "metrics": {},
            "metrics_std": {},
            "reference": ref.label if ref is not None else None,
            "is_reference": group is ref,
            "tests": {},
        }
        for name, by_seed in values.items():
            mean, std = mean_std(list(by_seed.values()))
            if name == DELTA:
                row[DELTA] = None if math.isnan(mean) else mean
                row["delta_mtl_std"] = None if math.isnan(std) else std
            elif not math.isnan(mean):
                row["metrics"][name] = mean
                row["metrics_std"][name] = None if math.isnan(std) else std
            if ref is not None and group is not ref:
                ref_values = per_seed[ref.label][name]
                common = sorted(set(by_seed) & set(ref_values))
                if common:
                    test = paired_test([by_seed[s] for s in common], [ref_values[s] for s in common], alpha)
                    row["tests"][name] = {**test, "seeds": common}
        steps = [r.steps for r in group.runs.values() if r.steps is not None]
        train = [r.train_s for r in group.runs.values() if r.train_s is not None]
        row["steps"] = max(steps) if steps else None
        row["train_s"] = mean_std(train)[0] if train else None
        per_class = [r.per_class for r in group.runs.values() if r.per_class]
        if per_class:
            names = list(per_class[0])
            row["per_class_iou"] = {
                n: mean_std([p.get(n) if p.get(n) is not None else math.nan for p in per_class])
                for n in names
            }
        rows.append(row)
    return rows


def add_costs(
    rows: list[dict[str, Any]],
    groups: Sequence[Group],
    cache_path: Path,
    device: str = "cpu",
    runs: int = 5,
    log: Callable[[str], None] = print,
) -> None:
    """Add params / GMACs / latency to every row, measuring each distinct model once (cached)."""
    from densemtl.analysis.profile import profile_model
    from densemtl.models import build_model
    from densemtl.tasks import task_channels

    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    for row, group in zip(rows, groups):
        run = next(iter(group.runs.values()))
        what = [run.model, run.model_options, run.tasks, run.num_classes, run.image_size, device]
        key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
        if key not in cache:
            log(f"[report] profiling {run.model} at {run.image_size[0]}x{run.image_size[1]} on {device}")
            net = build_model(run.model, tasks=task_channels(run.tasks, run.num_classes), **run.model_options)
            cost = profile_model(net, input_size=tuple(run.image_size), device=device, warmup=1, runs=runs)
            cache[key] = {
                "model": run.model,
                "params": cost["params"],
                "params_mi": cost["params_mi"],
                "gmacs": cost["macs"] / 1e9,
                "latency_ms": cost["latency_ms_median"],
                "image_size": run.image_size,
                "device": device,
            }
            cache_path.write_text(json.dumps(cache, indent=1))
        row.update({k: cache[key][k] for k in ("params", "params_mi", "gmacs", "latency_ms")})


def _json_ready(value: Any) -> Any:
    """``value`` with NaN floats as None (JSON has no NaN; browsers and jq reject Python's)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _mark(row: dict[str, Any], name: str) -> str:
    test = row["tests"].get(name)
    return NOT_SIGNIFICANT if test is not None and test["n"] >= 2 and not test["significant"] else ""


def table_cells(rows: Sequence[dict[str, Any]], baseline: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table (shared by the Markdown and HTML writers)."""
    shown = [m for m in SHOWN_METRICS if any(m in r["metrics"] for r in rows)]
    head = ["model", "seeds", *shown, f"Δ_MTL vs {baseline or '–'} (%)"]
    head += ["params (Mi)", "params (M)", "GMACs", "latency (ms)", "steps", "train (s)"]
    body = []
    for r in rows:
        name = f"`{r['label']}`" + (" (ref)" if r["is_reference"] and len(rows) > 1 else "")
        cells = [name, str(len(r["seeds"]))]
        cells += [_fmt(r["metrics"].get(m), r["metrics_std"].get(m), 4) + _mark(r, m) for m in shown]
        cells.append(_fmt(r.get(DELTA), r.get("delta_mtl_std"), 2) + _mark(r, DELTA))
        cost = r.get("params") is not None
        cells += [
            f"{r['params_mi']:.2f}" if cost else "–",
            f"{r['params'] / 1e6:.2f}" if cost else "–",
            f"{r['gmacs']:.2f}" if cost else "–",
            f"{r['latency_ms']:.1f}" if cost else "–",
            str(r["steps"]) if r.get("steps") is not None else "–",
            f"{r['train_s']:.0f}" if r.get("train_s") is not None else "–",
        ]
        body.append(cells)
    return head, body


def significance_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the paired-test table: one line per (group, metric) tested."""
    head = ["model", "metric", "vs", "pairs", "mean diff", "paired t p", "sign-flip p", "significant"]
    body = []
    for r in rows:
        for name, t in r["tests"].items():
            p_t = "–" if math.isnan(t["p_t"]) else f"{t['p_t']:.3f}"
            p_perm = "–" if math.isnan(t["p_perm"]) else f"{t['p_perm']:.3f}"
            verdict = "yes" if t["significant"] else ("no" if t["n"] >= 2 else "one seed: no test")
            body.append([f"`{r['label']}`", name, f"`{r['reference']}`", str(t["n"])])
            body[-1] += [f"{t['mean_diff']:+.4f}", p_t, p_perm, verdict]
    return head, body


def _markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def _html_text(text: str) -> str:
    """Escaped ``text`` with its Markdown `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _html_table(head: list[str], body: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        return f"<{tag}>{_html_text(text)}</{tag}>"

    lines = ["<table>", "<tr>" + "".join(cell(h, "th") for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(cell(c, "td") for c in cells) + "</tr>" for cells in body]
    return "\n".join([*lines, "</table>"])


def _accuracy(rows: Sequence[dict[str, Any]], baseline: str) -> tuple[str, list[float], list[float]]:
    """The y axis of the cost plot: Δ_MTL when there is one, else the first metric shown."""
    if any(r.get(DELTA) is not None for r in rows):
        ys = [r.get(DELTA) for r in rows]
        errs = [r.get("delta_mtl_std") for r in rows]
        label = f"Δ_MTL vs {baseline} (%)"
    else:
        first = next((m for m in SHOWN_METRICS if all(m in r["metrics"] for r in rows)), None)
        ys = [r["metrics"].get(first) if first else None for r in rows]
        errs = [r["metrics_std"].get(first) if first else None for r in rows]
        label = first or "metric"
    nan = float("nan")
    return label, [nan if y is None else y for y in ys], [0.0 if e is None else e for e in errs]


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower x) and accuracy (higher y)."""
    order = sorted((i for i in range(len(xs)) if not math.isnan(ys[i])), key=lambda i: (xs[i], -ys[i]))
    front, best = [], -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def plot_cost(rows: Sequence[dict[str, Any]], path: Path, baseline: str) -> Path:
    """Accuracy (mean ± std over seeds) against params, GMACs and latency, with the Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel, ys, errs = _accuracy(rows, baseline)
    axes_spec = [("params", 1e-6, "parameters (M)"), ("gmacs", 1.0, "GMACs per image")]
    axes_spec.append(("latency_ms", 1.0, "latency (ms, batch 1)"))
    with_cost = [r.get("params") is not None for r in rows]
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(5 * len(axes_spec), 4.2))
    for ax, (key, scale, xlabel) in zip(axes, axes_spec):
        xs = [r[key] * scale if ok else float("nan") for r, ok in zip(rows, with_cost)]
        for i, r in enumerate(rows):
            ax.errorbar(xs[i], ys[i], yerr=errs[i], fmt="o", ms=5, capsize=3)
            ax.annotate(r["label"], (xs[i], ys[i]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front(xs, ys) if all(with_cost) else []
        if len(front) > 1:
            ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", ls="--", c="k", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle("accuracy vs cost (error bars: sample std over seeds; dashed: Pareto front)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_class(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-class test IoU of every group that saved it (bars: mean, whiskers: sample std)."""
    rows = [r for r in rows if r.get("per_class_iou")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows[0]["per_class_iou"])
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(min(24.0, max(8.0, 3 + 0.3 * len(names) * max(1.0, len(rows) / 3))), 4.2))
    for k, r in enumerate(rows):
        pairs = [r["per_class_iou"].get(n, (math.nan, math.nan)) for n in names]
        means = [p[0] for p in pairs]
        stds = [0.0 if math.isnan(p[1]) else p[1] for p in pairs]
        ax.bar(np.arange(len(names)) + k * width, means, width, yerr=stds, capsize=2, label=r["label"])
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("test IoU")
    ax.set_ylim(0, 1)
    ax.legend(
        fontsize=8, ncol=min(4, len(rows)), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False
    )
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def notes(rows: Sequence[dict[str, Any]], baseline: str, alpha: float, device: str) -> list[str]:
    """The lines that say how to read the tables."""
    n = max((len(r["seeds"]) for r in rows), default=0)
    ref = rows[0]["reference"] if rows else "–"
    text = [
        f"Metrics on the test split, mean ± sample std (ddof=1) over seeds. Δ_MTL (Maninis et al., primary "
        f"metric per task) is computed per seed against that seed's `{baseline or '–'}` run, then averaged.",
        f"{NOT_SIGNIFICANT}: not significantly different from `{ref}` (paired by seed, paired t-test, "
        f"p ≥ {alpha}; the t-test assumes normal seed-to-seed differences). The exact sign-flip test, "
        "which does not, is in the second table.",
        f"Cost: params counted exactly (Mi = 2^20), MACs per image (FlopCounterMode), latency = median "
        f"batch-1 forward on {device}, at each run's resolution.",
    ]
    if n <= 3:
        text.append(
            f"With {n} seed(s) the tests have low power: the sign-flip test cannot reach p < 0.05 with "
            "fewer than 6 seeds, and an unmarked cell is a difference shown, not a ranking."
        )
    return text


def write_report(
    rows: list[dict[str, Any]],
    output: Path,
    prefix: str,
    title: str,
    baseline: str,
    alpha: float = ALPHA,
    device: str = "cpu",
    preamble: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``<prefix>.md`` / ``.json`` / ``.png`` / ``_per_class_iou.png`` / ``.html``; their paths."""
    output.mkdir(parents=True, exist_ok=True)
    paths = {"png": plot_cost(rows, output / f"{prefix}.png", baseline or "–")}
    per_class = plot_per_class(rows, output / f"{prefix}_per_class_iou.png")
    if per_class is not None:
        paths["per_class_png"] = per_class
    main_table, tests = table_cells(rows, baseline), significance_cells(rows)
    lines = notes(rows, baseline, alpha, device)
    md = [f"# {title}", "", *preamble, *([""] if preamble else []), *lines, "", _markdown(*main_table), ""]
    if tests[1]:
        md += ["## Paired tests", "", _markdown(*tests), ""]
    md += [f"![accuracy vs cost]({prefix}.png)", ""]
    if per_class is not None:
        md += [f"![per-class IoU]({per_class.name})", ""]
    paths["md"] = output / f"{prefix}.md"
    paths["md"].write_text("\n".join(md))
    paths["json"] = output / f"{prefix}.json"
    paths["json"].write_text(json.dumps(_json_ready(rows), indent=1))

    def image(path: Path, alt: str) -> str:
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
        "th{background:#eee}img{max-width:100%}"
    )
    page = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{style}</style></head><body>',
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{_html_text(line)}</p>" for line in [*preamble, *lines]),
        _html_table(*main_table),
    ]
    if tests[1]:
        page += ["<h2>Paired tests</h2>", _html_table(*tests)]
    page += ["<h2>Accuracy vs cost</h2>", image(paths["png"], "accuracy vs cost")]
    if per_class is not None:
        page += ["<h2>Per-class IoU</h2>", image(per_class, "per-class IoU")]
    paths["html"] = output / f"{prefix}.html"
    paths["html"].write_text("\n".join([*page, "</body></html>", ""]))
    return paths


def build_report(
    records: Sequence[RunRecord],
    output: str | Path,
    prefix: str = "report",
    title: str = "densemtl report",
    baseline: str = "stl_aspp",
    reference: str = "",
    alpha: float = ALPHA,
    device: str = "cpu",
    profile_runs: int = 5,
    preamble: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Group ``records``, summarise, add costs and write the report; ``(rows, written paths)``."""
    if not records:
        raise DataError(output, "no finished runs (test_metrics.json + config.yaml) to report on")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    groups = group_runs(records, log)
    if reference and _find_group(groups, reference) is None:
        raise ConfigError(f"report: --reference {reference!r} is not one of {[g.label for g in groups]}")
    rows = summarize(groups, baseline, reference, alpha)
    add_costs(rows, groups, output / "profile_cache.json", device, profile_runs, log)
    paths = write_report(rows, output, prefix, title, baseline, alpha, device, preamble)
    return rows, paths
