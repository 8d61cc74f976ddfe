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
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from densemtl.data.datamodule import DenseDataModule
from densemtl.data.sample import IGNORE_INDEX, TASKS, collate, valid_mask
from densemtl.losses.compose import LossTerms
from densemtl.training.augment import AffineMix, ColorAug
from densemtl.training.module import DenseMTLModule

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
        use_affinemix: mix pairs of unlabelled images (else plain pseudo-labelling).
        affinemix: :class:`AffineMix` options (``scale_range``, ``translate``, ``flip``, ``disparity``...).
        use_coloraug / coloraug / coloraug_weight: ColorAug on labelled images (depth vs. ground truth),
            regions from the teacher's semantics; ``coloraug_unlabelled`` also on unlabelled images
            (depth vs. the teacher).
        evaluate_teacher: validate / test / predict with the teacher (usual for mean teachers).
    """

    def __init__(
        self,
        *args: Any,
        ema_decay: float = 0.99,
        confidence: float = 0.9,
        unsup_weight: float = 1.0,
        unsup_depth_weight: float = 0.5,
        rampup_steps: int = 0,
        use_affinemix: bool = True,
        affinemix: dict[str, Any] | None = None,
        use_coloraug: bool = True,
        coloraug: dict[str, Any] | None = None,
        coloraug_weight: float = 0.5,
        coloraug_unlabelled: bool = False,
        evaluate_teacher: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()
        self.teacher = copy.deepcopy(self.net)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.affinemix = AffineMix(**dict(affinemix or {}))
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
            if "semseg" in self.tasks:
                sample["semseg"], _ = pseudo_labels(pred["semseg"], hp.confidence)
            if "depth" in self.tasks:
                sample["depth"] = pred["depth"].clamp_min(0)
                order = sample["depth"]
            if hp.use_affinemix and order is not None and image.shape[0] > 1:
                target = {k: v.roll(1, dims=0) for k, v in sample.items()}
                sample, _ = self.affinemix(
                    sample, target, source_order=order, target_order=order.roll(1, dims=0)
                )
            out = super().forward(sample["image"])
            for task in ("semseg", "depth"):
                if task in sample:
                    weight = 1.0 if task == "semseg" else hp.unsup_depth_weight
                    loss = self.losses[task](out[task], sample[task], valid_mask(task, sample[task]))
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


class _Unlabelled(Dataset):
    """A view of a dataset that drops every label (``image`` and ``meta`` only)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[index]
        return {k: v for k, v in sample.items() if k not in TASKS}


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
    """

    def __init__(
        self,
        *args: Any,
        labelled_fraction: float = 0.1,
        split_seed: int = 0,
        semi: bool = True,
        unlabelled_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.labelled_fraction, self.split_seed, self.semi = labelled_fraction, split_seed, semi
        self.unlabelled_batch_size = unlabelled_batch_size

    def _parts(self) -> tuple[Dataset, Dataset]:
        full = self.split_dataset("train")
        labelled, unlabelled = split_labelled(len(full), self.labelled_fraction, self.split_seed)  # type: ignore[arg-type]
        return Subset(full, labelled), _Unlabelled(Subset(full, unlabelled))

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
