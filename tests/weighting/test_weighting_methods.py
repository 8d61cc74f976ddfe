"""Equal/fixed, uncertainty, DWA, GradNorm and PCGrad weightings: maths and use with a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import quiet_trainer
from densemtl.weighting import WEIGHTINGS, build_weighting
from densemtl.weighting.pcgrad import PCGrad

torch.set_num_threads(1)
TASKS = ["semseg", "depth"]


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
        self.heads = nn.ModuleDict({t: nn.Linear(3, 1) for t in TASKS})

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {
            "semseg": self.heads["semseg"](z).square().mean(),
            "depth": (self.heads["depth"](z) - 3).abs().mean(),
        }


def test_registry_has_all_methods() -> None:
    assert {"fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "xtasc_groups"} <= set(WEIGHTINGS.names())


def test_dwa_weights_follow_loss_ratios() -> None:
    dwa = build_weighting("dwa", TASKS, temperature=2.0, period=1)
    seq = [(1.0, 1.0), (0.5, 1.0), (0.25, 1.0)]
    for s, d in seq:
        total = dwa({"semseg": torch.tensor(s), "depth": torch.tensor(d), "depth:aux": torch.tensor(1.0)})
    # after periods (1,1) and (0.5,1): r = (0.5, 1), w = 2 softmax(r / 2)
    r = torch.tensor([0.25 / 0.5, 1.0])
    expected = 2 * torch.softmax(r / 2, 0)
    assert torch.allclose(torch.tensor(list(dwa.weights().values())), expected)
    # the third call used the weights set after period 2: r = (0.5 / 1, 1 / 1), the same ratios
    assert float(total) == pytest.approx(float(expected[0]) * 0.25 + float(expected[1]) * 1.0 + 1.0)
    assert sum(dwa.weights().values()) == pytest.approx(2.0)


def test_gradnorm_updates_weights_and_renormalises() -> None:
    toy = _Toy()
    gn = build_weighting("gradnorm", TASKS, alpha=1.5)
    layer = [toy.encoder[2].weight]  # the last layer of the shared part: GradNorm's W
    opt = torch.optim.SGD(list(toy.parameters()) + list(gn.parameters()), lr=0.05)
    x = torch.randn(16, 4)
    for _ in range(5):
        opt.zero_grad()
        total = gn(toy.losses(x), layer)
        total.backward()
        assert gn.task_weights.grad is not None and gn.task_weights.grad.abs().sum() > 0
        opt.step()
    gn(toy.losses(x), layer)  # renormalisation happens at the next call
    w = torch.tensor(list(gn.weights().values()))
    assert w.sum() == pytest.approx(2.0, abs=1e-5) and not torch.allclose(w, torch.ones(2))
    gn.eval()
    with torch.no_grad():
        assert torch.isfinite(gn(toy.losses(x)))


def test_pcgrad_projection_maths() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out = PCGrad.project(g)
    # g1 - (g1.g2/|g2|^2) g2 = (1,0) + 0.5(-1,1) = (0.5, 0.5); g2 - (g2.g1/|g1|^2) g1 = (0, 1)
    assert torch.allclose(out, torch.tensor([0.5, 1.5]))
    aligned = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(PCGrad.project(aligned), aligned.sum(0))


def test_pcgrad_surrogate_gives_projected_shared_gradient() -> None:
    toy = _Toy()
    pc = build_weighting("pcgrad", TASKS)
    x = torch.randn(8, 4)
    losses = toy.losses(x)
    shared = list(toy.encoder.parameters())
    flat = torch.stack(
        [
            torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], shared, retain_graph=True)])
            for t in TASKS
        ]
    )
    expected = PCGrad.project(flat, torch.Generator().manual_seed(0))
    toy.zero_grad()
    pc(losses, shared).backward()
    got = torch.cat([p.grad.flatten() for p in shared])
    assert torch.allclose(got, expected, atol=1e-6)
    # task-specific parameters: plain gradients
    head = toy.heads["depth"].weight.grad
    assert head is not None and head.abs().sum() > 0


@pytest.mark.parametrize("name", ["fixed", "uncertainty", "dwa", "gradnorm", "pcgrad"])
def test_every_weighting_trains_a_real_model(name: str) -> None:
    from densemtl.training.module import DenseMTLModule

    module = DenseMTLModule(
        model="hard_sharing",
        num_classes=3,
        weighting=name,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
    )
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 3, 32, 32, generator=g),
        "semseg": torch.randint(0, 3, (2, 32, 32), generator=g),
        "depth": torch.rand(2, 1, 32, 32, generator=g) + 1,
    }
    total = module.weighted_loss(module.compute_losses(module(batch["image"]), batch))
    total.backward()
    assert torch.isfinite(total)
    assert module.net.encoder.conv1.weight.grad is not None


def test_training_logs_the_task_weights(tmp_path) -> None:
    from torch.utils.data import DataLoader

    from densemtl.data.sample import collate
    from densemtl.training.module import DenseMTLModule

    module = DenseMTLModule(
        model="hard_sharing",
        num_classes=3,
        weighting="uncertainty",
        lr=0.05,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        log_images=0,
    )
    initial = module.weighting.weights()
    g = torch.Generator().manual_seed(0)
    samples = [
        {
            "image": torch.rand(3, 32, 32, generator=g),
            "semseg": torch.randint(0, 3, (32, 32), generator=g),
            "depth": torch.rand(1, 32, 32, generator=g) + 1,
        }
        for _ in range(4)
    ]
    trainer = quiet_trainer(tmp_path, max_steps=3)
    trainer.fit(module, train_dataloaders=DataLoader(samples, batch_size=2, collate_fn=collate))
    logged = trainer.callback_metrics
    weights = module.weighting.weights()
    for task in TASKS:
        # logged before the last optimiser step, so close to (not equal to) the final weights
        assert float(logged[f"train/weight_{task}"]) == pytest.approx(weights[task], rel=0.05)
        assert float(logged[f"train/weight_{task}"]) != pytest.approx(initial[task], rel=1e-3)
