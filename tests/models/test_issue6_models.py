"""Issue 6 (seed 002) architectures: parameter counts for 40 classes + depth on the dilated
ResNet-50 (in Mi = params / 2^20, against the seed table), forward shapes and a training step.

Tolerances: STL / MTL are exact (Vandenhende's code is known). The rest must be within 1.5% of the
seed table, except two documented deviations (docs/methods.md, "Seed 002"): PAD-Net, whose
reference design (``padnet.py``) has 26.45 Mi against the table's 66.9 and no faithful variant near
it (asserted exactly, no tolerance: not padded), and MTI-Net, whose ResNet-50 level widths are our
choice (80.34 Mi vs 81.8, -1.8%: tolerance 2%).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from densemtl.models import build_model, model_names

torch.set_num_threads(1)

TASKS = {"semseg": 40, "depth": 1}
ISSUE6 = (
    "stl_aspp",
    "mtl_hps",
    "cross_stitch",
    "nddr_cnn",
    "mtan",
    "pad_net",
    "mti_net",
    "mtl_spp",
    "mtl_ssw",
)
# name -> (seed table Mi, relative tolerance, exact count of our model)
PUBLISHED = {
    "stl_aspp": (37.82 * 2, None, 79_277_481),  # two single-task networks
    "mtl_hps": (53.18, None, 55_769_449),
    "cross_stitch": (75.8, 0.015, 79_293_097),
    "nddr_cnn": (96.9, 0.015, 101_591_721),
    "mtan": (67.0, 0.015, 69_300_201),
    "pad_net": (66.9, None, 27_730_578),  # documented deviation: the reference design is 26.45 Mi
    "mti_net": (81.8, 0.02, 84_246_141),  # documented deviation: width choice on ResNet-50
    "mtl_spp": (83.9, 0.015, 87_800_169),
    "mtl_ssw": (89.9, 0.015, 94_100_845),
}
# small encoders for the shape / training tests (MTAN needs bottleneck blocks)
SMALL = {name: {"backbone": {"name": "resnet18", "output_stride": 8}} for name in ISSUE6}
SMALL["mtan"] = {"backbone": {"name": "resnet50", "output_stride": 8}}
SMALL["mti_net"] = {"backbone": {"name": "resnet18", "output_stride": 8}, "channels": [16, 32, 32, 64]}
SMALL["pad_net"] = {"backbone": {"name": "resnet18", "output_stride": 8}, "task_channels": 64}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_registered() -> None:
    assert set(ISSUE6) <= set(model_names())


@pytest.mark.parametrize("name", ISSUE6)
def test_parameter_count_matches_the_seed_table(name: str) -> None:
    with torch.device("meta"):
        model = build_model(name, tasks=TASKS)
    n = count(model)
    published, tol, exact = PUBLISHED[name]
    assert n == exact
    if tol is not None:
        assert abs(n / 2**20 - published) / published <= tol, (name, n / 2**20, published)


def test_stl_and_mtl_are_exact() -> None:
    with torch.device("meta"):
        seg = build_model("stl_aspp", tasks={"semseg": 40})
        mtl = build_model("mtl_hps", tasks=TASKS)
    assert count(seg) == 39_643_752 and round(count(seg) / 2**20, 2) == 37.81  # table: 37.82
    assert count(mtl) == 55_769_449 and round(count(mtl) / 2**20, 2) == 53.19  # table: 53.18


def test_ablation_counts() -> None:
    with torch.device("meta"):
        mtl_pp = build_model("mtl_spp", tasks=TASKS, task_stages=[], se=False)
        mtan_liu = build_model("mtan", tasks=TASKS, fusion="concat")
    assert abs(count(mtl_pp) / 2**20 - 66.43) / 66.43 < 0.001  # the paper's MTL_PP row
    assert count(mtan_liu) == 72_052_713


@pytest.mark.parametrize("name", ISSUE6)
def test_forward_shapes_eval(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, tasks={"semseg": 5, "depth": 1}, **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 40, 56))
    assert set(out) == {"semseg", "depth"}
    assert out["semseg"].shape == (1, 5, 40, 56) and out["depth"].shape == (1, 1, 40, 56)
    assert bool((out["depth"] > 0).all()) and bool(torch.isfinite(out["semseg"]).all())


@pytest.mark.parametrize("name", ISSUE6)
def test_training_step_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, tasks={"semseg": 5, "depth": 1}, **SMALL[name]).train()
    image = torch.rand(2, 3, 32, 48)
    semseg = torch.randint(0, 5, (2, 32, 48))
    depth = torch.rand(2, 1, 32, 48) + 0.5
    out = model(image)
    loss = 0.0
    for key, value in out.items():
        task = key.partition(":")[0]
        loss = loss + (F.cross_entropy(value, semseg) if task == "semseg" else F.l1_loss(value, depth))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    if name in ("pad_net", "mti_net"):
        assert any(":" in key for key in out)  # deep supervision


def test_pad_net_and_mti_net_variant_counts() -> None:
    """Exact counts of the configurations discussed in docs/methods.md (none within 1.5% of the table)."""
    aux = ("edge", "normals")  # Vandenhende's pad_net+edges_normals.yml / mti_net+edges_normals.yml
    expected = [
        ("pad_net", {"auxiliary_tasks": aux}, 34_010_774),  # 32.44 Mi
        ("pad_net", {"initial_block": "basic"}, 40_199_826),  # 38.34 Mi (MTI-Net's initial module)
        ("pad_net", {"initial_block": "basic", "auxiliary_tasks": aux}, 58_949_270),  # 56.22 Mi
        ("mti_net", {"auxiliary_tasks": aux}, 163_311_741),  # 155.75 Mi
        ("mti_net", {"channels": (48, 96, 192, 384)}, 57_956_385),  # 55.27 Mi
        ("mti_net", {"channels": (48, 96, 192, 384), "auxiliary_tasks": aux}, 102_436_261),  # 97.69 Mi
    ]
    for name, options, exact in expected:
        with torch.device("meta"):
            model = build_model(name, tasks=TASKS, **options)
        assert count(model) == exact, (name, options, count(model))


@pytest.mark.parametrize("name", ["pad_net", "mti_net"])
def test_auxiliary_tasks_are_deep_supervised_when_labelled(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(
        name, tasks={"semseg": 5, "depth": 1}, auxiliary_tasks=("edge", "normals"), **SMALL[name]
    ).train()
    image = torch.rand(2, 3, 32, 48)
    out = model(image)
    aux_keys = {k for k in out if k.partition(":")[0] in ("edge", "normals")}
    assert aux_keys and {k.partition(":")[0] for k in aux_keys} == {"edge", "normals"}
    assert all(out[k].shape[1] == (1 if k.startswith("edge") else 3) for k in aux_keys)
    normals = F.normalize(torch.rand(2, 3, 32, 48) - 0.5, dim=1)
    batch = {"semseg": torch.randint(0, 5, (2, 32, 48)), "depth": torch.rand(2, 1, 32, 48) + 0.5}
    batch["normals"] = normals
    from densemtl.losses.compose import LossComposer

    composer = LossComposer(
        ["semseg", "depth"],
        {"semseg": "cross_entropy", "depth": "l1"},
        model.auxiliary_terms(),
        {"normals": "cosine"},
    )
    terms = composer.auxiliary_terms(out, batch)
    # main tasks' deep supervision + normals (labelled); edges have no label here: not scored
    assert {k for k in terms if k.startswith("normals:")} == {k for k in aux_keys if k.startswith("normals:")}
    assert not any(k.startswith("edge:") for k in terms)
    assert any(k.startswith("semseg:") for k in terms) and any(k.startswith("depth:") for k in terms)
    total = sum(terms.values()) + F.cross_entropy(out["semseg"], batch["semseg"])
    total = total + F.l1_loss(out["depth"], batch["depth"])
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing and all("edge" in n for n in missing), missing  # only the unlabelled edge decoders
    del batch["normals"]
    assert not any(k.startswith("normals:") for k in composer.auxiliary_terms(out, batch))
    model.eval()
    with torch.no_grad():
        assert set(model(image)) == {"semseg", "depth"}


def test_auxiliary_task_needs_channels() -> None:
    with pytest.raises(ValueError, match="output channels"):
        build_model("pad_net", tasks=TASKS, auxiliary_tasks=("boundaries",), **SMALL["pad_net"])
    model = build_model("pad_net", tasks=TASKS, auxiliary_tasks={"boundaries": 2}, **SMALL["pad_net"])
    assert model.auxiliary_tasks == {"semseg": 40, "depth": 1, "boundaries": 2}


def test_cross_task_initialisations() -> None:
    cs = build_model("cross_stitch", tasks=TASKS, **SMALL["cross_stitch"])
    unit = cs.units["layer4"]
    assert torch.allclose(unit.weights["semseg__semseg"], torch.tensor(0.9))
    assert torch.allclose(unit.weights["semseg__depth"], torch.tensor(0.1))
    nddr = build_model("nddr_cnn", tasks=TASKS, **SMALL["nddr_cnn"])
    w = nddr.nddr["conv"].layers["depth"][0].weight[:, :, 0, 0]
    assert torch.allclose(w[:, :64], 0.1 * torch.eye(64)) and torch.allclose(w[:, 64:], 0.9 * torch.eye(64))
    ssw = build_model("mtl_ssw", tasks=TASKS, sw_init=(0.2, 0.8), **SMALL["mtl_ssw"])
    assert torch.allclose(ssw.sw["branch"].weight, torch.tensor([[0.2, 0.8], [0.8, 0.2]]))


def test_ssw_without_attention_is_the_weight_matrix() -> None:
    model = build_model(
        "mtl_ssw", tasks=TASKS, sw_attention=False, sw_positions=["branch", "head"], **SMALL["mtl_ssw"]
    ).eval()
    a, b = torch.rand(1, 4, 3, 3), torch.rand(1, 4, 3, 3)
    mixed = model.sw["branch"]({"semseg": a, "depth": b})
    assert torch.allclose(mixed["semseg"], 0.9 * a + 0.1 * b) and torch.allclose(
        mixed["depth"], 0.1 * a + 0.9 * b
    )
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 48))["semseg"].shape == (1, 40, 32, 48)


def test_mtan_on_a_basic_block_resnet() -> None:
    """ResNet-18/34 have no bottlenecks: MTAN's shared refinement blocks become BasicBlocks."""
    from densemtl.models.backbones.resnet import BasicBlock

    torch.manual_seed(0)
    model = build_model("mtan", tasks={"semseg": 5, "depth": 1}, backbone={"name": "resnet18"}).train()
    assert all(isinstance(block, BasicBlock) for block in model.refine)
    out = model(torch.rand(2, 3, 32, 48))
    assert out["semseg"].shape == (2, 5, 32, 48)
    (out["semseg"].mean() + out["depth"].mean()).backward()
    assert all(p.grad is not None for p in model.attention.parameters())
