"""CCAM (reconstruction of Bansal et al. 2022): shapes, identity at init, negligible overhead."""

from __future__ import annotations

import torch

from densemtl.models import build_model
from densemtl.models.ccam import CrossChannelAttention

torch.set_num_threads(1)


def test_attention_identity_at_init_and_cross_task_mixing() -> None:
    torch.manual_seed(0)
    ccam = CrossChannelAttention()
    seg, depth = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    s2, d2 = ccam(seg, depth)
    assert torch.equal(s2, seg) and torch.equal(d2, depth)
    with torch.no_grad():
        ccam.gamma_seg.fill_(1.0)
    s3, d3 = ccam(seg, depth)
    assert torch.equal(d3, depth)
    # manual formula: F_s + softmax(F_s F_d^T) F_d
    q, o = seg.flatten(2), depth.flatten(2)
    expected = seg + torch.bmm(torch.softmax(torch.bmm(q, o.transpose(1, 2)), -1), o).view_as(seg)
    assert torch.allclose(s3, expected, atol=1e-5)


def test_gamma_receives_gradient_from_zero() -> None:
    ccam = CrossChannelAttention(max_trick=True, scale_energy=True)
    seg, depth = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    s, d = ccam(seg, depth)
    (s.square().sum() + d.square().sum()).backward()
    assert ccam.gamma_seg.grad.abs() > 0 and ccam.gamma_depth.grad.abs() > 0


def test_ccam_model_shapes_and_parameter_overhead() -> None:
    tasks = {"semseg": 6, "depth": 1}
    model = build_model(
        "ccam", tasks=tasks, backbone="resnet18", decoder_channels=32, ccam_stages=[0, 1, 2, 3]
    )
    base = build_model("ccam", tasks=tasks, backbone="resnet18", decoder_channels=32, ccam_stages=[])
    total = sum(p.numel() for p in model.parameters())
    assert model.ccam_parameters() == 8
    assert total - sum(p.numel() for p in base.parameters()) == 8
    assert model.ccam_parameters() / total < 1e-3
    out = model(torch.rand(2, 3, 64, 64))
    assert out["semseg"].shape == (2, 6, 64, 64) and out["depth"].shape == (2, 1, 64, 64)
    assert (out["depth"] > 0).all()


def test_ccam_model_with_normals_and_one_direction() -> None:
    model = build_model(
        "ccam",
        tasks={"semseg": 3, "depth": 1, "normals": 3},
        backbone="resnet18",
        decoder_channels=16,
        ccam_stages=[3],
        ccam_direction="seg_from_depth",
    )
    out = model.eval()(torch.rand(1, 3, 32, 32))
    assert out["normals"].shape == (1, 3, 32, 32)
