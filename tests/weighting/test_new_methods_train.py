"""Every added weighting trains hard_sharing and cross_stitch through the real module (a few SGD
steps on CPU, the last under bfloat16 autocast), and refuses a representation level where the
architecture has no shared encoder."""

from __future__ import annotations

import pytest
import torch

from densemtl.errors import ConfigError
from densemtl.training.module import DenseMTLModule
from densemtl.weighting import WEIGHTINGS

torch.set_num_threads(1)
# every registered strategy except the older ones, which test_weighting_methods.py trains
EARLIER = {"fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "rlw", "xtasc_groups"}
METHODS = [name for name in WEIGHTINGS.names() if name not in EARLIER]
MODELS = {
    "hard_sharing": {"backbone": {"name": "mobilenet_v2", "width_mult": 0.25}, "decoder_channels": 8},
    "cross_stitch": {"backbone": "resnet18", "stages": [1]},
}
REPRESENTATION_ONLY = {"mgda_ub", "aligned_mtl_ub"}


def _batch(seed: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(2, 3, size, size, generator=g),
        "semseg": torch.randint(0, 3, (2, size, size), generator=g),
        "depth": torch.rand(2, 1, size, size, generator=g) + 1,
    }


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("name", METHODS)
def test_method_trains_a_real_model(model: str, name: str) -> None:
    options = {"level": "parameters"} if model == "cross_stitch" and name in ("imtl", "imtl_g") else {}

    def build() -> DenseMTLModule:
        return DenseMTLModule(
            model=model, num_classes=3, weighting=name, weighting_options=options, model_options=MODELS[model]
        )

    if model == "cross_stitch" and name in REPRESENTATION_ONLY:
        with pytest.raises(ConfigError, match="shared encoder"):
            build()
        return
    torch.manual_seed(0)  # the initial weights must not depend on which tests ran before in this worker
    module = build().train()
    shared = [p for p in module.net.shared_parameters()]
    before = [p.detach().clone() for p in shared]
    # lr 1e-3: with lr 1e-2, batch 2 and 1x1 deepest feature maps, BatchNorm's gradients blow some
    # random initialisations of cross_stitch up to 1e10 in two steps, even with fixed weights
    optimiser = torch.optim.SGD(module.parameters(), lr=1e-3)
    size = 32 if model == "hard_sharing" else 16
    for step in range(2):
        batch = _batch(step, size)
        optimiser.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=step == 1):
            terms = module.compute_losses(module(batch["image"]), batch)
            total = module.weighted_loss(terms)
        total.backward()
        assert torch.isfinite(total.detach())
        assert all(torch.isfinite(torch.tensor(w)) for w in module.weighting.weights().values())
        optimiser.step()
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, shared))
    module.eval()
    with torch.no_grad():  # evaluation: no per-task backward, a plain finite loss
        batch = _batch(9, size)
        assert torch.isfinite(module.weighted_loss(module.compute_losses(module(batch["image"]), batch)))
