"""``densemtl distill``: a teacher's pseudo-labels for samples lacking a task's label (:mod:`densemtl.training.distill`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from densemtl.cli.args import add_device_argument, parse_size
from densemtl.errors import ConfigError
from densemtl.training.distill import DISTILL_TASKS, distill, hide_labels


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--teacher", help="teacher checkpoint (densemtl fit) predicting --task")
    parser.add_argument(
        "--dataset-root",
        "--dataset",
        dest="dataset_root",
        required=True,
        help="dataset in the folder format (docs/data.md)",
    )
    parser.add_argument("--task", required=True, choices=DISTILL_TASKS, help="task to pseudo-label")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output dataset folder (a hard-linked copy of --dataset-root plus pseudo/<task>/); "
        "--dataset-root itself writes pseudo/<task>/ in place",
    )
    parser.add_argument(
        "--split", default="train", help="split to label (default train; 'all' = every image)"
    )
    parser.add_argument(
        "--size", default=None, help="run the teacher at HEIGHTxWIDTH (default: each image's own size)"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="semseg: pixels with teacher softmax confidence below this get the ignore index",
    )
    add_device_argument(parser, help="cpu or cuda")
    parser.add_argument(
        "--hide",
        type=float,
        default=None,
        metavar="FRACTION",
        help="experiment helper: copy the dataset to --out with FRACTION of --split lacking --task",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --hide")
    return parser


def run(args: argparse.Namespace) -> int:
    split = None if args.split == "all" else args.split
    if args.hide is not None:
        hidden = hide_labels(args.dataset_root, args.out, args.task, args.hide, split or "train", args.seed)
        print(
            f"wrote {args.out}: {len(hidden)} {split or 'train'} samples without {args.task} labels "
            f"(listed in {Path(args.out) / f'hidden_{args.task}.txt'})"
        )
        return 0
    if not args.teacher:
        raise ConfigError("distill: --teacher is required (unless --hide)")
    size = parse_size(args.size) if args.size else None
    manifest = distill(
        args.teacher, args.dataset_root, args.task, args.out, split, size, args.min_confidence, args.device
    )
    print(
        f"wrote {len(manifest['labelled'])} {args.task} pseudo-labels to {Path(args.out) / 'pseudo' / args.task} "
        f"({manifest['skipped_with_gt']} samples with ground truth left untouched)"
    )
    return 0
