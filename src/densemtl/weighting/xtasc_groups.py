"""XTasC-Net's grouped loss (methods.md §3.2; the authors' ``XTaskLoss`` + ``--uncertainty_weights``).

The model's terms are grouped by the branch that receives their gradient:

* ``L_label = (1 - lambda1) * L_semseg + lambda1 * L_depth:transfer`` (s2d(seg) trains the seg branch)
* ``L_image = (1 - lambda2) * L_depth + lambda2 * L_semseg:transfer`` (d2s(depth) trains the depth branch)

(``disparity`` and ``disparity:transfer`` instead of ``depth`` and ``depth:transfer`` when the
model's depth-like task is ``disparity``), then ``L = 1/2 e^{-s_l} L_label + s_l + 1/2 e^{-s_i} L_image + s_i`` (``uncertainty=True``, the
authors' best setting; ``s`` init 0) or ``L_label + L_image``. Missing transfer terms (evaluation,
``direct_only``) count as 0; any other term is added unweighted. The two ``s`` live here, so the
model's parameter count excludes them (as the authors' table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting.base import Weighting

_FORMS = {"kendall": (0.5, 0.5), "xtasc": (0.5, 1.0), "simple": (1.0, 1.0)}
DEPTH_TASKS = ("depth", "disparity")


def group_terms(depth_task: str = "depth") -> dict[str, tuple[str, str]]:
    """The (direct, transfer) term of each group, for the depth-like task ``depth_task``."""
    return {"label": ("semseg", f"{depth_task}:transfer"), "image": (depth_task, "semseg:transfer")}


#: Per depth-like task name: the terms of L_label and L_image.
GROUP_TERMS = {task: group_terms(task) for task in DEPTH_TASKS}


@WEIGHTINGS.register("xtasc_groups")
class XTasCGroupWeighting(Weighting):
    """XTasC-Net's grouped uncertainty weighting of L_label and L_image (Nakano et al. 2021)."""

    def __init__(
        self,
        tasks: Sequence[str],
        lambda1: float = 0.01,
        lambda2: float = 0.01,
        uncertainty: bool = True,
        form: str = "xtasc",
        init_log_var: float = 0.0,
    ) -> None:
        super().__init__(tasks)
        depth_task = next((t for t in tasks if t in DEPTH_TASKS), None)
        if depth_task is None or set(tasks) != {"semseg", depth_task}:
            raise ConfigError(
                f"xtasc_groups weighting needs tasks semseg and depth or disparity, got {list(tasks)}"
            )
        self.terms = GROUP_TERMS[depth_task]
        if form not in _FORMS:
            raise ConfigError(f"xtasc_groups form must be one of {sorted(_FORMS)}, got {form!r}")
        self.lambdas = {"label": float(lambda1), "image": float(lambda2)}
        self.uncertainty = uncertainty
        self.loss_factor, self.reg_factor = _FORMS[form]
        # log sigma^2 of (L_label, L_image); a parameter even when unused keeps checkpoints uniform
        self.log_vars = nn.Parameter(torch.full((2,), float(init_log_var)), requires_grad=uncertainty)

    def groups(self, losses: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name, (direct, transfer) in self.terms.items():
            lam = self.lambdas[name]
            value = (1 - lam) * losses[direct]
            if transfer in losses:
                value = value + lam * losses[transfer]
            out[name] = value
        return out

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        groups = self.groups(terms)
        losses = terms
        total = self.log_vars.sum() * 0.0
        for i, name in enumerate(("label", "image")):
            if self.uncertainty:
                s = self.log_vars[i]
                total = total + self.loss_factor * torch.exp(-s) * groups[name] + self.reg_factor * s
            else:
                total = total + groups[name]
        used = {t for pair in self.terms.values() for t in pair}
        for key, value in losses.items():
            if key not in used:
                total = total + value
        return total

    def weights(self) -> dict[str, float]:
        g = {
            n: (self.loss_factor * float(torch.exp(-s)) if self.uncertainty else 1.0)
            for n, s in zip(("label", "image"), self.log_vars.detach())
        }
        return {
            term: g[group] * (self.lambdas[group] if i else 1 - self.lambdas[group])
            for group, pair in self.terms.items()
            for i, term in enumerate(pair)
        }
