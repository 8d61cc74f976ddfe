"""Multi-Task Light-Weight RefineNet: exact parameter counts, conv MACs, shapes, ImageNet loading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from densemtl.errors import DataError
from densemtl.models import build_model, model_names
from densemtl.models.backbones import mobilenet_v2
from densemtl.models.backbones.mobilenetv2_refinenet import (
    EXPANSION_PREFIX,
    RefineNetMobileNetV2,
    load_imagenet,
    map_torchvision_state_dict,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ({"semseg": 40, "depth": 1}, 3_070_057),  # NYUD-40 + depth
        ({"semseg": 40, "depth": 1, "normals": 3}, 3_077_228),  # NYUD 3-task
        ({"semseg": 6, "depth": 1}, 2_991_687),  # KITTI-6 + depth
        ({"semseg": 46, "depth": 1}, 3_083_887),  # joint NYUD+KITTI, 46 outputs
    ],
)
def test_exact_parameter_counts(tasks: dict[str, int], expected: int) -> None:
    with torch.device("meta"):
        model = build_model("mt_refinenet", tasks=tasks)
    assert _params(model) == expected
    assert _params(model.encoder) == 1_812_800


def test_registered() -> None:
    assert "mt_refinenet" in model_names()


def test_conv_macs_480x640() -> None:
    """Conv multiply-adds (FlopCounterMode counts only aten.convolution here; MACs = FLOPs / 2)."""
    with torch.device("meta"):
        model = build_model("mt_refinenet", tasks={"semseg": 40, "depth": 1}).eval()
        x = torch.rand(1, 3, 480, 640)
    with FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()["Global"]
    assert {str(op) for op in counts} == {"aten.convolution"}
    macs = counter.get_total_flops() / 2
    assert macs == pytest.approx(5.94e9, rel=0.02)
    assert macs == 5_940_288_000  # exact value of this implementation


def test_full_crp1_costs_more() -> None:
    """The paper's point: a full-conv CRP1 adds 261,120 parameters."""
    with torch.device("meta"):
        full = build_model("mt_refinenet", tasks={"semseg": 40, "depth": 1}, depthwise_crp1=False)
    assert _params(full) == 3_070_057 + 261_120


def test_forward_shapes_and_strides() -> None:
    model = build_model("mt_refinenet", tasks={"semseg": 5, "depth": 1, "normals": 3}).eval()
    assert [i["reduction"] for i in model.encoder.feature_info] == [4, 8, 16, 16, 32, 32]
    assert [i["num_chs"] for i in model.encoder.feature_info] == [24, 32, 64, 96, 160, 320]
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        raw = model.forward_tasks(x)
        out = model(x)
    assert raw["semseg"].shape == (2, 5, 16, 24)  # heads at 1/4 resolution
    assert out["semseg"].shape == (2, 5, 64, 96)
    assert out["depth"].shape == (2, 1, 64, 96) and bool((out["depth"] > 0).all())
    norms = out["normals"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    # odd sizes (not multiples of 32) still work: upsampling is to the skip's size
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 50, 70))
    assert out["depth"].shape == (1, 1, 50, 70)


def test_backward() -> None:
    model = build_model("mt_refinenet", tasks={"semseg": 3, "depth": 1}).train()
    out = model(torch.rand(2, 3, 32, 32))
    (out["semseg"].mean() + out["depth"].mean()).backward()
    assert model.encoder.features[0][0].weight.grad is not None
    assert model.heads["depth"].predict.weight.grad is not None


def test_scratch_init_keeps_the_signal() -> None:
    """``init="kaiming"``: CRP blocks and head depthwise convs start as the identity, the decoder's
    ReLU6 units do not saturate and the heads see the decoder's signal; with the authors' N(0, 0.01)
    init the heads' inputs are ~100x smaller (why it barely trains from scratch)."""
    torch.manual_seed(0)
    x = torch.rand(1, 256, 6, 8)
    head_input_std, saturated = {}, {}
    for init in ("kaiming", "authors"):
        model = build_model("mt_refinenet", tasks={"semseg": 4, "depth": 1}, init=init).train()
        if init == "kaiming":
            assert torch.equal(model.crp2(x), x) and torch.equal(model.crp1(x), x)
            assert torch.equal(model.heads["semseg"].pre(x), x)
        relu_outputs, head_inputs = [], []
        model.relu.register_forward_hook(lambda m, i, o, acc=relu_outputs: acc.append(o))
        model.heads["semseg"].act.register_forward_hook(lambda m, i, o, acc=head_inputs: acc.append(o))
        with torch.no_grad():
            model(torch.rand(2, 3, 96, 128))
        saturated[init] = max(float((o >= 6).float().mean()) for o in relu_outputs)
        head_input_std[init] = float(head_inputs[0].std())
    assert saturated["kaiming"] < 0.05
    assert head_input_std["kaiming"] > 0.1
    assert head_input_std["kaiming"] > 50 * head_input_std["authors"]


def _random_torchvision_state() -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision-layout MobileNet-v2 with non-trivial BN statistics."""
    torch.manual_seed(0)
    ref = mobilenet_v2()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return ref.state_dict()


def _check_equivalent(encoder: RefineNetMobileNetV2, reference: torch.nn.Module) -> None:
    """The loaded encoder computes torchvision's features (the identity expansion conv is a no-op)."""
    encoder.eval()
    reference.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        ours = encoder.forward_features(x)
        ref = reference.forward_features(x)
    assert [f.shape for f in ours] == [ref[i].shape for i in (0, 1, 2, 3, 4, 5)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def _reference(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """torchvision-layout MobileNet-v2 tapped after features 3, 6, 10, 13, 16, 17 (the RefineNet taps)."""
    ref = mobilenet_v2()
    ref.load_state_dict(state)

    class Tapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = ref.features

        def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
            out = []
            for j in range(18):
                x = self.features[j](x)
                if j in (3, 6, 10, 13, 16, 17):
                    out.append(x)
            return out

    return Tapped()


def test_imagenet_mapping_on_random_torchvision_state() -> None:
    state = _random_torchvision_state()
    mapped = map_torchvision_state_dict(state)
    assert not any(k.startswith(("features.18.", "classifier.")) for k in mapped)
    assert "features.1.conv.3.weight" in mapped and "features.1.conv.0.0.weight" not in mapped
    encoder = RefineNetMobileNetV2()
    loaded = load_imagenet(encoder, state)
    assert len(loaded) == len(mapped)
    own = encoder.state_dict()
    assert torch.equal(own[EXPANSION_PREFIX + "0.weight"].flatten(1), torch.eye(32))
    assert torch.equal(own["features.1.conv.2.weight"], state["features.1.conv.1.weight"])
    assert torch.equal(own["features.17.conv.3.running_var"], state["features.17.conv.3.running_var"])
    _check_equivalent(encoder, _reference(state))


def test_imagenet_mapping_from_file_and_model_option(tmp_path: Path) -> None:
    state = _random_torchvision_state()
    path = tmp_path / "mbv2.pth"
    torch.save(state, path)
    model = build_model("mt_refinenet", tasks={"semseg": 4, "depth": 1}, encoder_weights=str(path))
    _check_equivalent(model.encoder, _reference(state))


def test_imagenet_mapping_rejects_other_networks() -> None:
    state = _random_torchvision_state()
    del state["features.5.conv.0.0.weight"]
    with pytest.raises(DataError, match="missing"):
        load_imagenet(RefineNetMobileNetV2(), state)
    bad = _random_torchvision_state()
    bad["features.2.conv.0.0.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(DataError, match="mis-shaped"):
        load_imagenet(RefineNetMobileNetV2(), bad)


@pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="../shared/weights not available")
def test_real_imagenet_weights() -> None:
    from densemtl.models.backbones.weights import load_state_dict_file

    model = build_model("mt_refinenet", tasks={"semseg": 40, "depth": 1}, encoder_weights=str(REAL_WEIGHTS))
    state = load_state_dict_file(REAL_WEIGHTS)
    own = model.encoder.state_dict()
    assert torch.equal(own["features.0.0.weight"], state["features.0.0.weight"])
    assert torch.equal(own["features.1.conv.1.0.weight"], state["features.1.conv.0.0.weight"])
    _check_equivalent(model.encoder, _reference(state))
