"""``densemtl compare``: train several models (and weightings) under one protocol, over seeds.

Every (model, weighting, seed) is one Lightning run of the shared recipe (``config``, a
LightningCLI YAML; only ``model.model``, ``model.weighting``, ``seed_everything`` and per-model
``model_options`` change) in its own folder, trained and tested by :mod:`densemtl.analysis.sweep`
(resumable: a rerun skips finished runs and resumes interrupted ones). The report
(:mod:`densemtl.analysis.report`) gives each metric as mean ± sample std over seeds, Δ_MTL per seed
against that seed's single-task run (``baseline``, default ``stl_aspp``), a paired test of each model
against the ``reference`` and the cost of each model (params, MACs, latency at the recipe's
resolution), as ``compare.md`` / ``.json`` / ``.png`` / ``.html``.

Example::

    densemtl compare --models stl_aspp,mtl_hps,mtl_ssw --config configs/nyud_mtl_ssw.yaml \\
        --seeds 0,1,2 --max-steps 2000 --output runs/compare -- --data.root data/nyud
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from densemtl.analysis.report import SHOWN_METRICS, build_report, find_runs
from densemtl.analysis.sweep import RunSpec, launch_local, launch_slurm, prepare_runs
from densemtl.errors import ConfigError

__all__ = ["CONFIG_DIR", "SHOWN_METRICS", "parse_seeds", "recipe_seed", "run_comparison", "sweep_specs"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-2"`` -> [0, 1, 2] (distinct, in the given order)."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in str(text).split(",") if p.strip()):
            first, sep, last = part.partition("-")
            seeds += list(range(int(first), int(last) + 1)) if sep and first else [int(part)]
    except ValueError:
        raise ConfigError(f"compare: --seeds wants integers like 0,1,2 or 0-2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"compare: --seeds must list distinct seeds, got {text!r}")
    return seeds


def recipe_seed(config: str | Path) -> int:
    """The recipe's ``seed_everything`` (0 when it has none or asks for a random one)."""
    import yaml

    seed = (yaml.safe_load(Path(config).read_text()) or {}).get("seed_everything", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def sweep_specs(
    models: Sequence[str],
    config: str | Path,
    seeds: Sequence[int],
    weightings: Sequence[str] | None = None,
    max_steps: int | None = None,
    overrides: Sequence[str] = (),
    model_options: dict[str, dict[str, Any]] | None = None,
    checkpoint_every: int = 50,
) -> list[RunSpec]:
    """The runs of a comparison, model-major then weighting then seed (the order they are run in)."""
    config = str(Path(config).resolve())
    return [
        RunSpec(
            model=model,
            seed=int(seed),
            config=config,
            weighting=weighting,
            max_steps=max_steps,
            overrides=tuple(overrides),
            model_options=dict((model_options or {}).get(model, {})),
            checkpoint_every=checkpoint_every,
        )
        for model in models
        for weighting in (weightings or [None])
        for seed in seeds
    ]


def run_comparison(
    specs: Sequence[RunSpec],
    output: str | Path,
    runner: Callable[[str | Path], Any],
    launcher: str = "local",
    parallel: int = 1,
    slurm: dict[str, Any] | None = None,
    baseline: str = "stl_aspp",
    reference: str = "",
    device: str = "cpu",
    profile_runs: int = 5,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Run what is not finished yet, then rebuild the report from every run of ``specs``.

    ``slurm``: keyword arguments of :func:`densemtl.analysis.sweep.launch_slurm` (partition,
    time_min, gpus_per_job, array_parallelism, cpus_per_job, cluster).
    """
    output = Path(output)
    folders, todo = prepare_runs(specs, output, log)
    if todo:
        if launcher == "local":
            failed = launch_local(todo, runner, parallel, log)
        elif launcher == "slurm":
            failed = launch_slurm(todo, runner, output / "slurm", log=log, **(slurm or {}))
        else:
            raise ConfigError(f"compare: --launcher must be local or slurm, got {launcher!r}")
        if failed:
            raise ConfigError(
                f"compare: {len(failed)} run(s) failed ({', '.join(map(str, failed))}); "
                "rerun the same command to resume them"
            )
    records = find_runs(folders)
    first = specs[0]
    steps = f", {first.max_steps} steps" if first.max_steps is not None else ""
    seeds = sorted({s.seed for s in specs})
    preamble = [f"Recipe `{first.config}`{steps}, seeds {', '.join(map(str, seeds))}."]
    rows, paths = build_report(
        records,
        output,
        prefix="compare",
        title="densemtl compare",
        baseline=baseline,
        reference=reference,
        device=device,
        profile_runs=profile_runs,
        preamble=preamble,
        log=log,
    )
    (output / "compare_specs.json").write_text(json.dumps([s.to_json() for s in specs], indent=1))
    return rows, paths
