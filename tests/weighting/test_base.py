"""The Weighting contract: explicit terms and shared parameters, RLW, and one-line refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.losses.compose import LossTerms
from densemtl.weighting import WEIGHTINGS, Weighting, build_weighting, select_shared_parameters

TASKS = ["semseg", "depth"]


def test_every_registered_strategy_is_a_weighting() -> None:
    for name in WEIGHTINGS.names():
        options = {}
        assert issubclass(WEIGHTINGS.get(name), Weighting), name
        weighting = build_weighting(name, TASKS, **options)
        assert set(weighting.weights()) >= set(TASKS) or name == "xtasc_groups"


def test_plain_dicts_are_owned_by_their_name_prefix() -> None:
    terms = LossTerms.from_names({"depth": torch.tensor(1.0), "depth:aux": torch.tensor(2.0)})
    assert terms.owner("depth:aux") == "depth"


def test_rlw_draws_softmax_of_a_normal_each_step_and_is_reproducible() -> None:
    rlw = build_weighting("rlw", TASKS, seed=3).train()
    losses = {"semseg": torch.tensor(2.0, requires_grad=True), "depth": torch.tensor(5.0, requires_grad=True)}
    totals, draws = [], []
    for step in range(3):
        totals.append(float(rlw(losses)))
        draws.append(torch.tensor(list(rlw.weights().values())))
        # independently: lambda = softmax(z), z ~ N(0, I) from the step's generator
        z = torch.randn(2, generator=torch.Generator().manual_seed(3 * 1_000_003 + step))
        expected = torch.softmax(z, 0)
        assert torch.allclose(draws[-1], expected)
        assert totals[-1] == pytest.approx(float(expected[0]) * 2.0 + float(expected[1]) * 5.0)
    assert not torch.allclose(draws[0], draws[1])
    assert all(float(d.sum()) == pytest.approx(1.0) for d in draws)
    # a resumed run (same step counter) draws the same weights: no hidden generator state
    resumed = build_weighting("rlw", TASKS, seed=3).train()
    resumed.load_state_dict(rlw.state_dict())
    resumed(losses)
    again = build_weighting("rlw", TASKS, seed=3).train()
    for _ in range(4):
        again(losses)
    assert torch.allclose(
        torch.tensor(list(resumed.weights().values())), torch.tensor(list(again.weights().values()))
    )


def test_rlw_scales_a_tasks_extra_terms_with_its_weight() -> None:
    rlw = build_weighting("rlw", TASKS, distribution="dirichlet").train()
    losses = {
        "semseg": torch.tensor(1.0, requires_grad=True),
        "depth": torch.tensor(1.0, requires_grad=True),
        "depth:initial": torch.tensor(1.0, requires_grad=True),
    }
    total = float(rlw(losses))
    w = rlw.weights()
    assert total == pytest.approx(w["semseg"] + 2 * w["depth"])
    with pytest.raises(ConfigError, match="distribution"):
        build_weighting("rlw", TASKS, distribution="cauchy")


class _NothingShared(nn.Module):
    def shared_parameters(self) -> list[nn.Parameter]:
        return []


def test_gradient_methods_refuse_a_model_that_shares_nothing() -> None:
    for name in ("pcgrad", "gradnorm"):
        weighting = build_weighting(name, TASKS)
        if name == "gradnorm":
            model = _NothingShared()
            model.last_shared_parameters = lambda: []  # type: ignore[attr-defined]
        else:
            model = _NothingShared()
        with pytest.raises(ConfigError, match="shares none"):
            select_shared_parameters(weighting, model)
    assert select_shared_parameters(build_weighting("fixed", TASKS), _NothingShared()) == []
