"""Supervised-only vs mean-teacher semi-supervised training on the same labelled subset.

The label-fraction experiment of docs/benchmarks.md ("Semi-supervised"): the synthetic scenes, a
``fraction`` of the training images labelled, the rest unlabelled; the mean teacher (Tarvainen &
Valpola 2017) with AffineMix and ColorAug as in Bansal et al. (arXiv 2206.10562), see
:mod:`densemtl.training.semi`. Both runs are tested on the test split; ``results.json`` and
``results.md`` go to ``--out``::

    python scripts/semi_label_fraction.py --out runs/semi10 --fraction 0.1 --max-steps 400
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from densemtl.training.module import DenseMTLModule
from densemtl.training.semi import SemiDataModule, SemiDiagnostics, SemiSupervisedModule


def train_and_test(
    out_dir: str | Path,
    semi: bool,
    fraction: float = 0.1,
    max_steps: int = 1500,
    image_size: Sequence[int] = (96, 128),
    model: str = "ccam",
    model_options: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    num_images: int = 1200,
    seed: int = 0,
    semi_options: Mapping[str, Any] | None = None,
    accelerator: str = "auto",
    diagnostics_every: int = 0,
) -> dict[str, Any]:
    """Train one arm (supervised-only on the labelled part, or semi-supervised) and test it.

    Returns the test metrics, plus ``diagnostics`` (the :class:`SemiDiagnostics` rows) when
    ``diagnostics_every > 0`` (supervised-only: the student's scores on the same images).
    """
    import lightning as L

    out = Path(out_dir)
    L.seed_everything(seed, workers=True)
    data = SemiDataModule(
        dataset="synthetic",
        image_size=image_size,
        batch_size=batch_size,
        cache_in_memory=True,
        tasks=["semseg", "depth"],
        synthetic={"num_images": num_images},
        labelled_fraction=fraction,
        split_seed=seed,
        semi=semi,
        keep_unlabelled_labels=dict(semi_options or {}).get("pseudo_labels") == "ground_truth",
        scales=(1.0, 1.25),
        color_jitter=0.1,
    )
    data.prepare_data()
    common = dict(
        model=model,
        tasks=["semseg", "depth"],
        num_classes=data.num_classes,
        model_options=dict(model_options or {"backbone": "resnet18", "decoder_channels": 64}),
        losses={"semseg": "cross_entropy", "depth": "log_l1"},
        lr=2e-3,
        scheduler="cosine",
        log_images=0,
    )
    module = SemiSupervisedModule(**common, **dict(semi_options or {})) if semi else DenseMTLModule(**common)
    diagnostics = SemiDiagnostics(diagnostics_every, path=str(out / "semi_diagnostics.json"))
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=1,
        default_root_dir=str(out),
        limit_val_batches=0,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision="32-true",
        callbacks=[diagnostics] if diagnostics_every > 0 else [],
    )
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    result: dict[str, Any] = dict(module.test_results)
    if diagnostics_every > 0:
        result["diagnostics"] = diagnostics.history
    return result


def run_label_fraction_experiment(
    out_dir: str | Path = "runs/semi",
    fraction: float = 0.1,
    max_steps: int = 1500,
    image_size: Sequence[int] = (96, 128),
    model: str = "ccam",
    model_options: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    num_images: int = 1200,
    seed: int = 0,
    semi_options: Mapping[str, Any] | None = None,
    accelerator: str = "auto",
) -> dict[str, dict[str, float]]:
    """Train supervised-only and semi-supervised models on the same labelled subset of the
    synthetic scenes and test both; writes ``results.json`` and ``results.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    for name, semi in (("supervised", False), ("semi", True)):
        results[name] = train_and_test(
            out / name,
            semi,
            fraction,
            max_steps,
            image_size,
            model,
            model_options,
            batch_size,
            num_images,
            seed,
            semi_options,
            accelerator,
        )
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    keys = [
        k for k in ("miou", "pixel_acc", "abs_rel", "rmse", "delta1") if any(k in r for r in results.values())
    ] or sorted(next(iter(results.values())))
    lines = [
        f"| setting ({fraction:.0%} labels) | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r.get(k, float('nan')):.4f}" for k in keys) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="supervised-only vs mean-teacher semi-supervised, synthetic scenes"
    )
    parser.add_argument("--out", default="runs/semi")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--model", default="ccam")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-images", type=int, default=1200)
    parser.add_argument("--image-size", type=int, nargs=2, default=(96, 128))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--semi-options", type=json.loads, default=None, help="JSON, e.g. '{\"confidence\": 0.8}'"
    )
    parser.add_argument("--accelerator", default="auto")
    args = parser.parse_args(argv)
    results = run_label_fraction_experiment(
        args.out,
        args.fraction,
        args.max_steps,
        args.image_size,
        args.model,
        {"backbone": args.backbone, "decoder_channels": args.decoder_channels},
        args.batch_size,
        args.num_images,
        args.seed,
        args.semi_options,
        args.accelerator,
    )
    del results
    print((Path(args.out) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
