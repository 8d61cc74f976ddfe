"""The loss composer: every term in one place, owned by its task; the weighting-free validation loss."""

from __future__ import annotations

import pytest
import torch

from densemtl.losses.compose import AuxiliaryTerm, LossComposer, LossTerms
from densemtl.training.module import DenseMTLModule

torch.set_num_threads(1)


def _batch(classes: int = 4, size: tuple[int, int] = (32, 32)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    semseg = torch.randint(0, classes, (2, *size), generator=g)
    semseg[:, :4] = 255
    return {
        "image": torch.rand(2, 3, *size, generator=g),
        "semseg": semseg,
        "depth": torch.rand(2, 1, *size, generator=g) + 0.5,
    }


def test_loss_terms_owners_grouping_and_total() -> None:
    terms = LossTerms(
        {"semseg": torch.tensor(1.0), "depth": torch.tensor(2.0), "depth:initial": torch.tensor(4.0)},
        {"semseg": "semseg", "depth": "depth", "depth:initial": "depth"},
    )
    assert terms.is_task_term("depth") and not terms.is_task_term("depth:initial")
    assert list(terms.extra()) == ["depth:initial"]
    grouped = terms.per_task(["semseg", "depth"])
    assert float(grouped["semseg"]) == 1.0 and float(grouped["depth"]) == 6.0
    assert float(terms.total()) == 7.0
    # a term of a task that is not trained joins the first task
    more = terms.with_terms({"normals:initial": torch.tensor(8.0)}, {"normals:initial": "normals"})
    assert float(more.per_task(["semseg", "depth"])["semseg"]) == 9.0


def test_composer_scores_declared_auxiliary_outputs_with_the_task_loss() -> None:
    composer = LossComposer(
        ["semseg", "depth"],
        {"depth": "l1"},
        {"depth:initial": AuxiliaryTerm("depth"), "normals:initial": AuxiliaryTerm("normals")},
        {"semseg": "cross_entropy", "depth": "l1", "normals": "cosine"},
    )
    batch = _batch()
    outputs = {
        "semseg": torch.randn(2, 4, 32, 32),
        "depth": torch.rand(2, 1, 32, 32) + 0.5,
        "depth:initial": torch.rand(2, 1, 32, 32) + 0.5,
        "normals:initial": torch.nn.functional.normalize(torch.randn(2, 3, 32, 32), dim=1),
    }
    terms = composer(outputs, batch)
    # normals has no label in this batch: left unsupervised
    assert list(terms) == ["semseg", "depth", "depth:initial"]
    expected = (outputs["depth:initial"] - batch["depth"]).abs().mean()
    assert torch.allclose(terms["depth:initial"], expected)
    assert terms.owner("depth:initial") == "depth"
    with pytest.raises(ValueError, match="does not declare"):
        composer({**outputs, "depth:mystery": outputs["depth"]}, batch)


def test_auxiliary_only_task_loss_gets_fitted_class_weights() -> None:
    """PAD-Net built its auxiliary-only losses inside every step, so class weights never reached them."""
    module = DenseMTLModule(
        model="pad_net",
        tasks=["depth"],
        num_classes=4,
        model_options={
            "backbone": {"name": "resnet18"},
            "task_channels": 16,
            "auxiliary_tasks": {"semseg": 4},
        },
    )
    assert "semseg:initial" in module.net.auxiliary_terms()
    assert "semseg:initial" in module.losses, "the auxiliary-only semseg loss lives in the composer"
    assert any(type(p).__name__ == "CrossEntropy" for p in module.losses.loss_parts())


def _module(weighting: str, **options) -> DenseMTLModule:
    torch.manual_seed(0)
    return DenseMTLModule(
        model="hard_sharing",
        num_classes=4,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        weighting=weighting,
        weighting_options=options,
    )


@pytest.mark.parametrize(("weighting", "options"), [("uncertainty", {"init_log_var": 1.0}), ("dwa", {})])
def test_validation_loss_does_not_depend_on_the_weighting(weighting: str, options: dict) -> None:
    batch = _batch()
    logged: dict[str, dict[str, float]] = {}
    for name, opts in (("fixed", {"weights": {"depth": 2.0}}), (weighting, options)):
        module = _module(name, **opts).eval()
        values: dict[str, float] = {}
        module.log = lambda key, value, _v=values, **kw: _v.__setitem__(key, float(value))  # type: ignore[method-assign]
        module.log_dict = lambda d, _v=values, **kw: _v.update({k: float(v) for k, v in d.items()})  # type: ignore[method-assign]
        with torch.no_grad():
            module.validation_step(batch, 1)
            weighted = float(
                module.weighting(module.compute_losses(module.predict_tasks(batch["image"]), batch))
            )
        logged[name] = values | {"weighted": weighted}
    fixed, other = logged["fixed"], logged[weighting]
    assert fixed["val/loss"] == pytest.approx(fixed["val/loss_semseg"] + fixed["val/loss_depth"], rel=1e-6)
    assert other["val/loss"] == pytest.approx(fixed["val/loss"], rel=1e-6)
    # the weighted sums differ, so monitoring them would make selection depend on the weighting
    assert abs(fixed["weighted"] - fixed["val/loss"]) > 1e-3


def test_validation_loss_includes_the_architectures_training_time_terms() -> None:
    torch.manual_seed(0)
    module = DenseMTLModule(
        model="xtasc_net",
        num_classes=4,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        losses={"depth": "xtasc_depth"},
        weighting="xtasc_groups",
    ).eval()
    batch = _batch(size=(32, 64))
    with torch.no_grad():
        terms = module.evaluation_terms(module.predict_tasks(batch["image"]), batch)
        assert set(module(batch["image"])) == {"semseg", "depth"}  # inference outputs stay task-only
    assert set(terms) == {"semseg", "depth", "depth:transfer", "semseg:transfer"}
    assert float(terms.total()) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-6)
