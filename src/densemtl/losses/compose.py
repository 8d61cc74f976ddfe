"""Every loss term of a multi-task model, computed in one place.

A model returns one prediction per task and, in training (or when asked, see
:meth:`densemtl.models.base.MultiTaskModel.auxiliary_outputs`), auxiliary outputs that it
declares in :meth:`~densemtl.models.base.MultiTaskModel.auxiliary_terms`: deep supervision
(``"depth:initial"`` of PAD-Net, ``"semseg:scale_1"`` of MTI-Net) or cross-task transfers
(``"depth:transfer"`` of XTasC-Net). :class:`LossComposer` scores all of them and returns
:class:`LossTerms`, named terms that know the task they belong to. The weighting strategy
(:mod:`densemtl.weighting`) combines them into the training loss; :meth:`LossTerms.total` is the
unweighted sum that validation reports (``val/loss``), so that checkpoint selection does not depend
on the weighting being compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from densemtl.data.sample import valid_mask
from densemtl.errors import ConfigError
from densemtl.losses import build_loss

LossSpec = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


@dataclass(frozen=True)
class AuxiliaryTerm:
    """How an architecture's auxiliary output is scored.

    Args:
        task: the task it belongs to: its label is the target, and weightings group it with that
            task (it may be an auxiliary-only task, e.g. PAD-Net's ``normals`` when only semseg and
            depth are trained).
        loss: a loss spec (as for :class:`WeightedLossSum`); ``None`` uses the task's training loss
            (the same module, class weights included), or the task's default loss for a task that
            is not trained.
        target: ``"label"`` (the batch's label of ``task``) or ``"prediction"`` (the model's own
            detached prediction of ``task``: consistency terms such as XTasC-Net's ``xtsc`` mode).
        masked: restrict the term to the pixels where the label of ``task`` is valid.
    """

    task: str
    loss: LossSpec | None = None
    target: str = "label"
    masked: bool = True

    def __post_init__(self) -> None:
        if self.target not in ("label", "prediction"):
            raise ValueError(f"AuxiliaryTerm.target must be 'label' or 'prediction', got {self.target!r}")


class WeightedLossSum(nn.Module):
    """Several losses for one task, ``sum_i w_i L_i`` (e.g. log-L1 + 0.5 SILog for depth)."""

    def __init__(self, spec: LossSpec) -> None:
        super().__init__()
        items = [spec] if isinstance(spec, str | Mapping) else list(spec)
        self.parts = nn.ModuleList()
        self.part_weights: list[float] = []
        for item in items:
            options = {"name": item} if isinstance(item, str) else dict(item)
            weight = float(options.pop("weight", 1.0))
            self.parts.append(build_loss(options.pop("name"), **options))
            self.part_weights.append(weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return sum(w * loss(pred, target, valid) for w, loss in zip(self.part_weights, self.parts))


class LossTerms(Mapping[str, torch.Tensor]):
    """Named loss terms in computation order, each with the task it belongs to.

    The term named like a trained task is that task's loss; every other term (an architecture's
    auxiliary output, a semi-supervised term) is an *extra* term of its :meth:`owner`.
    """

    def __init__(self, values: Mapping[str, torch.Tensor], owners: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._owners = {name: owners[name] for name in self._values}

    @classmethod
    def from_names(cls, values: Mapping[str, torch.Tensor]) -> LossTerms:
        """Terms owned by the task their name starts with (``"depth:aux"`` -> ``depth``), for
        calling a weighting directly on a plain dict of losses."""
        return cls(values, {name: name.partition(":")[0] for name in values})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def owner(self, name: str) -> str:
        """The task a term belongs to (``"depth"`` for ``"depth:initial"``)."""
        return self._owners[name]

    def is_task_term(self, name: str) -> bool:
        return self._owners[name] == name

    def extra(self) -> dict[str, torch.Tensor]:
        """The terms that are not one task's main loss, in order."""
        return {n: v for n, v in self._values.items() if not self.is_task_term(n)}

    def with_terms(self, values: Mapping[str, torch.Tensor], owners: Mapping[str, str]) -> LossTerms:
        """These terms followed by ``values`` (owned by ``owners``)."""
        return LossTerms({**self._values, **values}, {**self._owners, **owners})

    def per_task(self, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each task's loss plus its extra terms; terms of other tasks join the first task."""
        grouped = {t: self._values[t] for t in tasks}
        for name, value in self.extra().items():
            owner = self._owners[name]
            owner = owner if owner in grouped else tasks[0]
            grouped[owner] = grouped[owner] + value
        return grouped

    def total(self) -> torch.Tensor:
        """The unweighted sum of every term: the validation loss."""
        return sum(self._values.values())

    def detached(self) -> dict[str, torch.Tensor]:
        return {n: v.detach() for n, v in self._values.items()}


class LossComposer(nn.ModuleDict):
    """The losses of every task and of every auxiliary output a model declares.

    Indexing by task name gives that task's training loss (``composer["depth"]``), so a checkpoint
    stores them as ``losses.<task>.*``.

    Args:
        tasks: trained tasks, in order.
        specs: task -> loss spec; tasks without one use their default loss.
        auxiliary: output name -> :class:`AuxiliaryTerm`, from the model's ``auxiliary_terms()``.
        default_losses: task -> default loss spec (tasks' defaults, including auxiliary-only tasks).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        specs: Mapping[str, LossSpec] | None,
        auxiliary: Mapping[str, AuxiliaryTerm],
        default_losses: Mapping[str, LossSpec],
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        specs = dict(specs or {})
        unknown = set(specs) - set(self.tasks)
        if unknown:
            raise ConfigError(f"losses given for tasks not trained: {sorted(unknown)}")
        for task in self.tasks:
            self[task] = WeightedLossSum(specs[task] if task in specs else default_losses[task])
        self.auxiliary = dict(auxiliary)
        for name, term in self.auxiliary.items():
            if term.loss is not None:
                self[name] = WeightedLossSum(term.loss)
            elif term.task not in self.tasks and term.task in default_losses:
                self[name] = WeightedLossSum(default_losses[term.task])

    def loss_parts(self) -> list[nn.Module]:
        """Every loss module (for fitting data-dependent parameters such as class weights)."""
        return [part for loss in self.values() for part in loss.parts]

    def _loss_for(self, name: str) -> nn.Module:
        return self[name] if name in self else self[self.auxiliary[name].task]

    def task_terms(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """One term per trained task; pixels without a label are skipped."""
        values = {t: self[t](outputs[t], batch[t], valid_mask(t, batch[t])) for t in self.tasks}
        return LossTerms(values, {t: t for t in self.tasks})

    def auxiliary_terms(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """The terms of the auxiliary outputs present in ``outputs``, in output order.

        An auxiliary-only task without a label in the batch, or without a known loss, is left
        unsupervised.
        """
        values, owners = {}, {}
        for name, out in outputs.items():
            if name in self.tasks:
                continue
            term = self.auxiliary.get(name)
            if term is None:
                raise ValueError(
                    f"the model returned output {name!r} that its auxiliary_terms() does not declare"
                )
            label = batch.get(term.task)
            if name not in self and term.task not in self.tasks:
                continue  # a task without a known loss (e.g. PAD-Net's edges): unsupervised
            if term.target == "label":
                if label is None:
                    continue
                target = label
            else:
                target = outputs[term.task].detach()
            if label is not None:
                valid = valid_mask(term.task, label)
                if not term.masked:
                    valid = torch.ones_like(valid)
            else:
                valid = torch.ones(
                    target.shape[0], *target.shape[-2:], dtype=torch.bool, device=target.device
                )
            values[name] = self._loss_for(name)(out, target, valid)
            owners[name] = term.task
        return LossTerms(values, owners)

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> LossTerms:
        """Every term: the tasks' first, then the auxiliary outputs'."""
        terms = self.task_terms(outputs, batch)
        extra = self.auxiliary_terms(outputs, batch)
        return terms.with_terms(dict(extra), {n: extra.owner(n) for n in extra})
