"""XTasC-Net (methods.md §3): exact parameter counts, outputs, both transferred-loss modes."""

from __future__ import annotations

import pytest
import torch

from densemtl.models import build_model
from densemtl.weighting import build_weighting

torch.set_num_threads(1)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("backbone", "classes", "total", "inference"),
    [
        ("resnet34", 7, 31_553_344, 27_785_280),
        ("resnet34", 13, 31_557_952, 27_786_048),
        ("resnet34", 19, 31_562_560, 27_786_816),
        ("resnet18", 7, 21_445_184, 17_677_120),
        ("resnet50", 7, 40_412_224, 36_644_160),
    ],
)
def test_parameter_counts_match_authors(backbone: str, classes: int, total: int, inference: int) -> None:
    model = build_model("xtasc_net", tasks={"semseg": classes, "depth": 1}, backbone=backbone)
    assert _count(model) == total
    assert model.inference_parameters() == inference


def test_ttnet_variants_counts() -> None:
    tasks = {"semseg": 7, "depth": 1}
    assert _count(build_model("xtasc_net", tasks=tasks, batch_norm_ttnet=True)) == 31_558_976
    assert _count(build_model("xtasc_net", tasks=tasks, wider_ttnet=True)) == 42_841_664


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("xtasc_net", tasks={"semseg": 5, "depth": 1}, backbone="resnet18", decoder_channels=16)


def _batch(h: int = 32, w: int = 64) -> dict:
    g = torch.Generator().manual_seed(1)
    seg = torch.randint(0, 5, (2, h, w), generator=g)
    seg[:, :4] = 255
    depth = torch.rand(2, 1, h, w, generator=g) + 0.1
    depth[:, :, -4:] = 0
    return {"image": torch.rand(2, 3, h, w, generator=g), "semseg": seg, "depth": depth}


def test_outputs_train_and_direct_only(tiny: torch.nn.Module) -> None:
    batch = _batch()
    tiny.train()
    out = tiny(batch["image"])
    assert set(out) == {"semseg", "depth", "semseg:transfer", "depth:transfer"}
    assert out["semseg"].shape == out["semseg:transfer"].shape == (2, 5, 32, 64)
    assert out["depth"].shape == out["depth:transfer"].shape == (2, 1, 32, 64)
    tiny.eval()
    with torch.no_grad():
        assert set(tiny(batch["image"])) == {"semseg", "depth"}
    tiny.train()


@pytest.mark.parametrize("mode", ["xtsc", "xtc"])
def test_losses_both_modes_and_gradient_routing(tiny: torch.nn.Module, mode: str) -> None:
    from densemtl.losses.compose import LossComposer

    tiny.train()
    tiny.transfer_loss = mode
    batch = _batch()
    out = tiny(batch["image"])
    composer = LossComposer(
        ["semseg", "depth"], {"semseg": "cross_entropy", "depth": "xtasc_depth"}, tiny.auxiliary_terms(), {}
    )
    terms = composer.auxiliary_terms(out, batch)
    assert set(terms) == {"semseg:transfer", "depth:transfer"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in terms.values())
    # L_tdep = s2d(seg): its gradient reaches the seg decoder; in xtsc never the depth decoder
    tiny.zero_grad()
    terms["depth:transfer"].backward(retain_graph=True)
    seg_grad = tiny.decoders["semseg"].head.weight.grad
    dep_grad = tiny.decoders["depth"].head.weight.grad
    assert seg_grad is not None and seg_grad.abs().sum() > 0
    assert dep_grad is None or dep_grad.abs().sum() == 0
    tiny.zero_grad()
    terms["semseg:transfer"].backward()
    assert tiny.decoders["depth"].head.weight.grad.abs().sum() > 0
    tiny.transfer_loss = "xtsc"


def test_xtsc_terms_values() -> None:
    from densemtl.losses.xtasc import consistency_ce, masked_l1, smoothed_one_hot

    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[0.0, 2.0], [3.0, 0.0]]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    assert torch.isclose(masked_l1(pred, target, valid), torch.tensor(1 / 3))
    t = smoothed_one_hot(torch.tensor([[[0]]]), 3, 0.1)
    assert torch.allclose(t.flatten(), torch.tensor([0.9, 0.05, 0.05]))
    logits = torch.zeros(1, 3, 1, 2)
    # uniform logits: CE = log 3 per pixel; a masked pixel counts 0 but stays in the denominator
    ce = consistency_ce(logits, torch.zeros(1, 1, 2, dtype=torch.long), torch.tensor([[[True, False]]]))
    assert torch.isclose(ce, torch.log(torch.tensor(3.0)) / 2)


def test_xtsc_uses_detached_direct_predictions(tiny: torch.nn.Module) -> None:
    tiny.train()
    batch = _batch()
    out = tiny(batch["image"])
    # identical transferred/direct predictions give a zero depth consistency term
    out = dict(out)
    out["depth:transfer"] = out["depth"]
    from densemtl.losses.compose import LossComposer

    composer = LossComposer(
        ["semseg", "depth"], {"semseg": "cross_entropy", "depth": "xtasc_depth"}, tiny.auxiliary_terms(), {}
    )
    terms = composer.auxiliary_terms(out, batch)
    assert float(terms["depth:transfer"].detach()) == 0.0


def test_group_weighting_math() -> None:
    losses = {
        "semseg": torch.tensor(2.0),
        "depth": torch.tensor(3.0),
        "depth:transfer": torch.tensor(5.0),
        "semseg:transfer": torch.tensor(7.0),
    }
    plain = build_weighting("xtasc_groups", ["semseg", "depth"], lambda1=0.1, lambda2=0.2, uncertainty=False)
    label = 0.9 * 2 + 0.1 * 5
    image = 0.8 * 3 + 0.2 * 7
    assert torch.isclose(plain(losses), torch.tensor(label + image))
    uw = build_weighting("xtasc_groups", ["semseg", "depth"], lambda1=0.1, lambda2=0.2)
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.5, -0.3]))
    expected = (
        0.5 * torch.exp(torch.tensor(-0.5)) * label + 0.5 + 0.5 * torch.exp(torch.tensor(0.3)) * image - 0.3
    )
    assert torch.isclose(uw(losses), expected)
    # evaluation: no transfer terms
    direct = {"semseg": losses["semseg"], "depth": losses["depth"]}
    assert torch.isclose(plain(direct), torch.tensor(0.9 * 2 + 0.8 * 3))
    assert sum(p.numel() for p in uw.parameters()) == 2


def test_module_training_step_with_group_weighting() -> None:
    from densemtl.training.module import DenseMTLModule

    module = DenseMTLModule(
        model="xtasc_net",
        num_classes=5,
        model_options={"backbone": "resnet18", "decoder_channels": 16, "label_smoothing": 0.1},
        losses={"depth": "xtasc_depth"},
        weighting="xtasc_groups",
        weighting_options={"lambda1": 0.01, "lambda2": 0.01},
    )
    batch = _batch()
    outputs = module(batch["image"])
    losses = module.compute_losses(outputs, batch)
    assert set(losses) == {"semseg", "depth", "semseg:transfer", "depth:transfer"}
    total = module.weighting(losses)
    total.backward()
    assert module.weighting.log_vars.grad is not None


def test_per_image_metrics_convention() -> None:
    from densemtl.metrics.xtasc import PerImageDepthMetrics, PerImageSegmentationMetrics

    seg = PerImageSegmentationMetrics(3)
    target = torch.tensor([[[0, 0], [1, 255]], [[2, 2], [2, 2]]])
    preds = torch.tensor([[[0, 1], [1, 0]], [[2, 2], [2, 0]]])
    seg.update(preds, target)
    # image 1: class 0 IoU 1/2, class 1 IoU 1/2 -> 0.5; image 2: class 2 3/4, class 0 0/1 -> 0.375
    out = seg.compute()
    assert out["miou_per_image"] == pytest.approx((0.5 + 0.375) / 2)
    assert out["pixel_acc_per_image"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    dep = PerImageDepthMetrics()
    dep.update(torch.tensor([[[[2.0, 1.0]]], [[[1.0, 5.0]]]]), torch.tensor([[[[1.0, 0.0]]], [[[2.0, 4.0]]]]))
    out = dep.compute()
    assert out["abs_err_per_image"] == pytest.approx((1.0 + 1.0) / 2)
    assert out["abs_rel_per_image"] == pytest.approx((1.0 + (0.5 + 0.25) / 2) / 2)


@pytest.mark.parametrize(
    ("config", "classes", "total"),
    [("cityscapes7_xtasc_net", 7, 31_553_344), ("nyu13_xtasc_net", 13, 31_557_952)],
)
def test_configs_build_the_exact_model(config: str, classes: int, total: int) -> None:
    from pathlib import Path

    import yaml

    from densemtl.training.module import DenseMTLModule

    path = Path(__file__).resolve().parents[2] / "src" / "densemtl" / "configs" / f"{config}.yaml"
    spec = yaml.safe_load(path.read_text())["model"]
    module = DenseMTLModule(**spec, num_classes=classes)
    assert _count(module.net) == total
    assert _count(module.weighting) == 2


def test_validation_transfer_terms_use_eval_mode_batchnorm() -> None:
    """``evaluation_terms`` runs the transfer nets in eval mode (BN running statistics, none
    updated), as the authors' validation; ``return_transfer`` returns the same outputs."""
    from densemtl.losses.compose import LossComposer
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    options = {"backbone": "resnet18", "decoder_channels": 16, "batch_norm_ttnet": True}
    module = DenseMTLModule(
        model="xtasc_net", num_classes=5, model_options=options, losses={"depth": "xtasc_depth"}
    )
    net = module.net
    bns = [m for m in net.transfer.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # statistics far from a batch's, so train and eval modes differ
        for bn in bns:
            bn.running_mean.uniform_(-1.0, 1.0)
            bn.running_var.uniform_(2.0, 3.0)
    stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    batch = _batch()
    module.eval()
    with torch.no_grad():
        outputs = module.predict_tasks(batch["image"])
        terms = module.evaluation_terms(outputs, batch)
    assert all(
        torch.equal(bn.running_mean, m) and torch.equal(bn.running_var, v) for bn, (m, v) in zip(bns, stats)
    )
    # the same terms from a forward with every BN in eval mode, computed outside the module
    with torch.no_grad():
        feats = net.encoder.forward_features((batch["image"] - net.pixel_mean) / net.pixel_std)
        seg, depth = net.decoders["semseg"](feats), net.decoders["depth"](feats)
        expected = {"depth:transfer": net.transfer["s2d"](seg), "semseg:transfer": net.transfer["d2s"](depth)}
        composer = LossComposer(
            ["semseg", "depth"],
            {"semseg": "cross_entropy", "depth": "xtasc_depth"},
            net.auxiliary_terms(),
            {},
        )
        ref = composer.auxiliary_terms({"semseg": seg, "depth": depth, **expected}, batch)
    for name in expected:
        assert torch.allclose(terms[name], ref[name], atol=1e-6)
    # train-mode BN would give other values
    import copy

    with torch.no_grad():
        train_out = copy.deepcopy(net).train()(batch["image"])
    assert not torch.allclose(train_out["depth:transfer"], expected["depth:transfer"], atol=1e-3)
    # return_transfer: eval-mode forward returns the transfer outputs (the authors' plots)
    assert set(outputs) == {"semseg", "depth"}
    net.return_transfer = True
    with torch.no_grad():
        out = net(batch["image"])
    assert set(out) == {"semseg", "depth", "semseg:transfer", "depth:transfer"}
    assert torch.allclose(out["depth:transfer"], expected["depth:transfer"], atol=1e-6)
    assert all(torch.equal(bn.running_mean, m) for bn, (m, _) in zip(bns, stats))


def test_return_transfer_model_option() -> None:
    model = build_model(
        "xtasc_net",
        tasks={"semseg": 5, "depth": 1},
        backbone="resnet18",
        decoder_channels=16,
        return_transfer=True,
    ).eval()
    with torch.no_grad():
        assert "semseg:transfer" in model(torch.rand(1, 3, 32, 32))


def test_disparity_task_keys_terms_groups_and_state_dict() -> None:
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    depth_model = build_model(
        "xtasc_net", tasks={"semseg": 5, "depth": 1}, backbone="resnet18", decoder_channels=16
    )
    torch.manual_seed(0)
    disp_model = build_model(
        "xtasc_net", tasks={"semseg": 5, "disparity": 1}, backbone="resnet18", decoder_channels=16
    )
    a, b = depth_model.state_dict(), disp_model.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert set(disp_model.auxiliary_terms()) == {"disparity:transfer", "semseg:transfer"}
    image = torch.rand(2, 3, 32, 64)
    disp_model.train()
    out = disp_model(image)
    assert set(out) == {"semseg", "disparity", "semseg:transfer", "disparity:transfer"}
    # unconstrained head (identity), as the depth variant
    depth_model.train()
    ref = depth_model(image)
    assert torch.equal(out["disparity"], ref["depth"]) and torch.equal(
        out["disparity:transfer"], ref["depth:transfer"]
    )
    with pytest.raises(ValueError, match="disparity"):
        build_model("xtasc_net", tasks={"semseg": 5, "normals": 3}, backbone="resnet18")

    module = DenseMTLModule(
        model="xtasc_net",
        tasks=["semseg", "disparity"],
        num_classes=5,
        model_options={"backbone": "resnet18", "decoder_channels": 16},
        weighting="xtasc_groups",
        weighting_options={"lambda1": 0.1, "lambda2": 0.2, "uncertainty": False},
    )
    batch = _batch()
    batch["disparity"] = batch.pop("depth")
    terms = module.compute_losses(module(batch["image"]), batch)
    assert set(terms) == {"semseg", "disparity", "semseg:transfer", "disparity:transfer"}
    expected = 0.9 * terms["semseg"] + 0.1 * terms["disparity:transfer"]
    expected = expected + 0.8 * terms["disparity"] + 0.2 * terms["semseg:transfer"]
    assert torch.allclose(module.weighting(terms), expected)
    assert module.weighting.weights() == pytest.approx(
        {"semseg": 0.9, "disparity:transfer": 0.1, "disparity": 0.8, "semseg:transfer": 0.2}
    )
