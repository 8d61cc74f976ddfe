"""Pretrained loading: every file variant, every bad file, and the real ImageNet MobileNetV2 check."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from densemtl.errors import DataError
from densemtl.models.backbones import build_backbone, mobilenet_v2
from densemtl.models.backbones.weights import load_pretrained, load_state_dict_file

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
PHOTOS = SHARED / "data" / "photos"
REAL_SHA256 = "5203497587f930737c96575bc61b84eac495afdeb5d69732294f0c87d4e65516"
EXPECTED_TOP1 = {"samoyed_dog.jpg": 258, "tabby_kitten.jpg": 281, "lion.jpg": 291, "sports_car.jpg": 817}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Intra-op threads spin-wait: with pytest-xdist workers sharing few cores they make small
    convolutions 5-10x slower, so these tests use one thread and restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Tiny(nn.Module):
    """A miniature backbone-with-head: conv1 / bn1 / fc like a ResNet."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)


class Opaque:
    """Not a tensor: weights_only must refuse to unpickle it."""


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.fixture
def tiny_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in Tiny().state_dict().items()}


# ----------------------------------------------------------------------------- good variants


def test_plain_nested_prefixed_and_safetensors(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    variants = {
        "plain.pth": tiny_sd,
        "nested_state_dict.pt": {"state_dict": tiny_sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        "nested_model.pth": {"model": tiny_sd, "args": "x"},
        "ddp.pth": {f"module.{k}": v for k, v in tiny_sd.items()},
        "lightning_ddp.ckpt": {"state_dict": {f"module.{k}": v for k, v in tiny_sd.items()}},
    }
    for name, obj in variants.items():
        sd = load_state_dict_file(save(obj, tmp_path / name))
        assert sd.keys() == tiny_sd.keys(), name
        assert all(torch.equal(sd[k], tiny_sd[k]) for k in sd), name
    save_file(tiny_sd, str(tmp_path / "w.safetensors"))
    sd = load_state_dict_file(tmp_path / "w.safetensors")
    assert all(torch.equal(sd[k], tiny_sd[k]) for k in tiny_sd)

    model = Tiny()
    result = load_pretrained(model, tmp_path / "ddp.pth")
    assert set(result.loaded) == set(tiny_sd)
    assert all(torch.equal(model.state_dict()[k], tiny_sd[k]) for k in tiny_sd)


def test_head_of_another_size_and_old_bn_buffers(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    old = {k: v for k, v in tiny_sd.items() if not k.endswith("num_batches_tracked")}  # 2017 files
    path = save(old, tmp_path / "old.pth")
    model = Tiny(num_classes=3)
    result = load_pretrained(model, path)  # fc tolerated (ignore_prefixes), the rest loaded
    assert result.mismatched == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, tiny_sd["conv1.weight"])
    with pytest.raises(
        DataError, match=r"2 mis-shaped keys: fc\.weight \(file \[10, 4\] vs model \[3, 4\]\)"
    ):
        load_pretrained(Tiny(num_classes=3), path, ignore_prefixes=())


def test_features_only_backbone_loads_a_full_checkpoint(tmp_path: Path) -> None:
    full = build_backbone("mobilenet_v2")
    path = save(full.state_dict(), tmp_path / "mnv2.pth")
    enc = build_backbone("mobilenet_v2", weights=path, features_only=True)  # features.18 + classifier dropped
    assert torch.equal(enc.features[17].conv[2].weight, full.features[17].conv[2].weight)
    enc = build_backbone("resnet18", features_only=True)
    result = load_pretrained(enc, save(build_backbone("resnet18").state_dict(), tmp_path / "r18.pth"))
    assert result.unexpected == ["fc.weight", "fc.bias"]


def test_key_map(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    path = save(
        {f"encoder.{k}": v for k, v in tiny_sd.items()} | {"decoder.w": torch.zeros(1)}, tmp_path / "m.pth"
    )
    with pytest.raises(DataError, match="shares no parameter name"):
        load_pretrained(Tiny(), path)
    assert len(load_pretrained(Tiny(), path, key_map={"encoder.": ""}, strict=False).loaded) == len(tiny_sd)

    def rename(k: str) -> str | None:
        return k.removeprefix("encoder.") if k.startswith("encoder.") else None

    assert len(load_pretrained(Tiny(), path, key_map=rename).loaded) == len(tiny_sd)


# ----------------------------------------------------------------------------- bad files


def test_missing_unexpected_and_truncated_listing(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    sd = {k: v for k, v in tiny_sd.items() if k != "bn1.weight"}
    sd |= {f"extra.{i}.weight": torch.zeros(1) for i in range(20)}
    with pytest.raises(DataError) as exc:
        load_pretrained(Tiny(), save(sd, tmp_path / "w.pth"))
    text = one_line(exc)
    assert "does not fit Tiny" in text
    assert "1 missing keys: bn1.weight" in text
    assert "20 unexpected keys: extra.0.weight" in text and "(+15 more)" in text
    result = load_pretrained(Tiny(), tmp_path / "w.pth", strict=False)
    assert result.missing == ["bn1.weight"] and len(result.unexpected) == 20


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="weights file not found") as exc:
        load_state_dict_file(tmp_path / "nope.pth")
    one_line(exc)


def test_truncated_and_garbage_files(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    data = save(tiny_sd, tmp_path / "ok.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all" * 4)
    (tmp_path / "empty.pth").write_bytes(b"")
    for name, pattern in [
        ("trunc.pth", "truncated or corrupt"),
        ("garbage.pth", "torch.load"),
        ("empty.pth", "empty"),
    ]:
        with pytest.raises(DataError, match=pattern) as exc:
            load_state_dict_file(tmp_path / name)
        assert one_line(exc).startswith(str(tmp_path / name))
    save_file(tiny_sd, str(tmp_path / "ok.safetensors"))
    blob = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(blob[:-7])
    with pytest.raises(DataError, match="not a valid safetensors file") as exc:
        load_state_dict_file(tmp_path / "bad.safetensors")
    one_line(exc)


def test_pickles_that_are_not_state_dicts(tmp_path: Path) -> None:
    cases = {
        "list.pth": ([torch.zeros(2)], "holds a list, not a state dict"),
        "scalars.pth": ({"epoch": 3, "lr": 0.1}, r"not a state dict: 2 of 2 entries.*'epoch': int"),
        "empty_dict.pth": ({}, "empty state dict"),
        "tensor.pth": (torch.zeros(3), "holds a Tensor, not a state dict"),
    }
    for name, (obj, pattern) in cases.items():
        with pytest.raises(DataError, match=pattern) as exc:
            load_state_dict_file(save(obj, tmp_path / name))
        one_line(exc)


def test_arbitrary_pickled_objects_are_refused(tmp_path: Path) -> None:
    for name, obj in {"object.pth": {"w": Opaque()}, "module.pth": nn.Linear(2, 2)}.items():
        with pytest.raises(DataError, match=r"refused by torch.load\(weights_only=True\)") as exc:
            load_state_dict_file(save(obj, tmp_path / name))
        text = one_line(exc)
        assert "Opaque" in text or "Linear" in text


def test_wrong_network(tmp_path: Path) -> None:
    path = save(build_backbone("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(
        DataError, match=r"does not fit ResNet: .*mis-shaped keys: layer1\.0\.conv1\.weight"
    ) as exc:
        build_backbone("resnet50", weights=path)
    one_line(exc)


# ----------------------------------------------------------------------------- real weights


def imagenet_preprocess(path: Path) -> torch.Tensor:
    """torchvision's eval transform: Resize(256) (bilinear, shorter side), CenterCrop(224), ToTensor,
    Normalize(ImageNet mean / std), with PIL + numpy."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    left, top = round((size[0] - 224) / 2.0), round((size[1] - 224) / 2.0)
    img = img.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - IMAGENET_MEAN) / IMAGENET_STD


@pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="../shared (real ImageNet weights) not available")
def test_mobilenet_v2_real_imagenet_weights_classify_photos() -> None:
    assert hashlib.sha256(REAL_WEIGHTS.read_bytes()).hexdigest() == REAL_SHA256
    model = mobilenet_v2(weights=REAL_WEIGHTS).eval()  # strict: every torchvision key and shape matches
    assert set(torch.load(REAL_WEIGHTS, weights_only=True)) == set(model.state_dict())
    batch = torch.stack([imagenet_preprocess(PHOTOS / name) for name in EXPECTED_TOP1])
    with torch.inference_mode():
        probs = model(batch).softmax(dim=1)
    top1 = dict(zip(EXPECTED_TOP1, probs.argmax(dim=1).tolist()))
    assert top1 == EXPECTED_TOP1
    assert probs.max(dim=1).values.min() > 0.4  # confident, not a lucky argmax
