"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, Eq. 7/8).

``L = sum_t (c * exp(-s_t) * L_t + b * s_t)`` with learnable ``s_t = log sigma_t^2`` (init 0):

- ``form="kendall"``: c = 1/2, b = 1/2 (Eq. 7 for every task; LibMTL's UW).
- ``form="xtasc"``: c = 1/2, b = 1 (XTasC-Net's ``½e^{-s}L + s``, methods.md §3.2).
- ``form="simple"``: c = 1, b = 1 (the common ``e^{-s}L + s``).

Terms that are not tasks (an architecture's extra losses) are added unweighted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting.base import Weighting

_FORMS = {"kendall": (0.5, 0.5), "xtasc": (0.5, 1.0), "simple": (1.0, 1.0)}


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(Weighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, Eq. 7)."""

    def __init__(self, tasks: Sequence[str], form: str = "kendall", init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        if form not in _FORMS:
            raise ConfigError(f"uncertainty weighting form must be one of {sorted(_FORMS)}, got {form!r}")
        self.loss_factor, self.reg_factor = _FORMS[form]
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        total = self.log_vars.sum() * 0.0
        for task, loss in terms.items():
            if not terms.is_task_term(task):
                total = total + loss
                continue
            s = self.log_vars[self.tasks.index(task)]
            total = total + self.loss_factor * torch.exp(-s) * loss + self.reg_factor * s
        return total

    def weights(self) -> dict[str, float]:
        return {
            t: self.loss_factor * float(torch.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach())
        }
