"""``densemtl demo``: render synthetic rooms, train the default joint model, evaluate, write a report.

Training is budgeted in optimiser steps (not wall-clock), so a busy machine changes how long the
demo takes, not what it reaches. The recipe is ``configs/demo.yaml``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
REPORT_METRICS = (
    "miou",
    "pixel_acc",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "delta1",
    "delta2",
    "delta3",
    "normal_mean",
    "normal_median",
    "normal_11_25",
)


def demo_overrides(
    output: str | Path,
    config: str | Path = CONFIG_DIR / "demo.yaml",
    max_steps: int | None = None,
    num_images: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The LightningCLI arguments of a demo run: the recipe, the run folder as root and logger, overrides."""
    overrides = [
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(output),
        "--trainer.logger",
        json.dumps(
            {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(output), "name": "logs", "version": ""},
            }
        ),
    ]
    if max_steps is not None:
        overrides += ["--trainer.max_steps", str(max_steps)]
    if num_images is not None:
        overrides += ["--data.synthetic.num_images", str(num_images)]
    return overrides + list(extra)


def run_demo(
    trainer: Any,
    module: Any,
    data: Any,
    output: Path,
    panels: int = 6,
    start: float | None = None,
    fuse_frames: int = 0,
) -> tuple[dict[str, float], dict[str, float], Path]:
    """Render (or load) the rooms, train, test the last checkpoint and write the report.

    ``trainer`` / ``module`` / ``data``: as the densemtl LightningCLI instantiates them from
    :func:`demo_overrides`; ``start``: when the run began (``time.perf_counter``), for the timings;
    ``fuse_frames``: when > 0, also fuse a rendered trajectory of that many frames into a 3D
    semantic map (:func:`fusion_section`). Returns ``(test metrics, timings, report path)``.
    """
    start = time.perf_counter() if start is None else start
    print(f"[demo] rendering / loading synthetic rooms into {data.root} ...", flush=True)
    data.prepare_data()
    render_done = time.perf_counter()
    trainer.fit(module, datamodule=data)
    train_done = time.perf_counter()
    trainer.test(module, datamodule=data, ckpt_path="last", verbose=False)
    metrics = dict(module.test_results)
    timings = {
        "render_s": render_done - start,
        "train_s": train_done - render_done,
        "total_s": time.perf_counter() - start,
        "steps": int(trainer.global_step),
    }
    checkpoint = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
    sections: list[str] = []
    if fuse_frames > 0:
        sections = fusion_section(output, checkpoint, fuse_frames, tuple(data.image_size))
    report = write_report(output, module, data, metrics, timings, panels, checkpoint, sections)
    return metrics, timings, report


FUSION_METRICS = (
    ("F-score @ 5 cm", "fscore", "{:.3f}"),
    ("accuracy (mm)", "accuracy", "{:.0f}"),
    ("completeness (mm)", "completeness", "{:.0f}"),
    ("semantic acc. (map)", "semantic_accuracy", "{:.3f}"),
    ("mIoU (map)", "miou", "{:.3f}"),
    ("pixel acc. (per frame)", "frame_pixel_accuracy", "{:.3f}"),
    ("mIoU (per frame)", "frame_miou", "{:.3f}"),
    ("frames/s end to end", "end_to_end_fps", "{:.2f}"),
)


def fusion_section(
    output: Path,
    checkpoint: Path,
    frames: int,
    size: tuple[int, int],
    seed: int = 0,
    voxel_size: float = 0.04,
    surface_spacing: float = 0.02,
) -> list[str]:
    """Fuse one rendered trajectory with the checkpoint and with its ground truth (the oracle).

    Renders ``frames`` frames of trajectory 0 (``render_trajectories``, seed ``seed``; GT surface
    sampled every ``surface_spacing`` m, 2 cm keeps the scoring cheap) at the network's ``size`` under ``output/fusion/``, fuses them into a TSDF (:func:`densemtl.fusion.fuse`,
    SemanticFusion's Bayesian label update), draws each map beside the GT surface from two
    viewpoints (``fusion/<source>.png``) and returns the report's markdown lines, also writing the
    scores to ``fusion/metrics.json``. See docs/fusion.md.
    """
    from densemtl.data.synthetic.trajectory import render_trajectories
    from densemtl.fusion import fuse, open_sequence
    from densemtl.fusion.predictors import CheckpointPredictor
    from densemtl.fusion.report import render_comparison

    folder = output / "fusion"
    print(f"[demo] fusing a {frames}-frame trajectory into a 3D semantic map ...", flush=True)
    root = render_trajectories(
        folder / "trajectory", 1, frames=frames, height=size[0], width=size[1], seed=seed,
        surface_spacing=surface_spacing, workers=1, progress=False,
    )  # fmt: skip
    sequence = open_sequence(root / "traj_0000")
    scores: dict[str, dict[str, Any]] = {}
    for source, predictor in (("network", CheckpointPredictor(checkpoint)), ("oracle", None)):
        result = fuse(sequence, predictor, voxel_size=voxel_size, progress=False)
        render_comparison(folder / f"{source}.png", result.mesh, sequence.surface, result.class_colors)
        scores[source] = {**(result.metrics or {}), **result.timing}
    (folder / "metrics.json").write_text(json.dumps(scores, indent=1, default=float))
    lines = [
        "## 3D semantic map",
        "",
        f"{frames} frames of a rendered walk through a new room ({size[0]}x{size[1]}, true poses) "
        f"fused into a {voxel_size * 100:.0f} cm TSDF (`densemtl fuse`, docs/fusion.md) with the "
        "network's depth and class probabilities, and with the ground truth (the oracle). The "
        "per-frame columns score the same network on the same frames before fusion.",
        "",
        "| | " + " | ".join(label for label, _, _ in FUSION_METRICS) + " |",
        "|---|" + "---|" * len(FUSION_METRICS),
    ]
    for source, values in scores.items():
        cells = []
        for _, key, fmt in FUSION_METRICS:
            value = values.get(key)
            scale = 1000.0 if key in ("accuracy", "completeness") else 1.0
            cells.append("-" if value is None else fmt.format(value * scale))
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines += ["", "Fused mesh | ground-truth surface, two viewpoints (network, then oracle):", ""]
    lines += [f"![fusion {source}](fusion/{source}.png)" for source in scores]
    return lines


@torch.inference_mode()
def _per_class_iou_and_panels(
    module: Any, data: Any, panels: int, out_dir: Path
) -> tuple[list[float], list[Path]]:
    from densemtl.data.io import write_image
    from densemtl.data.sample import collate
    from densemtl.inference.viz import prediction_panel
    from densemtl.metrics import SegmentationMetrics
    from densemtl.tasks import get_task

    module.eval()
    dataset = data.split_dataset("test")
    seg = SegmentationMetrics(num_classes=data.num_classes)
    paths: list[Path] = []
    batch_size = 16
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collate(samples, module.tasks)
        outputs = module.predict_tasks(batch["image"])
        if "semseg" in outputs:
            seg.update(outputs["semseg"], batch["semseg"])
        for i in range(len(samples)):
            if len(paths) >= panels:
                break
            pred = {t: get_task(t).to_numpy(out[i]) for t, out in outputs.items()}
            gt = {
                t: get_task(t).label_to_numpy(batch[t][i])
                for t in module.tasks
                if bool(batch["has_gt"][t][i])
            }
            panel = prediction_panel(
                batch["image"][i].numpy(),
                data.class_colors,
                pred,
                gt,
                class_names=data.class_names,
                ranges=data.panel_ranges,
            )
            path = out_dir / f"panel_{len(paths)}.png"
            write_image(path, panel)
            paths.append(path)
    ious = seg.compute_per_class().tolist() if "semseg" in module.tasks else []
    return ious, paths


def write_report(
    output: Path,
    module: Any,
    data: Any,
    metrics: dict[str, float],
    timings: dict[str, float],
    panels: int,
    checkpoint: Path,
    sections: Sequence[str] = (),
) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    ious, panel_paths = _per_class_iou_and_panels(module.cpu(), data, panels, output / "panels")
    lines = [
        "# densemtl demo report",
        "",
        f"Model `{module.hparams.model}` ({sum(p.numel() for p in module.net.parameters()) / 1e6:.2f} M params), "
        f"tasks {', '.join(module.tasks)}, trained {timings['steps']} steps on the synthetic training split "
        f"at {data.image_size[0]}x{data.image_size[1]}; evaluated on the held-out test split "
        f"({len(data.split_dataset('test'))} rooms).",
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {metrics[k]:.4f} |" for k in REPORT_METRICS if k in metrics]
    if ious:
        lines += ["", "## Per-class IoU", "", "| class | IoU |", "|---|---|"]
        lines += [f"| {name} | {iou:.3f} |" for name, iou in zip(data.class_names, ious)]
    lines += [
        "",
        "## Predictions",
        "",
        "Columns: RGB | GT seg | pred seg | GT depth | pred depth | |depth error| "
        "(| GT normals | pred normals).",
        "",
    ]
    lines += [f"![panel {i}](panels/{p.name})" for i, p in enumerate(panel_paths)]
    if sections:
        lines += ["", *sections]
    lines += [
        "",
        "## Run",
        "",
        f"- render/load data: {timings['render_s']:.0f} s, training: {timings['train_s']:.0f} s, "
        f"total: {timings['total_s']:.0f} s",
        f"- machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        f"- checkpoint: `{checkpoint}`",
        f"- predict on your images: `densemtl predict --ckpt {checkpoint} "
        "--input <image or folder> --output predictions`",
        "",
    ]
    (output / "metrics.json").write_text(
        json.dumps({**metrics, "per_class_iou": dict(zip(data.class_names, ious)), **timings}, indent=1)
    )
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report
