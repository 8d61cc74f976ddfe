"""Every registered architecture x every registered backbone, at 2x3x64x64 on CPU.

Each pair is built, run forward in training mode and differentiated per task; the parameters that
receive a non-zero gradient from at least two tasks' losses must be exactly
``model.shared_parameters()``, and ``last_shared_parameters()`` conv weights among them. The pairs
an architecture cannot use are refused when the model is built, with a one-line ``ConfigError``
naming the model and the backbone.

ResNet-34 and ResNet-101 pairs (up to 120 M parameters: NDDR-CNN's two encoders and its NDDR layers
at 2048 channels) only run forward and one backward: ResNet-18 / ResNet-50 have the same blocks and
stages, so the shared-parameter check there covers the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from densemtl.errors import ConfigError
from densemtl.models import build_model, model_names
from densemtl.models.backbones import BACKBONES

TASKS = {"semseg": 3, "depth": 1}
# the smallest widths each architecture offers
TINY: dict[str, dict[str, Any]] = {
    "cross_stitch": {"aspp_channels": 16},
    "nddr_cnn": {"aspp_channels": 16},
    "mtan": {"aspp_channels": 16},
    "ccam": {"decoder_channels": 16},
    "hard_sharing": {"decoder_channels": 16},
    "single_task": {"decoder_channels": 16},
    "mtl_hps": {"aspp_channels": 16},
    "stl_aspp": {"aspp_channels": 16},
    "pad_net": {"task_channels": 32},
    "mtl_spp": {"ppm_channels": 16},
    "mtl_ssw": {"ppm_channels": 16},
    "xtasc_net": {"decoder_channels": 16},
    "mt_refinenet": {"channels": 16},
}
SHARED_CHECK_SKIPPED = ("resnet34", "resnet101")
LEVELS = {"mobilenet_v2_refinenet": 6}  # feature levels per backbone (4 otherwise), for mti_net
REFUSED = {("mt_refinenet", b) for b in BACKBONES.names() if b != "mobilenet_v2_refinenet"}
REFUSED.add(("xtasc_net", "mobilenet_v2_refinenet"))
PAIRS = [(m, b) for m in model_names() for b in BACKBONES.names()]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Small convolutions run faster on one intra-op thread when test workers share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_options(name: str, backbone: str) -> dict[str, Any]:
    options = dict(TINY.get(name, {}))
    if name == "mti_net":
        # SE in the feature propagation has channels // 16 hidden units: 4 here, so ReLU rarely kills all
        options["channels"] = [64] * LEVELS.get(backbone, 4)
    return options


def test_every_architecture_and_backbone_is_covered() -> None:
    assert len(model_names()) >= 14 and "mobilenet_v2_refinenet" in BACKBONES.names()
    assert len(PAIRS) == len(model_names()) * len(BACKBONES.names())


@pytest.mark.parametrize(("name", "backbone"), [p for p in PAIRS if p not in REFUSED])
def test_forward_backward_and_shared_parameters(name: str, backbone: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, tasks=TASKS, backbone=backbone, **tiny_options(name, backbone)).train()
    if name == "ccam":  # gammas start at 0, which hides the coupling from the numbers
        with torch.no_grad():
            for p in model.ccam.parameters():
                p.fill_(0.5)
    out = model(torch.rand(2, 3, 64, 64))
    assert {t for t in out if ":" not in t} == set(TASKS)
    for t, c in TASKS.items():
        assert out[t].shape == (2, c, 64, 64) and torch.isfinite(out[t]).all()
    if backbone in SHARED_CHECK_SKIPPED:
        sum(o.float().mean() for o in out.values()).backward()
        assert all(p.grad is not None for p in model.shared_parameters())
        return
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    reached: dict[str, int] = {}  # tasks whose loss autograd carries to the parameter
    nonzero: dict[str, int] = {}  # tasks whose loss gives it a non-zero gradient
    for t in TASKS:
        weight = torch.randn(out[t].shape, generator=torch.Generator().manual_seed(1)).to(out[t].device)
        grads = torch.autograd.grad((out[t] * weight).mean(), params, retain_graph=True, allow_unused=True)
        for (n, _), g in zip(named, grads):
            if g is not None:
                reached[n] = reached.get(n, 0) + 1
                if bool(g.abs().sum() > 0):
                    nonzero[n] = nonzero.get(n, 0) + 1
    expected = {n for n, k in reached.items() if k >= 2}
    ids = {id(p) for p in model.shared_parameters()}
    listed = {n for n, p in named if id(p) in ids}
    assert listed == expected, (
        f"listed but not shared: {sorted(listed - expected)[:5]}; "
        f"shared but not listed: {sorted(expected - listed)[:5]}"
    )
    # and the numbers flow: a listed parameter may get zeros from a task only behind a ReLU that is
    # dead at this tiny size (a few squeeze-and-excitation units)
    numbers = {n for n, k in nonzero.items() if k >= 2}
    assert numbers <= listed and len(listed - numbers) <= len(listed) // 20, sorted(listed - numbers)[:5]
    last = model.last_shared_parameters()
    assert bool(last) == bool(ids)
    assert all(id(p) in ids and p.dim() == 4 for p in last)
    sum(o.float().mean() for o in out.values()).backward()  # the full backward, auxiliary outputs too


@pytest.mark.parametrize(("name", "backbone"), sorted(REFUSED))
def test_refused_pairs_give_a_one_line_config_error(name: str, backbone: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_model(name, tasks=TASKS, backbone=backbone, **tiny_options(name, backbone))
    message = str(exc.value)
    assert "\n" not in message and name in message and backbone in message


def test_mti_net_with_default_widths_on_six_levels_says_what_to_give() -> None:
    with pytest.raises(
        ConfigError, match=r"mti_net cannot use backbone mobilenet_v2_refinenet: .*6 channels"
    ):
        build_model("mti_net", tasks=TASKS, backbone="mobilenet_v2_refinenet")


def test_nothing_is_shared_between_independent_networks() -> None:
    for name in ("single_task", "stl_aspp"):
        model = build_model(name, tasks=TASKS, backbone="resnet18", **TINY[name])
        assert model.shared_parameters() == [] and model.last_shared_parameters() == []
