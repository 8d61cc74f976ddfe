"""OpenVINO backend: IR export (fp32 parity, metadata in rt_info), NNCF int8, ``predict`` on an IR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from test_deploy import _flip_checkpoint
from test_export import SIZE, _write_images, realistic_model

from densemtl.cli import main
from densemtl.data import io
from densemtl.errors import ConfigError
from densemtl.inference import export

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

from densemtl.inference import openvino as ovb  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ir_parity_metadata_and_int8(tmp_path: Path) -> None:
    model = realistic_model({"semseg": 5, "depth": 1, "normals": 3})
    xml = tmp_path / "m.xml"
    names = ovb.export_openvino(model, xml, SIZE, outputs=["semseg", "depth", "normals"], flip=True)
    assert names == ["semseg", "depth", "normals"] and xml.with_suffix(".bin").is_file()
    compiled = ovb.compile_model(xml, threads=1)
    diffs = export.onnx_parity(
        model, xml, SIZE, outputs=names, flip=True, run=lambda _n, feed: list(compiled(feed).values())
    )
    assert max(diffs.values()) < 1e-4, diffs  # fp32 weights kept (no fp16 compression)
    ir = ov.Core().read_model(str(xml))
    meta = ovb.read_ir_metadata(ir)
    assert meta["flip"] == "true" and meta["outputs"] == "semseg,depth,normals" and meta["size"] == "64x96"
    # NNCF int8: FakeQuantize nodes, the metadata kept, outputs following fp32
    calibration = export.calibration_images(_write_images(tmp_path / "calib", 3, (80, 120)), SIZE, 3)
    int8 = ovb.quantize_openvino_int8(xml, ovb.int8_ir_path(xml), calibration)
    assert int8.name == "m_int8.xml"
    q = ov.Core().read_model(str(int8))
    assert any(op.get_type_name() == "FakeQuantize" for op in q.get_ops())
    assert ovb.read_ir_metadata(q)["precision"] == "int8"
    ref = compiled(calibration[0])
    got = ovb.compile_model(int8, threads=1)(calibration[0])
    for r, g in zip(ref.values(), got.values()):
        assert np.isfinite(g).all() and np.corrcoef(r.ravel(), g.ravel())[0, 1] > 0.95
    profile = ovb.layer_profile(
        ovb.compile_model(xml, threads=1, perf_count=True), {"image": calibration[0]}, 2
    )
    assert profile["total_ms"] > 0 and any(k.startswith("Convolution") for k in profile["by_type_ms"])


def test_export_and_predict_with_openvino(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``export --format openvino`` (+ ``--int8``) and ``predict`` on the IR agree with the checkpoint."""
    ckpt = _flip_checkpoint(tmp_path)
    size = "x".join(map(str, SIZE))
    xml = tmp_path / "ir" / "m.xml"
    calib = _write_images(tmp_path / "calib", 2, SIZE)
    args = ["export", "--ckpt", str(ckpt), "--format", "openvino", "--size", size, "--out", str(xml)]
    assert main([*args, "--int8", "--calibration-images", str(calib)]) == 0
    out = capsys.readouterr().out
    assert "OpenVINO vs PyTorch" in out and "int8, calibrated on 2 image(s)" in out
    assert (tmp_path / "ir" / "m_int8.xml").is_file()
    images = _write_images(tmp_path / "in", 2, SIZE)
    common = ["predict", "--ckpt", str(ckpt), "--input", str(images), "--no-panel"]
    assert main([*common, "--output", str(tmp_path / "torch"), "--size", size]) == 0
    assert main([*common, "--output", str(tmp_path / "ov"), "--onnx", str(xml)]) == 0  # .xml -> OpenVINO
    for name in ("img_000", "img_001"):
        d_torch = np.load(tmp_path / "torch" / "depth" / f"{name}.npy")
        assert np.abs(np.load(tmp_path / "ov" / "depth" / f"{name}.npy") - d_torch).max() <= 1e-4
        l_torch = io.read_label_png(tmp_path / "torch" / "semantic" / f"{name}.png")
        assert (io.read_label_png(tmp_path / "ov" / "semantic" / f"{name}.png") == l_torch).mean() >= 0.999
    with pytest.raises(ConfigError, match=r"must end in \.xml"):
        ovb.export_openvino(realistic_model({"semseg": 3}), tmp_path / "m.onnx", SIZE)
    assert main([*common, "--output", str(tmp_path / "x"), "--backend", "openvino"]) == 2
    assert "give it with --onnx FILE" in capsys.readouterr().err


def test_bf16_precision_is_asked_for_and_refused_where_it_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``precision="bf16"`` runs the float layers in bf16 (close to f32, not equal); an unknown
    precision, bf16 on a CPU without bf16 units, or ``--precision`` without OpenVINO is one line."""
    model = realistic_model({"semseg": 5, "depth": 1})
    xml = tmp_path / "m.xml"
    ovb.export_openvino(model, xml, SIZE, outputs=["semseg", "depth"])
    image = np.random.default_rng(0).random((1, 3, *SIZE), dtype=np.float32)
    with pytest.raises(ConfigError, match="precision must be one of f32, bf16"):
        ovb.compile_model(xml, threads=1, precision="fp8")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(ConfigError, match="no bf16 units"):
            ovb.compile_model(xml, threads=1, precision="bf16")
        return
    f32 = list(ovb.compile_model(xml, threads=1)(image).values())
    bf16 = list(ovb.compile_model(xml, threads=1, precision="bf16")(image).values())
    for a, b in zip(f32, bf16):
        assert not np.array_equal(a, b)  # really bf16, not the f32 kernels under another name
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    runner = ovb.OpenVINOTasks(xml, threads=1, precision="bf16")
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    ckpt = _flip_checkpoint(tmp_path)
    images = _write_images(tmp_path / "in", 1, SIZE)
    common = ["predict", "--ckpt", str(ckpt), "--input", str(images), "--no-panel", "--precision", "bf16"]
    assert main([*common, "--output", str(tmp_path / "a")]) == 2
    assert "--precision bf16 runs an exported file" in capsys.readouterr().err
    onnx = tmp_path / "m.onnx"
    export.export_onnx(model, onnx, SIZE, outputs=["semseg", "depth"])
    assert (
        main([*common, "--output", str(tmp_path / "b"), "--onnx", str(onnx), "--backend", "onnxruntime"]) == 2
    )
    assert "is an OpenVINO setting" in capsys.readouterr().err
