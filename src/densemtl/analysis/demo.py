"""``densemtl demo``: render synthetic rooms, train the default joint model, evaluate, write a report.

Training is budgeted in optimiser steps (not wall-clock), so a busy machine changes how long the
demo takes, not what it reaches. The recipe is ``configs/demo.yaml``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="run folder (report, checkpoints, logs)")
    parser.add_argument(
        "--config", default=str(CONFIG_DIR / "demo.yaml"), help="training recipe (LightningCLI YAML)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimiser steps")
    parser.add_argument("--num-images", type=int, default=None, help="override the number of rendered rooms")
    parser.add_argument("--panels", type=int, default=6, help="prediction panels in the report")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides, e.g. --data.batch_size=8")


def run(args: argparse.Namespace) -> int:
    from densemtl.cli import build_cli

    output = Path(args.output)
    overrides = [
        "--config",
        args.config,
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
    if args.max_steps is not None:
        overrides += ["--trainer.max_steps", str(args.max_steps)]
    if args.num_images is not None:
        overrides += ["--data.synthetic.num_images", str(args.num_images)]
    overrides += list(args.overrides)
    start = time.perf_counter()
    cli = build_cli(overrides, run=False)
    trainer, module, data = cli.trainer, cli.model, cli.datamodule
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
    report = write_report(output, module, data, metrics, timings, args.panels, checkpoint)
    print(
        f"[demo] mIoU {metrics.get('miou', float('nan')):.3f}  delta1 {metrics.get('delta1', float('nan')):.3f}  "
        f"abs_rel {metrics.get('abs_rel', float('nan')):.3f}  ({timings['total_s'] / 60:.1f} min)"
    )
    print(f"[demo] report: {report}")
    return 0


@torch.inference_mode()
def _per_class_iou_and_panels(
    module: Any, data: Any, panels: int, out_dir: Path
) -> tuple[list[float], list[Path]]:
    from densemtl.data.io import write_image
    from densemtl.data.sample import collate
    from densemtl.inference.viz import prediction_panel
    from densemtl.metrics import SegmentationMetrics
    from densemtl.training.module import label_numpy, prediction_numpy

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
            pred = prediction_numpy(outputs, i)
            gt = {t: label_numpy(t, batch[t][i]) for t in module.tasks if bool(batch["has_gt"][t][i])}
            panel = prediction_panel(batch["image"][i].numpy(), data.class_colors, pred, gt)
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
