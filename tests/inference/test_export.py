"""``densemtl export`` (ONNX parity with ONNX Runtime, TorchScript) and ``densemtl benchmark`` at a tiny size."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from densemtl.analysis import benchmark
from densemtl.cli import benchmark as benchmark_cli
from densemtl.cli import export as export_cli
from densemtl.errors import ConfigError
from densemtl.inference import export
from densemtl.models import build_model

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
SIZE = (64, 96)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def realistic_model(tasks: dict[str, int], encoder_weights: str | None = None) -> torch.nn.Module:
    """An mt_refinenet whose outputs have trained-like magnitudes, so parity is not trivially met.

    BN statistics are calibrated on random images (unless ImageNet weights are loaded) and the last
    head convs rescaled so logits have std ~3 (max ~10) and depths reach several metres. The decoder
    keeps the authors' N(0, 0.01) init: a randomly initialised Kaiming decoder is chaotic (fp32
    PyTorch itself then differs from float64 by ~1e-3), which says nothing about the exporter.
    """
    torch.manual_seed(0)
    model = build_model("mt_refinenet", tasks=tasks, encoder_weights=encoder_weights)
    if encoder_weights is None:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        with torch.no_grad():
            model.train()(torch.rand(2, 3, *SIZE))
    model.eval()
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        raw = model.forward_tasks((x - model.pixel_mean) / model.pixel_std)
        for task in tasks:
            head = model.heads[task].predict
            head.weight.mul_((3.0 if task == "semseg" else 0.5) / float(raw[task].std()))
        if "depth" in tasks:
            model.heads["depth"].predict.bias.fill_(1.0)  # exp(1) ~ 2.7 m typical depth
    return model


def test_onnx_parity_static(tmp_path: Path) -> None:
    model = realistic_model({"semseg": 40, "depth": 1})
    with torch.no_grad():
        out = model(torch.rand(1, 3, *SIZE))
    assert float(out["semseg"].abs().max()) > 3.0 and float(out["depth"].max()) > 3.0
    path = tmp_path / "m.onnx"
    assert export.export_onnx(model, path, SIZE) == ["semseg", "depth"]
    diffs = export.onnx_parity(model, path, SIZE)
    assert set(diffs) == {"semseg", "depth"}
    assert max(diffs.values()) <= 1e-4, diffs


def test_mt_refinenet_onnx_graph_keeps_relu6_fusable(tmp_path: Path) -> None:
    """``for_onnx`` changes no number, and every exported ReLU6 (``Clip``) follows a ``Conv``: a clip
    after an ``Add`` has no NCHWc kernel in ONNX Runtime and forces layout reorders (export.py)."""
    import onnx

    model = realistic_model({"semseg": 40, "depth": 1})
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        original, rewritten = model(x), model.for_onnx()(x)
    assert all(torch.equal(original[t], rewritten[t]) for t in original)
    assert sum(p.numel() for p in model.parameters()) == 3_070_057  # the model itself is untouched
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path, SIZE)
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    decoder_clips = [n for n in graph.node if n.op_type == "Clip" and n.name.startswith("/model/relu")]
    assert len(decoder_clips) == 4  # relu6(conv + conv [+ x]) at 1/32 .. 1/4
    assert all(producer.get(node.input[0]) == "Conv" for node in decoder_clips)


def test_onnx_parity_dynamic_three_tasks(tmp_path: Path) -> None:
    model = realistic_model({"semseg": 6, "depth": 1, "normals": 3})
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path, SIZE, dynamic=True)
    diffs = export.onnx_parity(model, path, (50, 70), batch=2)  # another batch and an odd size
    assert max(diffs.values()) <= 1e-4, diffs


@pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="../shared/weights not available")
def test_onnx_parity_imagenet_encoder(tmp_path: Path) -> None:
    model = realistic_model({"semseg": 40, "depth": 1}, encoder_weights=str(REAL_WEIGHTS))
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path, SIZE)
    assert max(export.onnx_parity(model, path, SIZE).values()) <= 1e-4


def test_torchscript_export(tmp_path: Path) -> None:
    model = realistic_model({"semseg": 5, "depth": 1})
    path = tmp_path / "m.pt"
    export.export_torchscript(model, path, SIZE)
    loaded = torch.jit.load(str(path))
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        got = loaded(x)
        ref = model(x)
    torch.testing.assert_close(got[0], ref["semseg"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1], ref["depth"], atol=1e-4, rtol=1e-4)


def _parse(module, argv: list[str]) -> argparse.Namespace:
    return module.add_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_export_cli_model_and_ckpt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    args = _parse(
        export_cli,
        [
            "--model",
            "mt_refinenet",
            "--num-classes",
            "7",
            "--format",
            "onnx",
            "--out",
            str(out),
            "--size",
            "32x48",
            "--dynamic",
        ],
    )
    assert export_cli.run(args) == 0
    assert out.is_file() and "max abs diff" in capsys.readouterr().out
    import onnx

    graph = onnx.load(str(out)).graph
    assert [o.name for o in graph.output] == ["semseg", "depth"]
    assert graph.input[0].type.tensor_type.shape.dim[2].dim_param == "height"
    # a checkpoint written by the LightningModule (what `densemtl fit` saves)
    from densemtl.training.module import DenseMTLModule

    module = DenseMTLModule(model="mt_refinenet", tasks=["semseg", "depth"], num_classes=3)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    ts = tmp_path / "m.pt"
    args = _parse(
        export_cli, ["--ckpt", str(ckpt), "--format", "torchscript", "--out", str(ts), "--size", "32x32"]
    )
    assert export_cli.run(args) == 0 and ts.is_file()
    with pytest.raises(SystemExit):
        _parse(export_cli, ["--format", "onnx", "--out", str(out)])  # neither --ckpt nor --model
    with pytest.raises(ConfigError):
        export.load_for_export(model="mobilenet_v2")  # a backbone is not a multi-task model


def test_benchmark_tiny(tmp_path: Path) -> None:
    """Every CPU path except ``compile`` (slow to compile here) at a tiny size, 2 runs."""
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Other section\n\nkept\n")
    js = tmp_path / "b.json"
    args = _parse(
        benchmark_cli,
        [
            "--model",
            "mt_refinenet",
            "--size",
            "32x48",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--paths",
            "eager,channels_last,torchscript,onnxruntime",
            "--matmul-size",
            "128",
            "--output",
            str(md),
            "--json",
            str(js),
        ],
    )
    assert benchmark_cli.run(args) == 0
    import json

    result = json.loads(js.read_text())
    assert result["matmul_gflops"] == max(result["matmul_gflops_before_after"]) > 0 and result["macs"] > 0
    assert [r["path"] for r in result["rows"]] == ["eager", "channels_last", "torchscript", "onnxruntime"]
    for row in result["rows"]:
        assert row["latency_ms_p90"] >= row["latency_ms_median"] > 0
        assert row["fraction_of_matmul"] == pytest.approx(row["effective_gflops"] / result["matmul_gflops"])
        assert row["max_abs_diff"] < 1e-3
    text = md.read_text()
    assert benchmark.SECTION in text and "## Other section" in text and "onnxruntime" in text
    # a second run replaces the section instead of appending another
    benchmark.update_section(md, benchmark.SECTION + "\n\nnew\n")
    assert md.read_text().count(benchmark.SECTION) == 1 and "kept" in md.read_text()


def test_benchmark_failing_path_is_reported() -> None:
    model = build_model("mt_refinenet", tasks={"semseg": 3, "depth": 1})
    result = benchmark.run_benchmark(model, (32, 32), ["eager", "fp16"], runs=1, warmup=0, matmul_size=64)
    assert "latency_ms_median" in result["rows"][0]
    assert "needs --device cuda" in result["rows"][1]["error"]


def _write_images(folder: Path, count: int, size: tuple[int, int]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator().manual_seed(1)
    for i in range(count):
        rgb = (torch.rand(*size, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(rgb).save(folder / f"img_{i:03d}.png")
    return folder


def test_int8_export_is_quantised_and_close_to_fp32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import onnx

    model = realistic_model({"semseg": 5, "depth": 1})
    fp32 = tmp_path / "m.onnx"
    export.export_onnx(model, fp32, SIZE)
    images = _write_images(tmp_path / "calib", 4, (80, 120))  # resized to SIZE like predict does
    calibration = export.calibration_images(images, SIZE, count=3)
    assert len(calibration) == 3 and calibration[0].shape == (1, 3, *SIZE)
    int8 = export.quantize_onnx_int8(fp32, tmp_path / "m_int8.onnx", calibration)
    graph = onnx.load(str(int8)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.initializer)  # int8 weights stored
    x = calibration[0]
    ref = export.onnx_session(fp32).run(None, {"image": x})
    got = export.onnx_session(int8).run(None, {"image": x})
    for r, g in zip(ref, got):
        assert r.shape == g.shape and np.isfinite(g).all()
        # int8 follows fp32 closely (a wrong scale or zero point would not); random weights and
        # images make this a loose check: the accuracy on real data is measured in docs/benchmarks.md
        assert np.corrcoef(r.ravel(), g.ravel())[0, 1] > 0.95
        assert np.abs(r - g).mean() < 0.3 * r.std()
    # the CLI writes <stem>_int8.onnx next to the fp32 file, and refuses without calibration images
    out = tmp_path / "cli" / "m.onnx"
    base = [
        "--model",
        "mt_refinenet",
        "--num-classes",
        "3",
        "--format",
        "onnx",
        "--out",
        str(out),
        "--size",
        "32x32",
    ]
    assert (
        export_cli.run(
            _parse(export_cli, [*base, "--int8", "--calibration-images", str(images), "--no-check"])
        )
        == 0
    )
    assert (
        tmp_path / "cli" / "m_int8.onnx"
    ).is_file() and "int8, calibrated on 4 image(s)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="calibration-images"):
        export_cli.run(_parse(export_cli, [*base, "--int8"]))
    with pytest.raises(ConfigError, match="fixed --size"):
        export_cli.run(
            _parse(export_cli, [*base, "--int8", "--dynamic", "--calibration-images", str(images)])
        )


def test_predict_runs_an_exported_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from densemtl.cli import main
    from densemtl.data import io
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    module = DenseMTLModule(model="mt_refinenet", tasks=["semseg", "depth"], num_classes=3)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    onnx_file = tmp_path / "m.onnx"
    export.export_onnx(module.net.eval(), onnx_file, (32, 48))
    images = _write_images(tmp_path / "in", 2, (40, 60))
    common = ["predict", "--ckpt", str(ckpt), "--input", str(images), "--no-panel"]
    assert main([*common, "--output", str(tmp_path / "onnx"), "--onnx", str(onnx_file)]) == 0
    assert main([*common, "--output", str(tmp_path / "torch"), "--size", "32x48"]) == 0
    for name in ("img_000", "img_001"):
        d_onnx = np.load(tmp_path / "onnx" / "depth" / f"{name}.npy")
        d_torch = np.load(tmp_path / "torch" / "depth" / f"{name}.npy")
        assert d_onnx.shape == (40, 60) and np.allclose(d_onnx, d_torch, atol=1e-4)
        assert io.read_label_png(tmp_path / "onnx" / "semantic" / f"{name}.png").shape == (40, 60)
    # bad input: one-line errors naming the problem (and the file)
    assert main([*common, "--output", str(tmp_path / "x"), "--onnx", str(onnx_file), "--size", "64x64"]) == 2
    assert "differs from the ONNX file's fixed input size" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main([*common, "--output", str(tmp_path / "x"), "--onnx", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"densemtl: error: {bad}: not a loadable ONNX model")
        and len(err.strip().splitlines()) == 1
    )


def test_benchmark_int8_path() -> None:
    model = realistic_model({"semseg": 3, "depth": 1})
    result = benchmark.run_benchmark(
        model, SIZE, ["onnxruntime", "onnxruntime_int8"], runs=1, warmup=0, matmul_size=64
    )
    fp32, int8 = result["rows"]
    assert "error" not in int8 and int8["latency_ms_median"] > 0
    # quantised numerics differ from eager, unlike the fp32 ONNX graph
    assert fp32["max_abs_diff"] < 1e-4 < int8["max_abs_diff"]
