"""The common machinery of the gradient-based weightings (MGDA, IMTL, CAGrad, Nash-MTL, ...).

Every method here combines the per-task gradients ``g_i`` on the shared tensors (the shared
parameters, or the shared representation ``Z`` for the "UB" variants) into one update ``d``.
:class:`GradientWeighting` computes them with ``torch.autograd.grad`` and returns

    ``sum_i L_i + sum_s <sg(d - sum_i g_i)_s, s>``  (minus the detached value of the second sum)

over the shared tensors ``s``: its value is the plain sum of the losses, its gradient is ``d`` on
the shared part and the plain task gradients on the task-specific parameters (Sener & Koltun 2018, Alg. 2; the PCGrad convention of
:mod:`densemtl.weighting.pcgrad`), so Lightning's automatic optimisation applies it unchanged. On the
representation, ``d`` flows back through the encoder: ``J_Z^T d`` is the parameter update.

Two kinds of method:

* :class:`GramWeighting`: ``d = sum_i w_i g_i`` with weights solved from the Gram matrix
  ``M_ij = g_i . g_j`` (MGDA, IMTL-G, CAGrad, Nash-MTL, Aligned-MTL, UPGrad);
* :class:`DirectionWeighting`: any map ``[K, P] -> [P]`` of the flat gradients (GradVac, GradDrop).

DDP (``sync=True``): on parameters the per-task gradients are averaged over the processes before
the solve (as PCGrad), so every process adds the same correction; on the representation each
process holds the gradients of its own samples, and the global Gram matrix is
``(1 / n^2) sum_p M_p`` (the global loss is the mean of the per-process ones), one all-reduce of
``K^2`` floats; the weights then agree and DDP's average of ``J_p^T d_p`` is the global update.
Mixed precision: gradients are cast to float32, the Gram matrix and the solve run in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting._shared import average_over_processes_, world_size
from densemtl.weighting.base import Weighting

LEVELS = {"parameters": "all", "representation": "representation"}


def flat_gradients(losses: Sequence[torch.Tensor], shared: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[K, P]`` float32: the gradient of each loss w.r.t. the concatenated ``shared`` tensors."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(s)).float().flatten()
                    for g, s in zip(grads, shared)
                ]
            )
        )
    return torch.stack(rows)


def surrogate(correction: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
    """A zero-valued scalar whose gradient on ``shared`` is ``correction`` (``<correction, s>`` minus
    its detached value, so that the logged training loss stays the methods' loss)."""
    total, offset = correction.new_zeros(()), 0
    for s in shared:
        n = s.numel()
        total = total + (correction[offset : offset + n].view_as(s).to(s.dtype) * s).sum().float()
        offset += n
    return total - total.detach()


def linearised(value: torch.Tensor, weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """A scalar equal to ``value`` whose gradient is ``sum_i weights_i grad L_i`` (weights detached).

    For objectives of the global-batch losses (GLS, FAMO, DB-MTL): their gradient is linear in
    the per-process loss gradients once the weights are computed from the averaged losses.
    """
    weights = weights.detach().to(losses.dtype)
    return value.detach() + (weights * (losses - losses.detach())).sum()


def minimize_on_simplex(
    fun: Callable[[np.ndarray], float], k: int, start: np.ndarray | None = None
) -> np.ndarray:
    """``argmin fun(w)`` over the probability simplex, with ``scipy.optimize.minimize`` (SLSQP)."""
    x0 = np.full(k, 1.0 / k) if start is None else start
    result = minimize(
        fun,
        x0,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
        options={"ftol": 1e-12, "maxiter": 200},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum()


class GradientWeighting(Weighting):
    """Base of the gradient-based methods: per-task gradients, DDP averaging, the surrogate loss.

    Args:
        tasks: the trained tasks.
        sync: average the gradient statistics over DDP processes (the global-batch method).
        level: ``"parameters"`` (the shared parameters) or ``"representation"`` (the encoder's
            output); ``None`` keeps the class default.
    """

    shared_parameters = "all"
    #: the levels the method is defined on
    levels: tuple[str, ...] = ("parameters",)

    def __init__(self, tasks: Sequence[str], sync: bool = True, level: str | None = None) -> None:
        super().__init__(tasks)
        self.sync = bool(sync)
        if level is not None:
            if level not in self.levels:
                raise ConfigError(f"weighting level must be one of {list(self.levels)}, got {level!r}")
            self.shared_parameters = LEVELS[level]
        self.register_buffer("current", torch.ones(len(self.tasks)))

    @property
    def on_representation(self) -> bool:
        return self.shared_parameters == "representation"

    def task_losses(self, terms: LossTerms) -> dict[str, torch.Tensor]:
        """The per-task objectives whose gradients are combined (a task's extra terms included)."""
        return terms.per_task(self.tasks)

    def update(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``[K, P]`` gradients (synced on parameters) and detached ``[K]`` losses -> ``[P]`` update."""
        raise NotImplementedError

    def forward(self, terms: LossTerms, shared_parameters: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        losses = self.task_losses(terms)
        total = sum(losses.values())
        if not self.active(total):
            return total
        if not shared_parameters:
            raise ValueError(f"{type(self).__name__} needs the shared tensors: pass shared_parameters")
        shared = list(shared_parameters)
        grads = flat_gradients(list(losses.values()), shared)
        values = torch.stack([v.detach().float() for v in losses.values()])
        if self.sync and not self.on_representation:
            average_over_processes_(grads)
        if self.sync:
            average_over_processes_(values)
        correction = self.update(grads, values) - grads.sum(0)
        return total + surrogate(correction, shared)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.current.tolist()))


class GramWeighting(GradientWeighting):
    """``d = sum_i w_i g_i``, the weights solved from the Gram matrix (float64 numpy)."""

    levels = ("parameters", "representation")

    def solve(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """``[K, K]`` Gram matrix of the global batch, ``[K]`` losses -> ``[K]`` weights."""
        raise NotImplementedError

    def gram(self, grads: torch.Tensor) -> torch.Tensor:
        gram = grads @ grads.T
        if self.on_representation and self.sync and world_size() > 1:
            average_over_processes_(gram)
            gram = gram / world_size()  # (1/n^2) sum_p M_p: the global loss is the mean over processes
        return gram

    def update(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        gram = self.gram(grads).double().cpu().numpy()
        w = torch.as_tensor(self.solve(gram, losses.double().cpu().numpy()), dtype=torch.float32)
        self.current.copy_(w)
        return w.to(grads.device) @ grads


class DirectionWeighting(GradientWeighting):
    """Any map of the (synced) flat per-task gradients to an update, on the shared parameters."""

    def direction(self, grads: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        return self.direction(grads)
