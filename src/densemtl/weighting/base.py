"""The loss-weighting contract: ``Weighting(tasks)``, then ``weighting(terms, shared) -> total loss``.

A strategy is a plain ``nn.Module`` (learned weights are its parameters, running statistics its
buffers) called with explicit arguments, never configured through attributes set from outside:

* ``terms``: the :class:`~densemtl.losses.compose.LossTerms` of the step, one per task plus the
  architecture's auxiliary terms and semi-supervised terms, each knowing the task it belongs to;
* ``shared_parameters``: the parameters shared between tasks, for gradient-based methods
  (GradNorm, PCGrad, ...). Which ones a strategy needs is its class attribute
  :attr:`Weighting.shared_parameters`: ``None`` (loss-based), ``"all"`` (the model's
  ``shared_parameters()``), ``"last"`` (``last_shared_parameters()``, e.g. GradNorm's ``W``) or
  ``"representation"``: the output of the shared encoder in the current step, recorded by a forward
  hook (:class:`RepresentationRecorder`; MGDA-UB's gradients w.r.t. ``Z``, Sener & Koltun 2018 Sec. 3.3).
  A strategy whose level is a constructor option sets the attribute on the instance.

``forward`` returns a scalar whose gradient is the strategy's update direction; gradient methods
add a surrogate term (see :mod:`densemtl.weighting.pcgrad`) so that Lightning's automatic
optimisation applies them unchanged, under DDP and mixed precision too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms


class Weighting(nn.Module):
    """Base class of the loss-weighting strategies (one file each in :mod:`densemtl.weighting`).

    Args:
        tasks: the trained tasks, in order.
    """

    #: the tensors :meth:`forward` needs: ``None``, ``"all"``, ``"last"`` or ``"representation"``
    shared_parameters: ClassVar[str | None] = None

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def __call__(
        self,
        terms: LossTerms | Mapping[str, torch.Tensor],
        shared_parameters: Sequence[torch.Tensor] | RepresentationRecorder = (),
    ) -> torch.Tensor:
        if not isinstance(terms, LossTerms):
            terms = LossTerms.from_names(terms)
        if isinstance(shared_parameters, RepresentationRecorder):
            shared_parameters = shared_parameters.pop()
        return super().__call__(terms, shared_parameters)

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        """The current weight of each task (logged every step as ``train/weight_<task>``)."""
        return {t: 1.0 for t in self.tasks}

    @staticmethod
    def add_extra_terms(total: torch.Tensor, terms: LossTerms) -> torch.Tensor:
        """``total`` plus every extra (non-task) term, unweighted, in order."""
        for value in terms.extra().values():
            total = total + value
        return total

    def active(self, total: torch.Tensor) -> bool:
        """Whether this call trains (gradient methods do their per-task backward passes then only)."""
        return self.training and torch.is_grad_enabled() and total.requires_grad


def select_shared_parameters(
    weighting: Weighting, model: nn.Module
) -> list[nn.Parameter] | RepresentationRecorder:
    """The parameters ``weighting`` needs from ``model`` (none for loss-based methods), or for
    ``"representation"`` a :class:`RepresentationRecorder` hooked on ``model.encoder`` (pass it as
    ``shared_parameters``: each call uses the representations recorded since the previous one).

    Raises a one-line :class:`ConfigError` when the architecture shares no parameters.
    """
    need = weighting.shared_parameters
    if need is None:
        return []
    if need == "representation":
        return RepresentationRecorder(model, type(weighting).__name__)
    if need not in ("all", "last"):
        raise ValueError(
            f"{type(weighting).__name__}.shared_parameters must be None, 'all', 'last' or 'representation'"
        )
    getter = "shared_parameters" if need == "all" else "last_shared_parameters"
    params = list(getattr(model, getter)()) if hasattr(model, getter) else _encoder_parameters(model, need)
    if not params:
        raise ConfigError(
            f"weighting {type(weighting).__name__} works on the parameters shared between tasks, "
            f"and model {type(model).__name__} shares none: use a loss-based weighting (fixed, uncertainty, dwa, rlw)"
        )
    return params


def _encoder_parameters(model: nn.Module, need: str) -> list[nn.Parameter]:
    """Fallback for models without ``shared_parameters()``: those of ``model.encoder``."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return []
    if need == "all":
        return [p for p in encoder.parameters() if p.requires_grad]
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return [convs[-1].weight] if convs else []


class RepresentationRecorder:
    """Records the shared representation ``Z`` of each training forward pass (MGDA-UB's ``Z``).

    A forward hook on the module producing the encoder's output: for a stage backbone (``feature_info``)
    the last module of its deepest returned level, since architectures call
    ``encoder.forward_features`` (which runs the stages, not ``encoder.__call__``); else ``encoder``
    itself (the last element when it returns a list). With multi-level decoders (FPN skips) ``Z`` is
    the deepest level only: gradients reaching the encoder through the skips are left as they are.
    Only outputs that require grad are kept, so evaluation and no-grad passes (a mean teacher) leave
    nothing behind.

    Raises a one-line :class:`ConfigError` when the model has no shared ``encoder``.
    """

    def __init__(self, model: nn.Module, method: str = "this weighting") -> None:
        encoder = getattr(model, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise ConfigError(
                f"weighting {method} works on the shared encoder's output, and model "
                f"{type(model).__name__} has no shared encoder: use its parameter-level variant"
            )
        info = getattr(encoder, "feature_info", None)
        module = encoder.get_submodule(info.module_name()[-1]) if info is not None else encoder
        self._records: list[torch.Tensor] = []
        self._handle = module.register_forward_hook(self._record)

    def _record(
        self, module: nn.Module, inputs: object, output: torch.Tensor | Sequence[torch.Tensor]
    ) -> None:
        out = output[-1] if isinstance(output, list | tuple) else output
        if torch.is_grad_enabled() and out.requires_grad:
            self._records.append(out)

    def pop(self) -> list[torch.Tensor]:
        """The representations recorded since the last call (one per forward pass)."""
        out, self._records = self._records, []
        return out

    def remove(self) -> None:
        self._handle.remove()
