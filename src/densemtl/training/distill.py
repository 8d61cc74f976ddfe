"""``densemtl distill``: hard knowledge distillation for asymmetric annotations (Nekrasov et al. 2019).

A teacher (any densemtl checkpoint predicting ``--task``) labels the samples of a folder-format
dataset that *lack* that task's ground truth; its predictions are written as pseudo-labels, used in
training as if they were ground truth ("hard" distillation: argmax class ids / depth maps)::

    densemtl distill --teacher teacher.ckpt --dataset-root data/nyu_folder --task semseg --out data/nyu_kd

**Where the pseudo-labels go (the decision).** ``--out`` is a *new dataset folder*: a copy of
``--dataset-root`` (every file hard-linked where the file system allows it, else copied, so the copy
is cheap and the source is never modified) plus ``pseudo/<task>/<id>.png`` for each labelled sample.
Pointing ``--out`` at ``--dataset-root`` itself writes ``pseudo/<task>/`` in place instead. Either
way ``pseudo/<task>/`` is rewritten from scratch (stale pseudo-labels of an earlier teacher go).

The folder format (``densemtl.data.datasets.folder``) loads ``pseudo/<task>/<id>.png`` only where the ground
truth is missing and marks the task in ``sample["meta"]["pseudo"]``; ``collate`` then sets
``batch["has_gt"][task]`` False for it, so losses train on pseudo-labels while metrics never count
them. Samples that have ground truth are never given a pseudo-label. Train the student on ``--out``
with ``data.dataset: folder`` and ``data.root: <out>``.

Formats: semseg = class ids (uint8/uint16 PNG; pixels whose teacher softmax confidence is below
``--min-confidence`` get the dataset's ignore index), depth = uint16 PNG millimetres (as
``depth/``), normals = RGB PNG ``(n + 1) * 127.5``. ``pseudo/<task>/manifest.json`` records the
teacher, the options and the ids labelled.

``--hide FRACTION`` is the experiment helper instead: it writes to ``--out`` a copy of the dataset in
which a random ``FRACTION`` of the ``--split`` samples lack the ``--task`` label (to simulate
asymmetric annotations on synthetic data; ``--seed`` picks them; the hidden ids are listed in
``hidden_<task>.txt``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.data import io
from densemtl.data.datasets.folder import DEPTH_PNG_SCALE, LABEL_DIRS, FolderDataset
from densemtl.errors import ConfigError, DataError

__all__ = ["DISTILL_TASKS", "copy_dataset", "distill", "hide_labels"]

DISTILL_TASKS = ("semseg", "depth", "normals")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_dataset(src: str | Path, dst: str | Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a folder-format dataset (hard links where possible); ``skip``: relative paths left out."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ConfigError("copy_dataset: source and destination are the same folder")
    if dst.exists() and any(dst.iterdir()) and not (dst / "classes.json").is_file():
        raise ConfigError(
            f"{dst} exists, is not empty and is not a dataset folder: refusing to write into it"
        )
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(rel == Path(s) or Path(s) in rel.parents for s in skip):
            continue
        if path.is_file():
            _link_or_copy(path, dst / rel)


def hide_labels(
    src: str | Path, dst: str | Path, task: str, fraction: float, split: str = "train", seed: int = 0
) -> list[str]:
    """Copy ``src`` to ``dst`` without the ``task`` label of a random ``fraction`` of ``split``; returns
    the hidden ids (also written to ``dst/hidden_<task>.txt``)."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"--hide must be a fraction in [0, 1], got {fraction}")
    ds = FolderDataset(src, split=split, tasks=[task], use_pseudo=False)
    have = [i for i in ds.ids if ds.label_path(task, i) is not None]
    rng = np.random.default_rng(seed)
    count = round(fraction * len(have))
    hidden = sorted(rng.choice(have, size=count, replace=False).tolist()) if count else []
    skip = [str(ds.label_path(task, i).relative_to(ds.root)) for i in hidden]  # type: ignore[union-attr]
    skip.append(f"pseudo/{task}")
    copy_dataset(src, dst, tuple(skip))
    Path(dst, f"hidden_{task}.txt").write_text("".join(f"{i}\n" for i in hidden))
    return hidden


def _teacher(path: str | Path, task: str) -> tuple[torch.nn.Module, int]:
    from densemtl.training.checkpoint import load_module

    module = load_module(path)
    net = module.net.eval()
    if task not in net.tasks:
        raise DataError(Path(path), f"teacher does not predict {task!r} (it predicts {', '.join(net.tasks)})")
    return net, int(net.tasks[task])


@torch.inference_mode()
def _predict(
    net: torch.nn.Module, rgb: np.ndarray, task: str, size: tuple[int, int] | None, device: torch.device
) -> torch.Tensor:
    """Teacher output for ``task`` at the image's own size (run at ``size`` if given)."""
    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)[None].to(device)
    h, w = image.shape[-2:]
    if size is not None and tuple(size) != (h, w):
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    out = net(image)[task].float()
    if out.shape[-2:] != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        if task == "normals":
            out = F.normalize(out, dim=1)
    return out[0].cpu()


def distill(
    teacher: str | Path,
    dataset_root: str | Path,
    task: str,
    out: str | Path,
    split: str | None = "train",
    size: tuple[int, int] | None = None,
    min_confidence: float = 0.0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write the teacher's pseudo-labels for the samples of ``split`` lacking ``task`` (see module doc).

    Returns the manifest: ``labelled`` (ids given a pseudo-label), ``skipped_with_gt`` (count) etc.
    """
    if task not in DISTILL_TASKS:
        raise ConfigError(f"--task must be one of {', '.join(DISTILL_TASKS)}, got {task!r}")
    src, out = Path(dataset_root), Path(out)
    ds = FolderDataset(src, split=split, tasks=[task], use_pseudo=False)
    net, channels = _teacher(teacher, task)
    if task == "semseg" and channels != ds.num_classes:
        raise DataError(
            Path(teacher), f"teacher predicts {channels} classes, the dataset has {ds.num_classes}"
        )
    dev = torch.device(device)
    net.to(dev)
    in_place = out.exists() and out.resolve() == src.resolve()
    if not in_place:
        copy_dataset(src, out, skip=(f"pseudo/{task}",))
    folder = out / "pseudo" / task
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    labelled: list[str] = []
    with_gt = 0
    for index, sample_id in enumerate(ds.ids):
        if ds.label_path(task, sample_id) is not None:
            with_gt += 1
            continue
        rgb = io.read_image(ds._rgb_paths[index])
        pred = _predict(net, rgb, task, size, dev)
        target = folder / f"{sample_id}.png"
        if task == "semseg":
            prob = pred.softmax(0)
            conf, labels = prob.max(0)
            labels = labels.numpy().astype(np.int64)
            if min_confidence > 0:
                labels[(conf < min_confidence).numpy()] = ds.ignore_index
            io.write_label_png(target, labels)
        elif task == "depth":
            io.write_depth_png(
                target, np.clip(pred[0].numpy(), 0.0, 65535 / DEPTH_PNG_SCALE), DEPTH_PNG_SCALE
            )
        else:
            io.write_normals_png(target, pred.permute(1, 2, 0).numpy())
        labelled.append(sample_id)
    manifest = {
        "teacher": str(teacher),
        "source": str(src),
        "task": task,
        "split": split,
        "size": list(size) if size else None,
        "min_confidence": min_confidence,
        "labelled": labelled,
        "skipped_with_gt": with_gt,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "ground_truth_folder": LABEL_DIRS[task],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
