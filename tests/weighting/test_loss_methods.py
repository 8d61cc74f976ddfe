"""Loss-based weightings (FAMO, GLS, IMTL-L) and IMTL's hybrid against their equations."""

from __future__ import annotations

import pytest
import torch

from densemtl.weighting import build_weighting

torch.set_num_threads(1)
TASKS = ["semseg", "depth"]


def _losses(a: float, b: float) -> dict[str, torch.Tensor]:
    return {"semseg": torch.tensor(a, requires_grad=True), "depth": torch.tensor(b, requires_grad=True)}


def test_gls_is_the_geometric_mean() -> None:
    gls = build_weighting("gls", TASKS).train()
    losses = _losses(4.0, 9.0)
    total = gls(losses)
    assert float(total.detach()) == pytest.approx(6.0)
    total.backward()
    # d/dL1 sqrt(L1 L2) = sqrt(L2 / L1) / 2
    assert float(losses["semseg"].grad) == pytest.approx(0.5 * 3 / 2)
    assert float(losses["depth"].grad) == pytest.approx(0.5 * 2 / 3)
    # a task's extra term is part of its loss
    extra = {**_losses(2.0, 9.0), "semseg:aux": torch.tensor(2.0)}
    assert float(gls(extra).detach()) == pytest.approx(6.0)


def test_imtl_l_scales_and_regularises() -> None:
    imtl = build_weighting("imtl_l", TASKS).train()
    with torch.no_grad():
        imtl.scales.log_scales.copy_(torch.tensor([0.5, -1.0]))
    losses = _losses(2.0, 3.0)
    total = imtl(losses)
    s = torch.tensor([0.5, -1.0])
    assert float(total.detach()) == pytest.approx(float((torch.exp(s) * torch.tensor([2.0, 3.0]) - s).sum()))
    total.backward()
    # d/ds (e^s L - s) = e^s L - 1: at the optimum e^s = 1 / L, the scaled loss is 1
    expected = torch.exp(s) * torch.tensor([2.0, 3.0]) - 1
    assert torch.allclose(imtl.scales.log_scales.grad, expected)


def test_famo_loss_gradient_and_logit_update_match_adam() -> None:
    famo = build_weighting("famo", TASKS, w_lr=0.1, gamma=0.01).train()
    first = _losses(2.0, 4.0)
    total = famo(first)
    total.backward()
    # z = softmax(0) = 1/2; c = sum z / L; grad wrt L_t = z_t / (c L_t)
    c = 0.5 / 2 + 0.5 / 4
    assert float(first["semseg"].grad) == pytest.approx(0.5 / (c * 2))
    assert float(first["depth"].grad) == pytest.approx(0.5 / (c * 4))
    assert float(total.detach()) == pytest.approx(
        (0.5 * torch.log(torch.tensor(2.0)) + 0.5 * torch.log(torch.tensor(4.0))).item() / c
    )
    # next step: semseg improved by a factor 2, depth did not; the logits take an Adam step on
    # J_softmax^T delta, delta = log L(before) - log L(after)
    reference = torch.zeros(2, requires_grad=True)
    adam = torch.optim.Adam([reference], lr=0.1, weight_decay=0.01)
    delta = torch.log(torch.tensor([2.0, 4.0])) - torch.log(torch.tensor([1.0, 4.0]))
    (grad,) = torch.autograd.grad(torch.softmax(reference, 0), reference, grad_outputs=delta)
    reference.grad = grad
    adam.step()
    famo(_losses(1.0, 4.0))
    assert torch.allclose(famo.logits, reference.detach(), atol=1e-6)
    w = famo.weights()
    assert w["depth"] > w["semseg"]  # the task that improved less gets more weight
    for after in ([0.8, 3.0], [0.7, 3.5]):  # more Adam steps stay in step with torch's
        before = famo.previous.clone()
        famo(_losses(*after))
        delta = torch.log(before) - torch.log(torch.tensor(after))
        (grad,) = torch.autograd.grad(torch.softmax(reference, 0), reference, grad_outputs=delta)
        reference.grad = grad
        adam.step()
        assert torch.allclose(famo.logits, reference.detach(), atol=1e-6)


def test_famo_state_survives_a_checkpoint() -> None:
    famo = build_weighting("famo", TASKS).train()
    for a in (2.0, 1.0, 0.5):
        famo(_losses(a, 3.0))
    again = build_weighting("famo", TASKS)
    again.load_state_dict(famo.state_dict())
    assert again.weights() == famo.weights() and bool(again.has_previous)


def test_imtl_hybrid_gives_imtl_g_on_scaled_losses() -> None:
    from torch import nn

    torch.manual_seed(0)
    encoder = nn.Linear(3, 4)
    heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in TASKS})
    x = torch.randn(6, 3)
    imtl = build_weighting("imtl", TASKS, level="parameters").train()
    with torch.no_grad():
        imtl.scales.log_scales.copy_(torch.tensor([0.3, -0.2]))

    def losses() -> dict[str, torch.Tensor]:
        z = encoder(x)
        return {"semseg": heads["semseg"](z).square().mean(), "depth": (heads["depth"](z) - 1).abs().mean()}

    shared = list(encoder.parameters())
    raw = losses()
    s = imtl.scales.log_scales.detach()
    scaled = [torch.exp(s[i]) * raw[t] for i, t in enumerate(TASKS)]
    g = torch.stack(
        [torch.cat([x.flatten() for x in torch.autograd.grad(v, shared, retain_graph=True)]) for v in scaled]
    )
    # IMTL-G for two tasks: alpha_2 = g1.(u1 - u2) / ((g1 - g2).(u1 - u2)), alpha_1 = 1 - alpha_2
    u = g / g.norm(dim=1, keepdim=True)
    a2 = torch.dot(g[0], u[0] - u[1]) / torch.dot(g[0] - g[1], u[0] - u[1])
    expected = (1 - a2) * g[0] + a2 * g[1]
    imtl(losses(), shared).backward()
    assert torch.allclose(torch.cat([p.grad.flatten() for p in shared]), expected, atol=1e-5)
    d = expected
    assert torch.dot(d, u[0]) == pytest.approx(float(torch.dot(d, u[1])), rel=1e-4)
