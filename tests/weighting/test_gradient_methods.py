"""Gradient-based weightings (MGDA, IMTL-G, CAGrad, Nash-MTL, Aligned-MTL, UPGrad, GradVac, GradDrop,
DB-MTL) against closed forms and defining properties derived here, and the surrogate loss giving
their update on the shared parameters and plain task gradients elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from densemtl.weighting import build_weighting
from densemtl.weighting.aligned_mtl import aligned_weights
from densemtl.weighting.cagrad import cagrad_weights
from densemtl.weighting.imtl import imtl_g_weights
from densemtl.weighting.mgda import min_norm_weights
from densemtl.weighting.nash_mtl import nash_weights
from densemtl.weighting.upgrad import upgrad_weights

torch.set_num_threads(1)
TASKS = ["semseg", "depth"]


def _gram(*rows: list[float]) -> tuple[np.ndarray, np.ndarray]:
    g = np.array(rows, dtype=np.float64)
    return g, g @ g.T


def test_mgda_two_tasks_is_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        g1, g2 = rng.normal(size=6), rng.normal(size=6)
        alpha = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
        w = min_norm_weights(np.array([[g1 @ g1, g1 @ g2], [g1 @ g2, g2 @ g2]]))
        assert w == pytest.approx([alpha, 1 - alpha], abs=1e-9)
    # g1 inside the half-space of g2 (aligned, longer): the min-norm point is g2 itself
    assert min_norm_weights(_gram([3.0, 0.0], [1.0, 0.0])[1]) == pytest.approx([0.0, 1.0])


def test_mgda_three_orthogonal_gradients() -> None:
    # min ||sum a_i g_i||^2 = sum a_i^2 n_i^2 on the simplex: a_i proportional to 1 / n_i^2
    norms = np.array([1.0, 2.0, 4.0])
    w = min_norm_weights(np.diag(norms**2))
    expected = norms**-2 / np.sum(norms**-2)
    assert w == pytest.approx(expected, abs=1e-5)


def test_mgda_l2_normalisation_gives_equal_weights_to_orthogonal_unit_directions() -> None:
    mgda = build_weighting("mgda", TASKS, normalize="l2")
    w = mgda.solve(np.diag([1.0, 100.0]), np.ones(2))
    # normalised: both unit vectors, alpha = 1/2 each, then divided by the norms 1 and 10
    assert w == pytest.approx([0.5, 0.05])


def test_imtl_g_equal_projections() -> None:
    a, b = 2.0, 5.0
    assert imtl_g_weights(np.diag([a * a, b * b])) == pytest.approx([b / (a + b), a / (a + b)])
    g = np.random.default_rng(1).normal(size=(3, 8))
    alpha = imtl_g_weights(g @ g.T)
    d = alpha @ g
    projections = [d @ gi / np.linalg.norm(gi) for gi in g]
    assert alpha.sum() == pytest.approx(1.0)
    assert projections == pytest.approx([projections[0]] * 3, rel=1e-8)


def _cagrad_brute_force(g: np.ndarray, c: float) -> np.ndarray:
    g0 = g.mean(0)
    phi = c**2 * g0 @ g0
    ws = np.linspace(0, 1, 200_001)
    gw = ws[:, None] * g[0] + (1 - ws[:, None]) * g[1]
    objective = gw @ g0 + np.sqrt(phi) * np.linalg.norm(gw, axis=1)
    best = gw[np.argmin(objective)]
    return (g0 + np.sqrt(phi) / np.linalg.norm(best) * best) / (1 + c**2)


def test_cagrad_matches_a_grid_search_of_its_dual() -> None:
    g, gram = _gram([1.0, 0.2], [-0.6, 1.0])
    for c in (0.2, 0.5, 0.9):
        d = cagrad_weights(gram, c) @ g / 2  # the module scales by K = 2 (sum of losses)
        assert d == pytest.approx(_cagrad_brute_force(g, c), abs=1e-4)
    assert cagrad_weights(gram, 0.0) == pytest.approx([1.0, 1.0])


def test_nash_mtl_solves_the_bargaining_condition() -> None:
    a, b = 1.0, 3.0
    gram = np.diag([a * a, b * b])
    scale = np.sqrt(np.linalg.norm(gram))
    assert nash_weights(gram) == pytest.approx([scale / a, scale / b], rel=1e-5)
    g = np.random.default_rng(2).normal(size=(3, 6))
    gram = g @ g.T
    alpha = nash_weights(gram)
    m = gram / np.linalg.norm(gram)
    assert np.all(alpha > 0)
    assert m @ alpha == pytest.approx(1 / alpha, rel=1e-5)  # Eq. 6: G^T G alpha = 1 / alpha


def test_nash_mtl_clips_the_update_norm() -> None:
    nash = build_weighting("nash_mtl", TASKS, max_norm=0.5)
    gram = np.diag([4.0, 9.0])
    alpha = nash.solve(gram, np.ones(2))
    assert np.sqrt(alpha @ gram @ alpha) == pytest.approx(0.5)


def test_aligned_mtl_orthogonal_equal_and_general() -> None:
    a, b = 2.0, 0.5
    assert aligned_weights(np.diag([a * a, b * b])) == pytest.approx([b / a, 1.0])
    assert aligned_weights(np.ones((2, 2))) == pytest.approx([1.0, 1.0])  # equal: equal weighting
    g = np.random.default_rng(3).normal(size=(3, 7))
    lam, v = np.linalg.eigh(g @ g.T)
    b_matrix = np.sqrt(lam.min()) * v @ np.diag(lam**-0.5) @ v.T
    aligned = b_matrix @ g  # aligned gradients: orthogonal, equal norms sqrt(lambda_min)
    assert aligned @ aligned.T == pytest.approx(lam.min() * np.eye(3), abs=1e-9)
    assert aligned_weights(g @ g.T) @ g == pytest.approx(aligned.sum(0))


def test_upgrad_worked_example() -> None:
    # g1 = (1, 0), g2 = (-1, 1): pi(g1) = g1 + 1/2 g2, pi(g2) = g1 + g2 (projections on the dual cone)
    g, gram = _gram([1.0, 0.0], [-1.0, 1.0])
    w = upgrad_weights(gram)
    assert w == pytest.approx([2.0, 1.5], abs=1e-6)
    d = w @ g
    assert np.all(g @ d >= -1e-9)
    assert upgrad_weights(np.diag([1.0, 4.0])) == pytest.approx([1.0, 1.0], abs=1e-6)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
        self.heads = nn.ModuleDict({t: nn.Linear(3, 1) for t in TASKS})

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {
            "semseg": (self.heads["semseg"](z) - 1).square().mean(),
            "depth": (self.heads["depth"](z) + 2).abs().mean(),
        }


def _task_grads(toy: _Toy, x: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    losses = toy.losses(x)
    return torch.stack(
        [
            torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], params, retain_graph=True)])
            for t in TASKS
        ]
    )


@pytest.mark.parametrize("name", ["mgda", "imtl_g", "cagrad", "nash_mtl", "aligned_mtl", "upgrad"])
def test_surrogate_applies_the_weights_to_the_shared_parameters_only(name: str) -> None:
    toy = _Toy()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    shared = list(toy.encoder.parameters())
    grads = _task_grads(toy, x, shared)
    weighting = build_weighting(name, TASKS, level="parameters").train()
    losses = toy.losses(x)
    total = weighting(losses, shared)
    assert float(total.detach()) == pytest.approx(
        float(sum(losses.values()).detach())
    )  # the surrogate adds 0
    total.backward()
    w = torch.tensor(list(weighting.weights().values()))
    expected = w @ grads
    assert torch.allclose(torch.cat([p.grad.flatten() for p in shared]), expected, atol=1e-5)
    head = [toy.heads["depth"].weight]
    (plain,) = torch.autograd.grad(toy.losses(x)["depth"], head)
    assert torch.allclose(toy.heads["depth"].weight.grad, plain, atol=1e-6)


def test_gradvac_first_step_is_pcgrad_then_raises_similarity_to_the_target() -> None:
    gv = build_weighting("gradvac", TASKS, beta=0.5)
    conflicting = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    # targets 0: g1 - (g1.g2 / |g2|^2) g2 = (0.5, 0.5); g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    assert torch.allclose(gv.direction(conflicting), torch.tensor([0.5, 1.5]))
    cos = -1 / 2**0.5
    assert gv.targets[0, 1] == pytest.approx(0.5 * cos) and gv.targets[1, 0] == pytest.approx(0.5 * cos)
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    gv.targets.fill_(0.5)  # now orthogonal gradients (cos 0 < 0.5) are moved to cos = 0.5
    g1 = torch.tensor([1.0, 0.5 / (2.0 * 0.75**0.5) * 2.0])  # g1 + |g1| 0.5 / (|g2| sqrt(0.75)) g2
    g2 = torch.tensor([2.0 * 0.5 / 0.75**0.5, 2.0])
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(g1, orthogonal[1], dim=0)) == pytest.approx(0.5)
    assert float(cos(g2, orthogonal[0], dim=0)) == pytest.approx(0.5)
    assert torch.allclose(gv.direction(orthogonal), g1 + g2)


def test_graddrop_keeps_agreeing_signs_and_draws_a_sign_otherwise() -> None:
    gd = build_weighting("graddrop", TASKS, seed=5)
    agree = torch.tensor([[1.0, -2.0, 0.5], [3.0, -1.0, 0.0]])
    assert torch.allclose(gd.direction(agree), agree.sum(0))
    opposite = torch.tensor([[1.0, -2.0, 3.0, 1.0], [-3.0, 2.0, -1.0, -1.0]])
    gd = build_weighting("graddrop", TASKS, seed=5)
    u = torch.rand(4, generator=torch.Generator().manual_seed(5))
    purity = 0.5 * (1 + opposite.sum(0) / opposite.abs().sum(0))  # (0.25, 0.5, 0.75, 0.5)
    positive = purity > u  # keep the positive parts there, the negative ones elsewhere
    expected = torch.where(positive, opposite.clamp_min(0).sum(0), opposite.clamp_max(0).sum(0))
    assert torch.allclose(gd.direction(opposite), expected)
    leaky = build_weighting("graddrop", TASKS, leak=1.0)
    assert torch.allclose(leaky.direction(opposite), opposite.sum(0))


def test_db_mtl_balances_log_loss_gradients_to_the_largest_norm() -> None:
    toy = _Toy()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    shared = list(toy.encoder.parameters())
    losses = toy.losses(x)
    log_grads = torch.stack(
        [
            torch.cat(
                [g.flatten() for g in torch.autograd.grad(torch.log(losses[t]), shared, retain_graph=True)]
            )
            for t in TASKS
        ]
    )
    norms = log_grads.norm(dim=1)
    expected = (norms.max() / norms) @ log_grads
    db = build_weighting("db_mtl", TASKS).train()
    total = db(losses, shared)
    assert float(total.detach()) == pytest.approx(float(sum(torch.log(v) for v in losses.values())), rel=1e-5)
    total.backward()
    assert torch.allclose(torch.cat([p.grad.flatten() for p in shared]), expected, atol=1e-5)
    head = toy.heads["semseg"].weight
    (plain,) = torch.autograd.grad(torch.log(toy.losses(x)["semseg"]), [head])
    assert torch.allclose(head.grad, plain, atol=1e-6)
    # second step: the moving average beta * previous + (1 - beta) * current
    toy.zero_grad()
    x2 = torch.randn(8, 4, generator=torch.Generator().manual_seed(2))
    losses2 = toy.losses(x2)
    log_grads2 = torch.stack(
        [
            torch.cat(
                [g.flatten() for g in torch.autograd.grad(torch.log(losses2[t]), shared, retain_graph=True)]
            )
            for t in TASKS
        ]
    )
    avg = 0.9 * log_grads + 0.1 * log_grads2
    db(losses2, shared).backward()
    n2 = avg.norm(dim=1)
    assert torch.allclose(torch.cat([p.grad.flatten() for p in shared]), (n2.max() / n2) @ avg, atol=1e-5)


def test_equal_gradients_give_equal_weighting() -> None:
    gram = np.full((2, 2), 4.0)
    assert aligned_weights(gram) == pytest.approx([1.0, 1.0])
    assert upgrad_weights(gram) == pytest.approx([1.0, 1.0], abs=1e-6)
    assert imtl_g_weights(gram).sum() == pytest.approx(1.0)
    w = min_norm_weights(gram)
    assert w.sum() == pytest.approx(1.0)  # any convex combination: the same point g
    equal = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    assert torch.allclose(build_weighting("gradvac", TASKS).direction(equal), equal.sum(0))
    assert torch.allclose(build_weighting("graddrop", TASKS).direction(equal), equal.sum(0))
