"""Backbones: torchvision-identical parameters / keys, the multi-scale API, dilation, registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from densemtl.errors import ConfigError, DataError
from densemtl.models.backbones import BACKBONES, build_backbone

# torchvision's numbers (torchvision.models docs / sum of p.numel()), and len(state_dict())
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "mobilenet_v2": 3_504_872,
}
TORCHVISION_NUM_KEYS = {
    "resnet18": 122,
    "resnet34": 218,
    "resnet50": 320,
    "resnet101": 626,
    "mobilenet_v2": 314,
}
# (key, shape) pairs that exist in torchvision's state dicts
TORCHVISION_KEYS = {
    "resnet18": {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.1.conv2.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer2.0.downsample.1.num_batches_tracked": (),
        "layer4.1.bn2.weight": (512,),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    },
    "resnet34": {
        "layer3.5.conv2.weight": (256, 256, 3, 3),
        "layer4.2.bn2.bias": (512,),
        "fc.weight": (1000, 512),
    },
    "resnet50": {
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.conv3.weight": (1024, 256, 1, 1),
        "layer4.2.bn3.running_var": (2048,),
        "fc.weight": (1000, 2048),
    },
    "resnet101": {"layer3.22.conv3.weight": (1024, 256, 1, 1), "fc.weight": (1000, 2048)},
    "mobilenet_v2": {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.0.1.weight": (32,),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.1.conv.2.running_mean": (16,),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),
        "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.2.conv.2.weight": (24, 96, 1, 1),
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.0.weight": (1280, 320, 1, 1),
        "features.18.1.num_batches_tracked": (),
        "classifier.1.weight": (1000, 1280),
        "classifier.1.bias": (1000,),
    },
}
CHANNELS = {
    "resnet18": [64, 128, 256, 512],
    "resnet34": [64, 128, 256, 512],
    "resnet50": [256, 512, 1024, 2048],
    "resnet101": [256, 512, 1024, 2048],
    "mobilenet_v2": [24, 32, 96, 320],
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Intra-op threads spin-wait: with pytest-xdist workers sharing few cores they make small
    convolutions 5-10x slower, so these tests use one thread and restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kwargs: object) -> nn.Module:
    """Build without allocating or initialising weights (fast): for counting and shapes."""
    with torch.device("meta"):
        return build_backbone(name, **kwargs)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_backbone(name).eval() for name in TORCHVISION_PARAMS}


def test_registry_has_all_five() -> None:
    # the five torchvision networks, and the Multi-Task Light-Weight RefineNet encoder
    assert set(BACKBONES.names()) == set(TORCHVISION_PARAMS) | {"mobilenet_v2_refinenet"}
    with pytest.raises(ConfigError, match="unknown backbone 'vgg16'"):
        build_backbone("vgg16")


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_count_and_keys_equal_torchvision(name: str) -> None:
    model = on_meta(name)
    assert n_params(model) == TORCHVISION_PARAMS[name]
    sd = model.state_dict()
    assert len(sd) == TORCHVISION_NUM_KEYS[name]
    for key, shape in TORCHVISION_KEYS[name].items():
        assert tuple(sd[key].shape) == shape, key


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_logits_and_features(models: dict[str, nn.Module], name: str) -> None:
    model = models[name]
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        logits = model(x)
        feats = model.forward_features(x)
    assert logits.shape == (2, 1000)
    assert [f["num_chs"] for f in model.feature_info] == CHANNELS[name]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert len(feats) == 4
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (2, info["num_chs"], 64 // info["reduction"], 96 // info["reduction"])


def test_torchvision_init(models: dict[str, nn.Module]) -> None:
    r = models["resnet50"]
    assert torch.all(r.bn1.weight == 1) and torch.all(r.bn1.bias == 0)
    # kaiming_normal_(fan_out, relu): std = sqrt(2 / (64 * 7 * 7))
    assert r.conv1.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.05)
    m = models["mobilenet_v2"]
    assert m.classifier[1].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(m.classifier[1].bias == 0)
    assert build_backbone("resnet18", zero_init_residual=True).layer1[0].bn2.weight.abs().sum() == 0


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_features_only_drops_the_head(name: str) -> None:
    model = on_meta(name, features_only=True)
    keys = model.state_dict().keys()
    assert not any(k.startswith(("fc.", "classifier.")) for k in keys)
    head = 512 * 1000 + 1000 if name in ("resnet18", "resnet34") else 2048 * 1000 + 1000
    if name == "mobilenet_v2":  # classifier and the unused 320 -> 1280 conv (features.18)
        head = 1280 * 1000 + 1000 + 1280 * 320 + 2 * 1280
    assert n_params(model) == TORCHVISION_PARAMS[name] - head


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])  # one per block type
def test_features_only_forward_uses_every_parameter(name: str) -> None:
    model = build_backbone(name, features_only=True)
    out = model(torch.rand(2, 3, 32, 32))
    assert isinstance(out, list) and [o.shape[1] for o in out] == CHANNELS[name]
    sum(o.sum() for o in out).backward()  # DDP needs no find_unused_parameters
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_dilation(name: str) -> None:
    table = {32: ([False, False, False], [4, 8, 16, 32]), 16: ([False, False, True], [4, 8, 16, 16])}
    table[8] = ([False, True, True], [4, 8, 8, 8])
    for output_stride, (flags, reductions) in table.items():
        a = on_meta(name, replace_stride_with_dilation=flags, features_only=True)
        b = on_meta(name, output_stride=output_stride, features_only=True)
        assert [f["reduction"] for f in a.feature_info] == reductions
        assert a.feature_info == b.feature_info
        assert n_params(a) == n_params(on_meta(name, features_only=True))  # dilation adds nothing
    model = build_backbone(name, output_stride=8, features_only=True).eval()
    with torch.inference_mode():
        feats = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 8, 8]
    # torchvision's convention: the first block of a dilated stage keeps the old dilation where the
    # stride was, later convs use the new one
    layer4 = model.layer4
    strided = layer4[0].conv2 if name == "resnet50" else layer4[0].conv1
    assert strided.dilation == (2, 2) and strided.stride == (1, 1) and layer4[1].conv2.dilation == (4, 4)


def test_resnet_dilation_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="output_stride"):
        build_backbone("resnet50", output_stride=4)
    with pytest.raises(ConfigError, match="contradicts"):
        build_backbone("resnet50", output_stride=8, replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ConfigError, match="3 entries"):
        build_backbone("resnet50", replace_stride_with_dilation=[True])


def test_mobilenet_output_stride_and_out_indices() -> None:
    m = build_backbone("mobilenet_v2", output_stride=8, features_only=True).eval()
    assert [f["reduction"] for f in m.feature_info] == [4, 8, 8, 8]
    with torch.inference_mode():
        assert [f.shape[-1] for f in m(torch.rand(1, 3, 64, 64))] == [16, 8, 8, 8]
    m = build_backbone("mobilenet_v2", features_only=True, out_indices=(0, 1, 2, 3, 4, 5)).eval()
    assert [(f["num_chs"], f["reduction"]) for f in m.feature_info] == [
        (16, 2),
        (24, 4),
        (32, 8),
        (96, 16),
        (320, 32),
        (1280, 32),
    ]
    assert "features.18.0.weight" in m.state_dict()
    with torch.inference_mode():
        assert [tuple(f.shape[1:]) for f in m(torch.rand(1, 3, 64, 64))][-1] == (1280, 2, 2)
    with pytest.raises(ConfigError, match="out_indices"):
        build_backbone("mobilenet_v2", out_indices=(6,))


def test_resnet_stem_level() -> None:
    r = build_backbone("resnet34", features_only=True, out_indices=(0, 4)).eval()
    assert r.feature_info == [
        {"num_chs": 64, "reduction": 2, "module": "relu"},
        {"num_chs": 512, "reduction": 32, "module": "layer4"},
    ]
    with torch.inference_mode():
        assert [f.shape[-1] for f in r(torch.rand(1, 3, 64, 64))] == [32, 2]


def test_weights_enum_is_not_a_download() -> None:
    with pytest.raises(DataError, match="never downloads"):
        build_backbone("resnet18", weights="IMAGENET1K_V1")
