"""Random Loss Weighting (Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR 2022, Eq. 3).

Each step draws ``z ~ p(z)`` and weighs the task losses by ``lambda = softmax(z)``:
``L = sum_k lambda_k L_k``. ``distribution="normal"`` (``z ~ N(0, I)``, the paper's default and
LibMTL's ``RLW``), ``"uniform"`` (``z ~ U(0, 1)``) or ``"dirichlet"`` (``lambda ~ Dir(1)`` drawn
directly). An extra term (deep supervision, semi-supervised) is scaled by its task's weight, so
that a task's terms move together; extras of untrained tasks are added unweighted.

The draw of step ``t`` comes from a generator seeded with ``(seed, t)``: the same on every DDP
process and after a resume, with no state to checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS
from densemtl.weighting.base import Weighting

DISTRIBUTIONS = ("normal", "uniform", "dirichlet")


@WEIGHTINGS.register("rlw")
class RandomLossWeighting(Weighting):
    """Random Loss Weighting (Lin et al., TMLR 2022, Eq. 3): ``softmax(z)``, ``z ~ N(0, I)`` each step."""

    def __init__(self, tasks: Sequence[str], distribution: str = "normal", seed: int = 0) -> None:
        super().__init__(tasks)
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"rlw distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
        self.distribution = distribution
        self.seed = int(seed)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("current", torch.full((len(self.tasks),), 1.0 / len(self.tasks)))

    def draw(self, step: int) -> torch.Tensor:
        """The task weights of training step ``step`` (they sum to 1)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        k = len(self.tasks)
        if self.distribution == "normal":
            return torch.softmax(torch.randn(k, generator=generator), dim=0)
        if self.distribution == "uniform":
            return torch.softmax(torch.rand(k, generator=generator), dim=0)
        gamma = -torch.log(torch.rand(k, generator=generator))  # Gamma(1) = Exp(1) -> Dir(1)
        return gamma / gamma.sum()

    def forward(self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter] = ()) -> torch.Tensor:
        if self.active(terms[self.tasks[0]]):
            self.current.copy_(self.draw(int(self.step)))
            self.step += 1
        weight = dict(zip(self.tasks, self.current.tolist()))
        return sum(weight.get(terms.owner(name), 1.0) * value for name, value in terms.items())

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.current.tolist()))
