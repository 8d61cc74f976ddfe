"""The optimiser's parameter groups: unchanged without ``param_groups``; per-part rates with it."""

from __future__ import annotations

import pytest
import torch

from densemtl.errors import ConfigError
from densemtl.training.module import DenseMTLModule

torch.set_num_threads(1)

OPTIONS = {"channels": 16, "crp_stages": 1}


def _module(**kwargs) -> DenseMTLModule:
    torch.manual_seed(0)
    return DenseMTLModule(model="mt_refinenet", num_classes=4, model_options=OPTIONS, **kwargs)


def _ids(params) -> list[int]:
    return [id(p) for p in params]


def test_without_param_groups_the_two_groups_of_before() -> None:
    module = _module(optimizer="sgd", lr=0.02, weight_decay=1e-4, scheduler="none", weighting="uncertainty")
    optimizer = module.configure_optimizers()
    decay = [p for n, p in module.named_parameters() if p.ndim > 1 and not n.startswith("weighting.")]
    no_decay = [p for n, p in module.named_parameters() if p.ndim <= 1 or n.startswith("weighting.")]
    assert len(optimizer.param_groups) == 2
    first, second = optimizer.param_groups
    assert _ids(first["params"]) == _ids(decay) and first["weight_decay"] == 1e-4
    assert _ids(second["params"]) == _ids(no_decay) and second["weight_decay"] == 0.0
    assert first["lr"] == second["lr"] == 0.02 and "name" not in first


def test_encoder_decoder_heads_rates() -> None:
    groups = {"encoder": {"lr": 1e-3}, "decoder": {"lr": 1e-2, "weight_decay": 1e-5}}
    module = _module(optimizer="sgd", lr=5e-3, weight_decay=1e-4, scheduler="none", param_groups=groups)
    optimizer = module.configure_optimizers()
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert list(by_name) == ["encoder", "encoder_no_decay", "decoder", "decoder_no_decay"]
    encoder = set(_ids(module.net.encoder.parameters()))
    assert set(_ids(by_name["encoder"]["params"] + by_name["encoder_no_decay"]["params"])) == encoder
    assert by_name["encoder"]["lr"] == 1e-3 and by_name["encoder"]["weight_decay"] == 1e-4
    assert by_name["decoder"]["lr"] == 1e-2 and by_name["decoder"]["weight_decay"] == 1e-5
    assert by_name["decoder_no_decay"]["weight_decay"] == 0.0
    # "decoder" = every other network parameter, the heads included; each parameter once
    heads = set(_ids(module.net.heads.parameters()))
    assert heads <= set(_ids(by_name["decoder"]["params"] + by_name["decoder_no_decay"]["params"]))
    every = [i for g in optimizer.param_groups for i in _ids(g["params"])]
    assert sorted(every) == sorted(_ids(p for p in module.parameters() if p.requires_grad))

    with_heads = _module(scheduler="none", param_groups={**groups, "heads": {"lr": 0.1}})
    names = {g["name"]: g for g in with_heads.configure_optimizers().param_groups}
    assert set(_ids(names["heads"]["params"] + names["heads_no_decay"]["params"])) == set(
        _ids(with_heads.net.heads.parameters())
    )
    assert names["heads"]["lr"] == 0.1 and not heads & set(_ids(names["decoder"]["params"]))


def test_weighting_parameters_keep_the_base_rate_and_no_decay() -> None:
    module = _module(
        scheduler="none", lr=3e-3, weighting="uncertainty", param_groups={"encoder": {"lr": 1e-4}}
    )
    groups = {g["name"]: g for g in module.configure_optimizers().param_groups}
    assert _ids(groups["weighting"]["params"]) == _ids(module.weighting.parameters())
    assert groups["weighting"]["lr"] == 3e-3 and groups["weighting"]["weight_decay"] == 0.0
    assert groups["decoder"]["lr"] == 3e-3  # parts not given use lr


def test_param_groups_errors() -> None:
    with pytest.raises(ConfigError, match="param_groups: unknown parts"):
        _module(param_groups={"backbone": {"lr": 1}}).optimizer_groups()
    with pytest.raises(ConfigError, match=r"param_groups.encoder: unknown keys \['momentum'\]"):
        _module(param_groups={"encoder": {"momentum": 0.5}}).optimizer_groups()
    torch.manual_seed(0)
    xtasc = DenseMTLModule(
        model="xtasc_net",
        num_classes=4,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        param_groups={"heads": {"lr": 1e-3}},
    )
    with pytest.raises(ConfigError, match="has no heads part"):
        xtasc.optimizer_groups()


def test_poly_schedule_scales_each_group(tmp_path) -> None:
    from conftest import quiet_trainer

    module = _module(
        optimizer="sgd",
        scheduler="poly",
        warmup_fraction=0.0,
        param_groups={"encoder": {"lr": 1e-3}, "decoder": {"lr": 1e-2}},
    )
    trainer = quiet_trainer(tmp_path, max_steps=10)
    module.trainer = trainer  # estimated_stepping_batches needs a trainer; no data is read
    config = module.configure_optimizers()
    scheduler = config["lr_scheduler"]["scheduler"]
    for _ in range(5):
        config["optimizer"].step()
        scheduler.step()
    lrs = {g["name"]: g["lr"] for g in config["optimizer"].param_groups}
    assert lrs["decoder"] / lrs["encoder"] == pytest.approx(10.0)
