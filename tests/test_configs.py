"""The shipped configs: no developer-only paths, and the paper configs' deliberate settings
(MT-RefineNet's inference and optimiser, XTasC-Net's input pre-processing)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import densemtl
from densemtl.errors import DataError

torch.set_num_threads(1)

CONFIGS = Path(densemtl.__file__).parent / "configs"
MT_REFINENET = [
    "nyud40_mt_refinenet",
    "nyud_3task_mt_refinenet",
    "kitti6_mt_refinenet",
    "nyud_kitti_joint_mt_refinenet",
]


def _model_spec(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]


def test_no_shipped_config_names_a_developer_path() -> None:
    files = sorted(CONFIGS.rglob("*.yaml"))
    assert files
    offenders = [f.name for f in files if "../shared" in f.read_text() or "/work/" in f.read_text()]
    assert offenders == []


@pytest.mark.parametrize("name", MT_REFINENET)
def test_mt_refinenet_paper_configs(name: str) -> None:
    spec = _model_spec(name)
    options = spec["model_options"]
    assert options["encoder_weights"] == "weights/mobilenet_v2_imagenet.pth"
    assert options["depth_activation"] == "abs" and options["upsample"] == "bicubic"
    assert spec["optimizer"] == "sgd"
    assert spec["param_groups"] == {"encoder": {"lr": 0.001}, "decoder": {"lr": 0.01}}


def test_missing_encoder_weights_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from densemtl.training.module import DenseMTLModule

    monkeypatch.chdir(tmp_path)
    spec = _model_spec("nyud40_mt_refinenet")
    spec["model_options"].update(channels=16, crp_stages=1)
    with pytest.raises(DataError) as info:
        DenseMTLModule(**spec, num_classes=40)
    message = str(info.value)
    assert (
        "\n" not in message
        and message.startswith("weights/mobilenet_v2_imagenet.pth: ")
        and "not found" in message
    )


def _keys_cubic_1d(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of OpenCV's INTER_CUBIC (a = -0.75, half-pixel centres, edge clamp)."""

    def kernel(t: float) -> float:
        a, t = -0.75, abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = (i + 0.5) * n_in / n_out - 0.5
        x0 = math.floor(x)
        for k in range(x0 - 1, x0 + 3):
            weights[i, min(max(k, 0), n_in - 1)] += kernel(x - k)
    return weights


def test_bicubic_upsample_and_abs_depth_match_the_authors_inference() -> None:
    from densemtl.models import build_model

    torch.manual_seed(0)
    model = build_model(
        "mt_refinenet",
        tasks={"semseg": 3, "depth": 1},
        channels=16,
        crp_stages=1,
        depth_activation="abs",
        upsample="bicubic",
    ).eval()
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        raw = model.forward_tasks((image - model.pixel_mean) / model.pixel_std)
        out = model(image)
    wy, wx = _keys_cubic_1d(raw["semseg"].shape[-2], 64), _keys_cubic_1d(raw["semseg"].shape[-1], 96)
    for task in ("semseg", "depth"):
        expected = np.einsum("yh,bchw,xw->bcyx", wy, raw[task].double().numpy(), wx)
        if task == "depth":
            expected = np.abs(expected)
        assert np.allclose(out[task].numpy(), expected, atol=1e-5), task
    default = build_model("mt_refinenet", tasks={"semseg": 3, "depth": 1}, channels=16, crp_stages=1)
    assert default.upsample == "bilinear" and default.depth_activation == "exp"


def test_nyu13_xtasc_feeds_unnormalised_images() -> None:
    from densemtl.training.module import DenseMTLModule

    spec = _model_spec("nyu13_xtasc_net")
    assert spec["model_options"]["mean"] == [0.0, 0.0, 0.0] and spec["model_options"]["std"] == [
        1.0,
        1.0,
        1.0,
    ]
    spec["model_options"].update(backbone="resnet18", decoder_channels=8)
    torch.manual_seed(0)
    net = DenseMTLModule(**spec, num_classes=13).net.eval()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(image)["semseg"], net.forward_tasks(image)["semseg"])


def test_cityscapes_xtasc_resizes_images_nearest_and_the_default_stays_bilinear() -> None:
    from densemtl.data.datamodule import DenseDataModule
    from densemtl.data.transforms import Resize

    data = yaml.safe_load((CONFIGS / "cityscapes7_xtasc_net.yaml").read_text())["data"]
    assert data["image_interpolation"] == "nearest"
    assert DenseDataModule(dataset="synthetic").hparams.image_interpolation == "bilinear"
    image = torch.rand(3, 8, 12)
    sample = {"image": image, "semseg": torch.zeros(8, 12, dtype=torch.long), "meta": {}}
    out = Resize((4, 5), "nearest")(sample)["image"]
    rows, cols = [math.floor(i * 8 / 4) for i in range(4)], [math.floor(j * 12 / 5) for j in range(5)]
    assert torch.equal(out, image[:, rows][:, :, cols])
    bilinear = Resize((4, 5))(sample)["image"]
    antialiased = torch.nn.functional.interpolate(image[None], (4, 5), mode="bilinear", antialias=True)[0]
    assert torch.equal(bilinear, antialiased.clamp(0, 1))
