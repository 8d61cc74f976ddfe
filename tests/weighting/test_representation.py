"""The representation level (MGDA-UB, Aligned-MTL-UB, IMTL-G): the recorder hooked on the shared
encoder, weights solved from the gradients w.r.t. its output, and refusals for models without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from densemtl.errors import ConfigError
from densemtl.weighting import build_weighting, select_shared_parameters
from densemtl.weighting.base import RepresentationRecorder

torch.set_num_threads(1)
TASKS = ["semseg", "depth"]


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
        self.heads = nn.ModuleDict(
            {t: nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)) for t in TASKS}
        )

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {
            "semseg": (self.heads["semseg"](z) - 1).square().mean(),
            "depth": (self.heads["depth"](z) + 1).abs().mean(),
        }


@pytest.mark.parametrize("name", ["mgda_ub", "aligned_mtl_ub", "imtl_g"])
def test_weights_come_from_the_gradients_wrt_the_representation(name: str) -> None:
    toy = _Toy()
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    # independently: gradients w.r.t. Z, then the closed form of the two-task method
    z = toy.encoder(x)
    heads = {
        "semseg": (toy.heads["semseg"](z) - 1).square().mean(),
        "depth": (toy.heads["depth"](z) + 1).abs().mean(),
    }
    gz = [torch.autograd.grad(heads[t], z, retain_graph=True)[0].flatten().double().numpy() for t in TASKS]
    g1, g2 = gz
    if name == "mgda_ub":
        a = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
        alpha = np.array([a, 1 - a])
    elif name == "aligned_mtl_ub":
        lam, v = np.linalg.eigh(np.stack(gz) @ np.stack(gz).T)
        alpha = (np.sqrt(lam.min()) * v @ np.diag(lam**-0.5) @ v.T).sum(0)
    else:
        u1, u2 = g1 / np.linalg.norm(g1), g2 / np.linalg.norm(g2)
        a2 = g1 @ (u1 - u2) / ((g1 - g2) @ (u1 - u2))
        alpha = np.array([1 - a2, a2])
    weighting = build_weighting(name, TASKS).train()
    recorder = select_shared_parameters(weighting, toy)
    assert isinstance(recorder, RepresentationRecorder)
    total = weighting(toy.losses(x), recorder)
    assert recorder.pop() == []  # consumed by the call
    assert list(weighting.weights().values()) == pytest.approx(list(alpha), rel=1e-4, abs=1e-6)
    total.backward()
    # one representation: J_Z^T sum_i alpha_i dL_i/dZ = sum_i alpha_i dL_i/dtheta exactly
    shared = list(toy.encoder.parameters())
    losses = toy.losses(x)
    per_task = [
        torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], shared, retain_graph=True)])
        for t in TASKS
    ]
    expected = sum(float(a) * g for a, g in zip(alpha, per_task))
    assert torch.allclose(torch.cat([p.grad.flatten() for p in shared]), expected, atol=1e-5)


def test_recorder_ignores_no_grad_passes_and_hooks_the_deepest_stage() -> None:
    from densemtl.models import build_model

    toy = _Toy()
    recorder = RepresentationRecorder(toy)
    with torch.no_grad():
        toy.losses(torch.randn(2, 4))
    assert recorder.pop() == []
    toy.losses(torch.randn(2, 4))
    toy.losses(torch.randn(2, 4))
    assert len(recorder.pop()) == 2  # e.g. labelled + unlabelled passes of one step
    recorder.remove()
    toy.losses(torch.randn(2, 4))
    assert recorder.pop() == []

    model = build_model(
        "hard_sharing",
        tasks={"semseg": 3, "depth": 1},
        backbone={"name": "mobilenet_v2", "width_mult": 0.25},
        decoder_channels=8,
    )
    recorder = RepresentationRecorder(model)
    model(torch.rand(2, 3, 32, 32))
    (z,) = recorder.pop()
    deepest = model.encoder.forward_features(torch.rand(2, 3, 32, 32))[-1]
    assert z.shape == deepest.shape


def test_models_without_a_shared_encoder_are_refused_in_one_line() -> None:
    from densemtl.models import build_model

    model = build_model("cross_stitch", tasks={"semseg": 3, "depth": 1}, backbone="resnet18", stages=[1])
    with pytest.raises(ConfigError, match="CrossStitch") as info:
        select_shared_parameters(build_weighting("mgda_ub", TASKS), model)
    assert "\n" not in str(info.value) and "parameter-level" in str(info.value)
    # the same method on the parameters works there
    assert select_shared_parameters(build_weighting("imtl_g", TASKS, level="parameters"), model)
    with pytest.raises(ConfigError, match="level"):
        build_weighting("mgda", TASKS, level="pixels")
