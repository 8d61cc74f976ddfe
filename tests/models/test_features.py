"""The stage API of every backbone: stage tables, FeatureInfo lookups, stage-by-stage forward."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from densemtl.errors import ConfigError
from densemtl.models.backbones import BACKBONES, FeatureInfo, build_backbone


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_feature_info_is_an_object_that_reads_like_timm_dicts() -> None:
    enc = build_backbone("resnet50", features_only=True, output_stride=8)
    info = enc.feature_info
    assert isinstance(info, FeatureInfo) and len(info) == 4
    assert info.channels() == [256, 512, 1024, 2048] and info.reduction() == [4, 8, 8, 8]
    assert info.module_name() == ["layer1", "layer2", "layer3", "layer4"]
    assert info[0] == {"num_chs": 256, "reduction": 4, "module": "layer1"} and info[-1]["num_chs"] == 2048
    assert info.index_of_stride(8) == 3 and info.index_of_stride(4) == 0
    with pytest.raises(ConfigError, match="no feature level at stride 32"):
        info.index_of_stride(32)
    assert [s.name for s in info.stages] == ["conv", "layer1_without_conv", "layer2", "layer3", "layer4"]
    assert [s.dilation for s in info.stages] == [1, 1, 1, 2, 4]
    assert info.stage_index("layer4") == info.stage_index(-1) == info.stage_index("layer4") == 4
    assert info.stage_index("relu") == 0
    with pytest.raises(ConfigError, match="unknown stage 'layer5'"):
        info.stage_index("layer5")
    assert enc.output_stride == 8 and enc.output_strides == (8, 16, 32)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_refinenet"])
def test_stages_compose_to_forward_features(name: str) -> None:
    torch.manual_seed(0)
    enc = build_backbone(name, features_only=True).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        feats = enc.forward_features(x)
        y, by_stage = x, []
        for i in range(enc.num_stages):
            y = enc.forward_stage(i, y)
            by_stage.append(y)
            blocks_out = by_stage[-2] if i else x
            for block in enc.stage_blocks(i):
                blocks_out = block(blocks_out)
            assert torch.equal(blocks_out, y)
            assert y.shape[1] == enc.feature_info.stages[i].num_chs == enc.stage_block_channels(i)[-1]
            assert 64 // y.shape[-1] == enc.feature_info.stages[i].reduction
    assert all(torch.equal(a, by_stage[i]) for a, i in zip(feats, enc.feature_info.out_indices))
    stage_params = {id(p) for i in range(enc.num_stages) for p in enc.stage_parameters(i)}
    assert stage_params == {id(p) for p in enc.parameters()}


def test_refinenet_encoder_is_registered_and_declares_no_dilation() -> None:
    assert "mobilenet_v2_refinenet" in BACKBONES.names()
    enc = build_backbone("mobilenet_v2_refinenet")
    assert sum(p.numel() for p in enc.parameters()) == 1_812_800
    assert enc.feature_info.reduction() == [4, 8, 16, 16, 32, 32] and enc.output_strides == (32,)
    assert build_backbone("mobilenet_v2_refinenet", out_indices=(0, 5)).feature_info.channels() == [24, 320]
    with pytest.raises(ConfigError, match="output_stride 32 only"):
        build_backbone("mobilenet_v2_refinenet", output_stride=8)
    with pytest.raises(ConfigError, match="no classifier"):
        build_backbone("mobilenet_v2_refinenet", features_only=False)


def test_remove_stages_drops_their_parameters() -> None:
    enc = build_backbone("mobilenet_v2", features_only=True)
    before = sum(p.numel() for p in enc.parameters())
    last = sum(p.numel() for p in enc.stage_parameters(4))
    enc.remove_stages(4)
    assert enc.num_stages == 4 and sum(p.numel() for p in enc.parameters()) == before - last
    assert not any(k.startswith("features.14.") for k in enc.state_dict())
    with pytest.raises(IndexError):
        enc.forward_stage(4, torch.rand(1, 96, 4, 4))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_refinenet"])
def test_residual_blocks_split_into_branch_and_merge(name: str) -> None:
    enc = build_backbone(name, features_only=True).eval()
    blocks = [b for i in range(enc.num_stages) for b in enc.stage_blocks(i) if hasattr(b, "branch")]
    assert len(blocks) >= 8
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        for i in range(enc.num_stages):
            for block in enc.stage_blocks(i):
                if hasattr(block, "branch"):
                    assert torch.equal(block.merge(block.branch(x), x), block(x))
                x = block(x)
