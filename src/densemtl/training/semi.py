"""Semi-supervised joint segmentation + depth with a mean teacher, AffineMix and ColorAug.

A reconstruction of the semi-supervised setting of Bansal et al. (arXiv 2206.10562; abstract only,
methods.md §1): labelled and unlabelled images; a mean-teacher (EMA of the student, Tarvainen &
Valpola 2017) produces

* pseudo-labels on unlabelled images (segmentation: argmax, ``IGNORE_INDEX`` where the teacher's
  softmax confidence is below ``confidence``; depth: the teacher's depth),
* the depth that orders :class:`~densemtl.training.augment.AffineMix` compositing of two unlabelled images
  (their pseudo-labels and pseudo-depths are mixed the same way; the student learns on the mix),
* the semantic regions of :class:`~densemtl.training.augment.ColorAug` (student depth on the colour-jittered
  labelled image against its ground-truth depth, and optionally on unlabelled images against the
  teacher's depth).

``mix`` replaces AffineMix by the usual mean-teacher mixes (ClassMix, Olsson et al. WACV 2021;
CutMix, French et al. BMVC 2020) or none, for the ablation; :class:`SemiDiagnostics` measures the
teacher on the hidden labels of unlabelled images.

``L = weighting(supervised terms, ramp * w_u L_mix_seg, ramp * w_u w_ud L_mix_depth, ramp * w_c L_coloraug)``:
the unsupervised terms are extra terms of their task (:class:`~densemtl.losses.compose.LossTerms`).

:class:`SemiDataModule` splits the training set into ``labelled_fraction`` labelled images and the
rest without labels. ``densemtl semi fit|validate|test`` trains / evaluates them through the
LightningCLI (every supervised config works, plus ``--model.ema_decay``,
``--data.labelled_fraction``, ...); ``python scripts/semi_label_fraction.py`` runs the supervised-only
vs semi-supervised comparison on the synthetic scenes and writes a table.

A semi-supervised checkpoint also loads into a plain :class:`DenseMTLModule` (``densemtl predict``,
``export``, ``distill``, ``Trainer.test`` from Python): it then holds the teacher's weights when
``evaluate_teacher`` (the model that was validated), else the student's
(:meth:`DenseMTLModule.on_load_checkpoint`). ``densemtl test --ckpt_path`` refuses it, as
LightningCLI re-applies the checkpoint's hyper-parameters (semi options included) to the
supervised model: use ``densemtl semi test``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from densemtl.data.datamodule import DenseDataModule
from densemtl.data.sample import IGNORE_INDEX, TASKS, collate, valid_mask
from densemtl.losses.compose import LossTerms
from densemtl.training.augment import AffineMix, ClassMix, ColorAug, CutMix
from densemtl.training.module import DenseMTLModule

#: The ways of mixing unlabelled pairs (``mix``).
MIXES = ("affinemix", "classmix", "cutmix", "none")

#: Buffers averaged like the parameters (normalisation statistics); every other buffer is copied.
EMA_BUFFERS = ("running_mean", "running_var")


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``t <- decay * t + (1 - decay) * s`` for parameters and BatchNorm running statistics;
    other buffers (``num_batches_tracked``, constants such as the input mean / std) are copied:
    averaging a constant with itself drifts by rounding."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)
    for (name, t), s in zip(teacher.named_buffers(), student.buffers()):
        if t.is_floating_point() and name.rpartition(".")[2] in EMA_BUFFERS:
            t.mul_(decay).add_(s, alpha=1 - decay)
        else:
            t.copy_(s)


def pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard labels [B, H, W] with ``IGNORE_INDEX`` where ``max softmax < threshold``, and the confidence."""
    confidence, labels = torch.softmax(logits.float(), dim=1).max(dim=1)
    return labels.masked_fill(confidence < threshold, IGNORE_INDEX), confidence


class SemiSupervisedModule(DenseMTLModule):
    """:class:`DenseMTLModule` + mean teacher, AffineMix and ColorAug on labelled/unlabelled batches.

    Training batches are ``{"labelled": batch, "unlabelled": batch}`` (a plain batch is treated as
    labelled-only). Args beyond the parent's:
        ema_decay: teacher EMA decay (warmed up as ``min(decay, (1 + step) / (10 + step))``).
        confidence: softmax threshold of segmentation pseudo-labels. Each unlabelled term is its
            task loss's mean over the pixels kept (confident pseudo-labels, positive pseudo-depth),
            not over all pixels: its scale does not shrink with the share of confident pixels.
        unsup_weight / unsup_depth_weight: weight of the unlabelled (mixed) seg loss and relative
            weight of its depth term.
        rampup_steps: linear ramp of the unsupervised weights from 0.
        mix: how pairs of unlabelled images are mixed for the student (their pseudo-labels and
            pseudo-depths alike): ``affinemix`` (:class:`AffineMix`, depth-ordered, the paper's),
            ``classmix`` (:class:`ClassMix`, Olsson et al. 2021), ``cutmix`` (:class:`CutMix`,
            French et al. 2020) or ``none`` (plain pseudo-labelling of the unmixed images).
        mix_options: the mixer's options (AffineMix: ``scale_range``, ``translate``, ``flip``,
            ``disparity``...; ClassMix: ``fraction``; CutMix: ``area``).
        unsup_normalise: ``kept`` averages each unlabelled loss over the pixels kept; ``all``
            over all pixels (the kept-pixel mean times the kept share: the confidence-share
            weighting of French et al. and Olsson et al.), which lowers the weight of a batch
            whose pseudo-labels are mostly unconfident.
        use_coloraug / coloraug / coloraug_weight: ColorAug on labelled images (depth vs. ground truth),
            regions from the teacher's semantics; ``coloraug_unlabelled`` also on unlabelled images
            (depth vs. the teacher).
        evaluate_teacher: validate / test / predict with the teacher (usual for mean teachers).
        pseudo_labels: ``teacher``; ``ground_truth`` replaces the teacher's pseudo-labels and depth
            by the unlabelled images' true labels (an oracle, for diagnosis: it shows what the
            pipeline gives with perfect pseudo-labels; needs ``keep_unlabelled_labels``).
    """

    def __init__(
        self,
        *args: Any,
        ema_decay: float = 0.99,
        confidence: float = 0.9,
        unsup_weight: float = 1.0,
        unsup_depth_weight: float = 0.5,
        rampup_steps: int = 0,
        mix: str = "affinemix",
        mix_options: dict[str, Any] | None = None,
        unsup_normalise: str = "kept",
        use_coloraug: bool = True,
        coloraug: dict[str, Any] | None = None,
        coloraug_weight: float = 0.5,
        coloraug_unlabelled: bool = False,
        evaluate_teacher: bool = True,
        pseudo_labels: str = "teacher",
        **kwargs: Any,
    ) -> None:
        if mix not in MIXES:
            raise ValueError(f"semi-supervised mix must be one of {', '.join(MIXES)}, got {mix!r}")
        if pseudo_labels not in ("teacher", "ground_truth"):
            raise ValueError(f"pseudo_labels must be 'teacher' or 'ground_truth', got {pseudo_labels!r}")
        if unsup_normalise not in ("kept", "all"):
            raise ValueError(f"unsup_normalise must be 'kept' or 'all', got {unsup_normalise!r}")
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()
        self.teacher = copy.deepcopy(self.net)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        mixers = {"affinemix": AffineMix, "classmix": ClassMix, "cutmix": CutMix}
        self.mixer = mixers[mix](**dict(mix_options or {})) if mix in mixers else None
        self.coloraug = ColorAug(**dict(coloraug or {}))
        self._ema_step = 0  # the global step of the last teacher update

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A supervised checkpoint (no ``teacher.*``) starts the teacher as a copy of its model."""
        state = checkpoint.get("state_dict", {})
        if not any(k.startswith("teacher.") for k in state):
            state.update({"teacher." + k[4:]: v for k, v in list(state.items()) if k.startswith("net.")})
        super().on_load_checkpoint(checkpoint)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.training and self.hparams.evaluate_teacher:
            return self.teacher(image)
        return super().forward(image)

    def evaluation_terms(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """As the parent's, with the auxiliary outputs switched on in the evaluated model: the
        teacher when ``evaluate_teacher`` (the parent switches them on in the student only, so
        the teacher's auxiliary terms, e.g. XTasC-Net's transfers, would be missing)."""
        with self.teacher.auxiliary_outputs():
            return super().evaluation_terms(outputs, batch)

    def _ramp(self) -> float:
        steps = self.hparams.rampup_steps
        return 1.0 if steps <= 0 else min(1.0, self.global_step / steps)

    @torch.no_grad()
    def teacher_predict(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.teacher.eval()
        return self.teacher(image)

    def unsupervised_losses(
        self, labelled: Mapping[str, Any], unlabelled: Mapping[str, Any] | None
    ) -> dict[str, torch.Tensor]:
        hp = self.hparams
        terms: dict[str, torch.Tensor] = {}
        if unlabelled is not None and hp.unsup_weight > 0:
            image = unlabelled["image"]
            pred = self.teacher_predict(image)
            sample = {"image": image}
            order = None
            classes = pred["semseg"].argmax(1) if "semseg" in pred else None
            if "semseg" in self.tasks:
                sample["semseg"], _ = pseudo_labels(pred["semseg"], hp.confidence)
            if "depth" in self.tasks:
                sample["depth"] = pred["depth"].clamp_min(0)
                order = sample["depth"]
            if hp.pseudo_labels == "ground_truth":  # the oracle of the diagnosis
                for task in ("semseg", "depth"):
                    if task in sample:
                        has = unlabelled.get("has_gt", {}).get(task)
                        if has is None or not bool(has.all()):
                            raise ValueError(
                                "pseudo_labels: ground_truth needs the unlabelled images' labels "
                                "(SemiDataModule keep_unlabelled_labels: true)"
                            )
                        sample[task] = unlabelled[task]
                order = sample.get("depth")
                classes = sample.get("semseg")
            if "semseg" in sample and self._trainer is not None:
                kept = (sample["semseg"] != IGNORE_INDEX).float().mean()
                self.log("train/pseudo_label_kept", kept, batch_size=image.shape[0])
            if self.mixer is not None and image.shape[0] > 1:
                target = {k: v.roll(1, dims=0) for k, v in sample.items()}
                if isinstance(self.mixer, AffineMix) and order is not None:
                    sample, _ = self.mixer(
                        sample, target, source_order=order, target_order=order.roll(1, dims=0)
                    )
                elif isinstance(self.mixer, ClassMix) and classes is not None:
                    sample, _ = self.mixer(sample, target, source_classes=classes)
                elif isinstance(self.mixer, CutMix):
                    sample, _ = self.mixer(sample, target)
            out = super().forward(sample["image"])
            for task in ("semseg", "depth"):
                if task in sample:
                    weight = 1.0 if task == "semseg" else hp.unsup_depth_weight
                    valid = valid_mask(task, sample[task])
                    loss = self.losses[task](out[task], sample[task], valid)
                    if hp.unsup_normalise == "all":
                        loss = loss * valid.float().mean()
                    terms[f"{task}:unlabelled"] = weight * loss
        if hp.use_coloraug and "depth" in self.tasks and "semseg" in self.tasks and hp.coloraug_weight > 0:
            sets = [(labelled["image"], labelled["depth"])]
            if hp.coloraug_unlabelled and unlabelled is not None:
                sets.append(
                    (unlabelled["image"], self.teacher_predict(unlabelled["image"])["depth"].clamp_min(0))
                )
            loss = 0.0
            for image, depth in sets:
                regions = self.teacher_predict(image)["semseg"].argmax(1)
                jittered = self.coloraug.apply_image(image, regions)
                out = super().forward(jittered)
                loss = loss + self.losses["depth"](out["depth"], depth, valid_mask("depth", depth))
            terms["depth:coloraug"] = loss / len(sets)
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if "labelled" in batch:
            labelled, unlabelled = batch["labelled"], batch.get("unlabelled")
        else:
            labelled, unlabelled = batch, None
        terms = self.compute_losses(super().forward(labelled["image"]), labelled)
        # The unsupervised terms join the weighting as extra terms of their task, each scaled by
        # its ramped weight, so a gradient method (PCGrad, GradNorm...) sees them too.
        ramp = self._ramp()
        extra = {
            key: ramp
            * (self.hparams.coloraug_weight if key == "depth:coloraug" else self.hparams.unsup_weight)
            * value
            for key, value in self.unsupervised_losses(labelled, unlabelled).items()
        }
        terms = terms.with_terms(extra, {key: key.partition(":")[0] for key in extra})
        total = self.weighted_loss(terms)
        self.log_training_terms(total, terms, labelled["image"].shape[0])
        return total

    def on_train_start(self) -> None:
        self._ema_step = self.global_step  # 0, or the resumed step

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        if step == self._ema_step:  # no optimiser step in this batch (gradient accumulation)
            return
        self._ema_step = step
        decay = min(self.hparams.ema_decay, (1 + step) / (10 + step))
        ema_update(self.teacher, self.net, decay)


class SemiDiagnostics(Callback):
    """What the mean teacher is doing, measured on the hidden labels of unlabelled training images.

    Every ``every_n_steps`` optimiser steps and at the end of training, on a fixed set of
    ``num_images`` unlabelled training images (their labels are read here only, never by the
    training): the teacher's and the student's mIoU and δ1 (the student's also on as many labelled
    images, ``labelled_student_...``: the generalisation gap), the share of pixels whose confidence
    passes the pseudo-label threshold (over pixels, and averaged over the true classes) and the
    pixel accuracy of those pixels against their true labels. At the end, also the teacher's mIoU
    with its BatchNorm statistics recomputed on the same images instead of averaged by the EMA.
    Rows go to the loggers (``semi/...``) and to ``path`` (JSON; default ``semi_diagnostics.json``
    in the trainer's root directory).

    Training is unchanged: the images are drawn once with the random states saved and restored,
    and both networks are evaluated in eval mode without gradients.
    """

    def __init__(self, every_n_steps: int = 100, num_images: int = 64, path: str | None = None) -> None:
        if every_n_steps < 1 or num_images < 1:
            raise ValueError("SemiDiagnostics: every_n_steps and num_images must be >= 1")
        self.every_n_steps, self.num_images, self.path = every_n_steps, num_images, path
        self.history: list[dict[str, float]] = []
        self._batch: dict[str, Any] | None = None
        self._labelled: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        from densemtl.data.datamodule import capture_rng, restore_rng

        data = trainer.datamodule
        if not isinstance(data, SemiDataModule):
            raise TypeError("SemiDiagnostics needs a SemiDataModule (it reads its unlabelled split)")
        full = data.split_dataset("train")
        labelled, unlabelled = split_labelled(len(full), data.labelled_fraction, data.split_seed)  # type: ignore[arg-type]
        state = capture_rng()
        try:
            samples = [full[i] for i in unlabelled[: self.num_images]]
            seen = [full[i] for i in labelled[: self.num_images]]
        finally:
            restore_rng(state)
        self._batch = collate(samples, tasks=pl_module.tasks) if samples else None
        self._labelled = collate(seen, tasks=pl_module.tasks)

    @torch.no_grad()
    def measure(self, pl_module: DenseMTLModule) -> dict[str, float]:
        """One row of diagnostics for the current teacher and student (a supervised-only module on
        a ``SemiDataModule``: the student only, the same images, for comparison)."""
        row: dict[str, float] = {"step": float(pl_module.global_step)}
        was_training = pl_module.net.training
        pl_module.net.eval()
        try:
            nets = [("student", pl_module.net)]
            if isinstance(pl_module, SemiSupervisedModule):
                nets.insert(0, ("teacher", pl_module.teacher.eval()))
            if self._batch is not None:  # None: every training image is labelled
                batch = move_data_to_device(self._batch, pl_module.device)
                for name, net in nets:
                    row.update(_diagnostic_scores(name, _predict(net, batch["image"]), batch, pl_module))
            # the same scores on labelled images: the gap says how much the labels are overfitted
            labelled = move_data_to_device(self._labelled, pl_module.device)
            seen = _diagnostic_scores(
                "student", _predict(pl_module.net, labelled["image"]), labelled, pl_module
            )
            row.update({f"labelled_{k}": v for k, v in seen.items() if k.endswith(("miou", "delta1"))})
        finally:
            pl_module.net.train(was_training)
        return row

    def _record(self, trainer: Any, pl_module: Any, row: dict[str, float]) -> None:
        self.history.append(row)
        metrics = {f"semi/{key}": value for key, value in row.items() if key not in ("step", "final")}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(row["step"]))
        path = Path(self.path) if self.path else Path(trainer.default_root_dir) / "semi_diagnostics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.history, indent=1) + "\n")

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = pl_module.global_step
        if step % self.every_n_steps == 0 and (not self.history or self.history[-1]["step"] != step):
            self._record(trainer, pl_module, self.measure(pl_module))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        row = self.measure(pl_module)
        if "semseg" in pl_module.tasks and isinstance(pl_module, SemiSupervisedModule) and self._batch:
            image = self._batch["image"].to(pl_module.device)
            recomputed = _with_recomputed_bn(pl_module.teacher, image)
            scores = _diagnostic_scores("teacher", _predict(recomputed, image), self._batch, pl_module)
            row["teacher_miou_bn_recomputed"] = scores["teacher_miou"]
        row["final"] = 1.0
        self.history = [r for r in self.history if r["step"] != row["step"]]
        self._record(trainer, pl_module, row)


@torch.no_grad()
def _predict(net: nn.Module, image: torch.Tensor, chunk: int = 16) -> dict[str, torch.Tensor]:
    parts = [net(image[i : i + chunk]) for i in range(0, image.shape[0], chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _diagnostic_scores(
    name: str, pred: Mapping[str, torch.Tensor], batch: Mapping[str, Any], module: DenseMTLModule
) -> dict[str, float]:
    from densemtl.metrics.depth import DepthMetrics
    from densemtl.metrics.seg import SegmentationMetrics

    out: dict[str, float] = {}
    if "semseg" in pred and "semseg" in batch:
        logits, target = pred["semseg"].float().cpu(), batch["semseg"].cpu()
        seg = SegmentationMetrics(logits.shape[1])
        seg.update(logits, target)
        out[f"{name}_miou"] = float(seg.compute()["miou"])
        confidence, labels = torch.softmax(logits, 1).max(1)
        valid = target != IGNORE_INDEX
        kept = (confidence >= module.hparams.get("confidence", 0.9)) & valid
        out[f"{name}_confident_share"] = float(kept.sum() / valid.sum().clamp_min(1))
        # the same share per true class, averaged over the classes present: far below the pixel
        # share when rare classes are never confident (their pseudo-labels are missing)
        classes = target[valid].unique()
        per_class = [float(kept[target == c].float().mean()) for c in classes.tolist()]
        out[f"{name}_confident_share_class_mean"] = sum(per_class) / max(1, len(per_class))
        out[f"{name}_confident_accuracy"] = (
            float((labels == target)[kept].float().mean()) if kept.any() else float("nan")
        )
        out[f"{name}_accuracy"] = float((labels == target)[valid].float().mean())
    if "depth" in pred and "depth" in batch:
        depth = DepthMetrics()
        depth.update(pred["depth"].float().cpu(), batch["depth"].cpu())
        out[f"{name}_delta1"] = float(depth.compute()["delta1"])
    return out


@torch.no_grad()
def _with_recomputed_bn(net: nn.Module, image: torch.Tensor, chunk: int = 16) -> nn.Module:
    """A copy of ``net`` whose BatchNorm statistics are the plain average over ``image`` (train-mode
    forward passes with cumulative averaging) instead of the EMA's."""
    copy_ = copy.deepcopy(net)
    for module in copy_.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    copy_.train()
    for i in range(0, image.shape[0], chunk):
        copy_(image[i : i + chunk])
    return copy_.eval()


class _Unlabelled(Dataset):
    """A view of a dataset that drops every label (``image`` and ``meta`` only), unless
    ``keep_labels`` (the oracle of the diagnosis)."""

    def __init__(self, base: Dataset, keep_labels: bool = False) -> None:
        self.base, self.keep_labels = base, keep_labels

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[index]
        return sample if self.keep_labels else {k: v for k, v in sample.items() if k not in TASKS}


def split_labelled(n: int, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n)`` into ``round(fraction * n)`` (>= 1) labelled and the rest."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, round(fraction * n))
    return sorted(order[:k]), sorted(order[k:])


class SemiDataModule(DenseDataModule):
    """:class:`DenseDataModule` whose training set is split into labelled and unlabelled images.

    Args (beyond the parent's):
        labelled_fraction: share of training images that keep their labels.
        split_seed: seed of the split.
        semi: return ``{"labelled", "unlabelled"}`` training loaders (False: labelled only, the
            supervised-only baseline on the same labelled images).
        unlabelled_batch_size: default ``batch_size``.
        keep_unlabelled_labels: the unlabelled images keep their labels (only the
            ``pseudo_labels: ground_truth`` oracle reads them; for diagnosis).
    """

    def __init__(
        self,
        *args: Any,
        labelled_fraction: float = 0.1,
        split_seed: int = 0,
        semi: bool = True,
        unlabelled_batch_size: int | None = None,
        keep_unlabelled_labels: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.keep_unlabelled_labels = keep_unlabelled_labels
        self.labelled_fraction, self.split_seed, self.semi = labelled_fraction, split_seed, semi
        self.unlabelled_batch_size = unlabelled_batch_size

    def _parts(self) -> tuple[Dataset, Dataset]:
        full = self.split_dataset("train")
        labelled, unlabelled = split_labelled(len(full), self.labelled_fraction, self.split_seed)  # type: ignore[arg-type]
        return Subset(full, labelled), _Unlabelled(Subset(full, unlabelled), self.keep_unlabelled_labels)

    def labelled_train_dataset(self) -> Dataset:
        """Only the labelled part: the other images' labels are not supposed to be known (class
        weights are fitted on it)."""
        labelled, _ = self._parts()
        return labelled

    def _make(self, dataset: Dataset, batch_size: int) -> DataLoader:
        import functools

        n = len(dataset)  # type: ignore[arg-type]
        return DataLoader(
            dataset,
            batch_size=min(batch_size, n),
            shuffle=True,
            num_workers=self.hparams.num_workers,
            collate_fn=functools.partial(collate, tasks=self.tasks),
            drop_last=n > batch_size,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> Any:
        labelled, unlabelled = self._parts()
        loader = self._make(labelled, self.hparams.batch_size)
        if not self.semi or len(unlabelled) == 0:  # type: ignore[arg-type]
            return loader
        return {
            "labelled": loader,
            "unlabelled": self._make(unlabelled, self.unlabelled_batch_size or self.hparams.batch_size),
        }
