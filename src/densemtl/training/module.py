"""The LightningModule: loss composition, loss weighting and metric updates; nothing else.

The science lives in plain ``nn.Module``s (models, losses, weightings, metrics); this module wires
them to Lightning so that devices, DDP, precision, accumulation and checkpointing are the
framework's job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossComposer, LossTerms, WeightedLossSum  # noqa: F401  (re-export)
from densemtl.metrics import MultiTaskMetrics
from densemtl.models import build_model
from densemtl.tasks import get_task, task_channels, task_names
from densemtl.weighting import build_weighting, select_shared_parameters

PROGRESS_BAR_METRICS = ("miou", "delta1", "normal_mean")
#: The network parts ``param_groups`` can give their own rate (see :class:`DenseMTLModule`).
PARAM_PARTS = ("encoder", "decoder", "heads")


class DenseMTLModule(L.LightningModule):
    """Joint training of a multi-task dense-prediction model.

    Args:
        model: registered architecture name (``densemtl profile --list`` shows them).
        tasks: tasks to predict, from ``semseg``, ``depth``, ``normals``.
        num_classes: segmentation classes (linked from the data module by the CLI).
        model_options: keyword arguments of the architecture (``backbone``, ``decoder_channels``...).
        losses: per-task loss spec: a name, ``{"name": ..., **options}``, or a list of those with
            ``weight`` keys. Defaults: cross-entropy, L1, cosine.
        weighting: loss-weighting strategy (``fixed``, ``uncertainty``, ...).
        weighting_options: its options, e.g. ``{"weights": {"semseg": 1.0, "depth": 0.5}}``.
        optimizer: ``adamw``, ``adam`` or ``sgd`` (``momentum`` for SGD, ``betas`` for Adam/AdamW).
        param_groups: per-part ``lr`` / ``weight_decay`` (default: ``lr`` / ``weight_decay``), keys
            ``encoder`` (``model.encoder``), ``heads`` (``model.heads``, where the architecture has
            them) and ``decoder`` (every other network parameter; the heads too unless ``heads`` is
            given), e.g. ``{encoder: {lr: 1e-3}, decoder: {lr: 1e-2}}`` (DenseTorch's multi-task
            recipe). Unset: one rate for everything.
        scheduler: ``cosine``, ``poly``, ``step`` or ``none``, with linear warm-up, stepped per iteration.
        warmup_fraction: linear warm-up share of training.
        step_milestones / step_gamma: for ``step``: multiply the rate by ``step_gamma`` at these
            fractions of training.
        metric_options: per-task metric options (see :class:`densemtl.metrics.MultiTaskMetrics`).
        class_names / class_colors: for reports and image logging (linked from the data module).
        log_images: number of validation samples logged as prediction panels each epoch.
        channels_last: use the channels-last memory format (faster convolutions on CPU/GPU).
        test_time_flip: evaluate (validate / test / predict) on the average of the image and its
            mirror image (semseg logits, depth and normals with x negated, re-normalised).
    """

    def __init__(
        self,
        model: str = "hard_sharing",
        tasks: Sequence[str] = ("semseg", "depth"),
        num_classes: int = 8,
        model_options: dict[str, Any] | None = None,
        losses: dict[str, Any] | None = None,
        weighting: str = "fixed",
        weighting_options: dict[str, Any] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        betas: Sequence[float] = (0.9, 0.999),
        scheduler: str = "cosine",
        warmup_fraction: float = 0.05,
        step_milestones: Sequence[float] = (0.6, 0.85),
        step_gamma: float = 0.1,
        metric_options: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        class_colors: Sequence[Sequence[int]] | None = None,
        log_images: int = 4,
        channels_last: bool = False,
        test_time_flip: bool = False,
        param_groups: dict[str, dict[str, float]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tasks = list(tasks)
        self.channels = task_channels(self.tasks, num_classes)
        self.net = build_model(model, tasks=self.channels, **dict(model_options or {}))
        self.losses = LossComposer(self.tasks, losses, self.net.auxiliary_terms(), _default_losses())
        self.weighting = build_weighting(weighting, self.tasks, **dict(weighting_options or {}))
        self.val_metrics = MultiTaskMetrics(self.channels, metric_options)
        self.test_metrics = MultiTaskMetrics(self.channels, metric_options)
        self.class_colors = [list(c) for c in class_colors] if class_colors else None
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # a plain list, not registered: the parameters stay the network's
        self._shared_parameters = select_shared_parameters(self.weighting, self.net)
        self.test_results: dict[str, float] = {}

    def setup(self, stage: str) -> None:
        """Fit data-dependent loss parameters (class-frequency weights) once, before training."""
        parts = [p for p in self.losses.loss_parts() if getattr(p, "needs_class_counts", False)]
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and parts and datamodule is not None:
            counts = datamodule.class_pixel_counts(self.hparams.num_classes)
            for part in parts:
                part.set_class_counts(counts)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Load a mean-teacher checkpoint (``densemtl semi``) into this plain module.

        Its ``teacher.*`` weights replace ``net.*`` when the run evaluated with the teacher
        (``evaluate_teacher``, the default: the validated, "best" model), else they are dropped.
        Lightning calls this before ``load_state_dict``; :func:`densemtl.training.checkpoint.load_module` too.
        """
        state = checkpoint.get("state_dict", {})
        if hasattr(self, "teacher") or not any(k.startswith("teacher.") for k in state):
            return
        use_teacher = checkpoint.get("hyper_parameters", {}).get("evaluate_teacher", True)
        keep = "teacher." if use_teacher else "net."
        checkpoint["state_dict"] = {
            ("net." + k[len(keep) :] if k.startswith(keep) else k): v
            for k, v in state.items()
            if not k.startswith(("net.", "teacher.")) or k.startswith(keep)
        }

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image)

    def predict_tasks(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference outputs, with horizontal-flip averaging when ``test_time_flip`` is set."""
        outputs = self(image)
        if not self.hparams.test_time_flip:
            return outputs
        mirrored = self(image.flip(-1))
        return {task: get_task(task).merge_mirrored(out, mirrored[task]) for task, out in outputs.items()}

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """Every loss term: one per task, then the architecture's auxiliary terms (deep supervision,
        cross-task consistency...). Pixels without a label (missing or ignored) are skipped."""
        return self.losses(outputs, batch)

    def weighted_loss(self, terms: LossTerms) -> torch.Tensor:
        """The training loss: ``terms`` combined by the weighting strategy."""
        return self.weighting(terms, self._shared_parameters)

    def log_training_terms(self, total: torch.Tensor, terms: LossTerms, batch_size: int) -> None:
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"non-finite training loss at step {self.global_step}: "
                + ", ".join(f"{t}={float(v):.4g}" for t, v in terms.items())
            )
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/loss_{t}": v for t, v in terms.detached().items()}, batch_size=batch_size)
        # the task weights this step used: how DWA / GradNorm / uncertainty move them is what a
        # weighting comparison needs to see
        self.log_dict(
            {f"train/weight_{t}": float(w) for t, w in self.weighting.weights().items()},
            batch_size=batch_size,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        terms = self.compute_losses(self(batch["image"]), batch)
        total = self.weighted_loss(terms)
        self.log_training_terms(total, terms, batch["image"].shape[0])
        return total

    def evaluation_terms(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """The terms of an evaluation batch: the task terms on the evaluated outputs (mirror-averaged
        with ``test_time_flip``) and the architecture's training-time auxiliary terms, computed with
        its auxiliary outputs switched on (one extra forward pass, only for architectures that
        declare such terms)."""
        terms = self.losses.task_terms(outputs, batch)
        if not self.losses.auxiliary:
            return terms
        with self.net.auxiliary_outputs():
            auxiliary = self.losses.auxiliary_terms(self(batch["image"]), batch)
        return terms.with_terms(dict(auxiliary), {n: auxiliary.owner(n) for n in auxiliary})

    def _eval_step(
        self, batch: dict[str, Any], metrics: MultiTaskMetrics, stage: str
    ) -> dict[str, torch.Tensor]:
        outputs = self.predict_tasks(batch["image"])
        terms = self.evaluation_terms(outputs, batch)
        batch_size = batch["image"].shape[0]
        # The unweighted sum of every term: checkpoint selection must not depend on the weighting
        # strategy being compared (a learned weighting would otherwise rescale what is monitored).
        self.log(f"{stage}/loss", terms.total().detach(), sync_dist=True, batch_size=batch_size)
        self.log_dict(
            {f"{stage}/loss_{t}": v for t, v in terms.detached().items()},
            sync_dist=True,
            batch_size=batch_size,
        )
        metrics.update(outputs, batch)
        return outputs

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs = self._eval_step(batch, self.val_metrics, "val")
        if batch_idx == 0 and self.hparams.log_images:
            self._log_panels(batch, outputs)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self.predict_tasks(batch["image"])

    def _log_epoch_metrics(self, metrics: MultiTaskMetrics, stage: str) -> dict[str, float]:
        values = {k: v for k, v in metrics.compute().items() if not math.isnan(v)}
        metrics.reset()
        # Already synchronised across processes by torchmetrics: no second reduction.
        for key, value in values.items():
            self.log(f"{stage}/{key}", value, prog_bar=key in PROGRESS_BAR_METRICS, sync_dist=False)
        return values

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_epoch_metrics(self.test_metrics, "test")
        log_dir = self.trainer.log_dir if self.trainer is not None else None
        if log_dir and self.trainer.is_global_zero:
            path = Path(log_dir) / "test_metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.test_results, indent=1, sort_keys=True))

    def _log_panels(self, batch: dict[str, Any], outputs: dict[str, torch.Tensor]) -> None:
        logger = self.logger
        experiment = getattr(logger, "experiment", None) if logger is not None else None
        if experiment is None or not hasattr(experiment, "add_image") or self.trainer.sanity_checking:
            return
        from densemtl.inference.viz import prediction_panel
        from densemtl.tasks.semseg import default_palette

        palette = self.class_colors or default_palette(self.channels.get("semseg", 1))
        ranges = getattr(getattr(self.trainer, "datamodule", None), "panel_ranges", None)
        for i in range(min(self.hparams.log_images, batch["image"].shape[0])):
            pred = {t: get_task(t).to_numpy(out[i]) for t, out in outputs.items()}
            gt = {
                t: get_task(t).label_to_numpy(batch[t][i]) for t in self.tasks if bool(batch["has_gt"][t][i])
            }
            panel = prediction_panel(
                batch["image"][i].float().cpu().numpy(),
                palette,
                pred,
                gt,
                class_names=self.hparams.get("class_names"),
                ranges=ranges,
            )
            experiment.add_image(f"val/panel_{i}", panel, self.global_step, dataformats="HWC")

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: decayed weights, then norms / biases / weighting
        parameters without decay; with ``param_groups``, that pair for each part (encoder,
        decoder, heads) with its own rate, then the weighting parameters at ``lr``."""
        hp = self.hparams
        if not hp.get("param_groups"):
            # No weight decay on norms and biases (standard practice, e.g. timm's param groups).
            decay, no_decay = [], []
            for name, param in self.named_parameters():
                if param.requires_grad:
                    (no_decay if param.ndim <= 1 or name.startswith("weighting.") else decay).append(param)
            return [
                {"params": decay, "weight_decay": hp.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ]
        options = dict(hp.param_groups)
        unknown = set(options) - set(PARAM_PARTS)
        if unknown:
            raise ConfigError(f"model.param_groups: unknown parts {sorted(unknown)}; use {list(PARAM_PARTS)}")
        for part in ("encoder", "heads"):
            if part in options and not isinstance(getattr(self.net, part, None), torch.nn.Module):
                raise ConfigError(f"model.param_groups: {type(self.net).__name__} has no {part} part")
        parts: dict[str, list[tuple[str, torch.nn.Parameter]]] = {part: [] for part in PARAM_PARTS}
        rest = []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            if name.startswith("net.encoder."):
                parts["encoder"].append((name, param))
            elif name.startswith("net.heads.") and "heads" in options:
                parts["heads"].append((name, param))
            elif name.startswith("net."):
                parts["decoder"].append((name, param))
            else:
                rest.append(param)  # loss-weighting (and other non-network) parameters
        groups = []
        for part, named in parts.items():
            spec = dict(options.get(part) or {})
            bad = set(spec) - {"lr", "weight_decay"}
            if bad:
                raise ConfigError(
                    f"model.param_groups.{part}: unknown keys {sorted(bad)}; use lr, weight_decay"
                )
            lr, wd = float(spec.get("lr", hp.lr)), float(spec.get("weight_decay", hp.weight_decay))
            decay = [p for _, p in named if p.ndim > 1]
            no_decay = [p for _, p in named if p.ndim <= 1]
            groups += [
                {"params": decay, "lr": lr, "weight_decay": wd, "name": part},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{part}_no_decay"},
            ]
        groups.append({"params": rest, "lr": float(hp.lr), "weight_decay": 0.0, "name": "weighting"})
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.optimizer_groups()
        if hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        elif hp.optimizer == "adam":
            optimizer = torch.optim.Adam(groups, lr=hp.lr, betas=tuple(hp.betas))
        elif hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        else:
            raise ConfigError(f"unknown optimizer {hp.optimizer!r}; use adamw, adam or sgd")
        if hp.scheduler == "none":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(total * hp.warmup_fraction)
        if hp.scheduler not in ("poly", "cosine", "step"):
            raise ConfigError(f"unknown scheduler {hp.scheduler!r}; use poly, cosine, step or none")
        # A LambdaLR recomputes its factor from the step, so resuming with a longer schedule works.
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_lambda(hp.scheduler, total, warmup, hp.step_milestones, hp.step_gamma)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _lr_lambda(kind: str, total: int, warmup: int, milestones: Sequence[float], gamma: float = 0.1) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if kind == "poly":
            return (1.0 - progress) ** 0.9
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return gamma ** sum(progress >= m for m in milestones)

    return factor


def _default_losses() -> dict[str, Any]:
    """Every registered task's default loss (auxiliary-only tasks of an architecture included)."""
    return {name: get_task(name).default_loss for name in task_names()}
