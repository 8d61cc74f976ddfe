"""``densemtl profile``: exact counts on known networks, the JSON report, the CLI and --all."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from densemtl.analysis.profile import (
    BENCHMARK_SECTION,
    JSON_KEYS,
    parse_tasks,
    profile_model,
    resolve_model,
    update_benchmarks_section,
)
from densemtl.cli.args import parse_size
from densemtl.cli.profile import add_arguments, run
from densemtl.errors import ConfigError, DataError
from densemtl.models.backbones import build_backbone


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Intra-op threads spin-wait and crawl when xdist workers share few cores: use one here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def parse(*argv: str) -> argparse.Namespace:
    return add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_single_conv_is_counted_exactly() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)  # 16x20 -> 8x10
    res = profile_model(conv, input_size=(16, 20), batch=2, warmup=1, runs=3)
    assert res["params"] == 8 * 3 * 3 * 3 + 8
    assert res["params_mi"] == res["params"] / 2**20
    assert res["macs"] == 8 * 3 * 3 * 3 * 8 * 10  # Cout*Cin*k*k*Hout*Wout, per image
    assert res["flops"] == 2 * res["macs"]
    assert res["latency_ms_p90"] >= res["latency_ms_median"] > 0
    assert res["throughput"] == pytest.approx(2 * 1000 / res["latency_ms_median"])
    assert res["peak_memory_mb"] >= 0 and res["peak_memory_kind"].startswith("cpu_")
    assert set(JSON_KEYS) <= set(res)


def test_resnet18_macs_match_the_literature() -> None:
    res = profile_model(build_backbone("resnet18"), input_size=(224, 224), warmup=0, runs=1)
    assert res["params"] == 11_689_512
    assert res["macs"] == pytest.approx(1.82e9, rel=0.01)  # torchvision / He et al.: 1.8 GFLOPs (MACs)


def test_run_on_a_backbone_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    args = parse(
        "--model", "mobilenet_v2", "--size", "64x96", "--warmup", "1", "--runs", "2", "--json", str(out)
    )
    assert run(args) == 0
    report = json.loads(out.read_text())
    assert set(JSON_KEYS) <= set(report)
    assert report["model"] == "mobilenet_v2" and report["kind"] == "backbone"
    assert report["params"] == 3_504_872 - (1280 * 1000 + 1000) - (1280 * 320 + 2 * 1280)  # features_only
    assert report["input_size"] == [64, 96]
    assert "AMD" in report["machine"] or "cores" in report["machine"]
    assert "mobilenet_v2" in capsys.readouterr().out


def test_argument_errors() -> None:
    assert parse_size("480x640") == (480, 640) and parse_size("256") == (256, 256)
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        parse_size("480by640")
    assert parse_tasks("semseg,depth,normals", num_classes=13) == {"semseg": 13, "depth": 1, "normals": 3}
    with pytest.raises(ConfigError, match="unknown or empty task"):
        parse_tasks("semseg,edges")
    with pytest.raises(ConfigError, match=r"unknown model 'nope'.*backbones: mobilenet_v2"):
        resolve_model("nope")
    with pytest.raises(DataError, match="config file not found"):
        resolve_model("missing.yaml")


def test_config_file_model(tmp_path: Path) -> None:
    pytest.importorskip("densemtl.models", reason="models package not available")
    from densemtl.analysis.profile import _models_registry

    registry, _ = _models_registry()
    if registry is None or not registry.names():
        pytest.skip("no registered model yet")
    name = registry.names()[0]
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f"model:\n  model: {name}\n  tasks: [semseg, depth]\n"
        "  model_options:\n    backbone: {name: mobilenet_v2, weights: /nonexistent/w.pth}\n"
        "data:\n  num_classes: 13\n"
    )
    model, kind = resolve_model(str(cfg))  # the weights file is not needed for profiling
    assert name in kind
    with torch.inference_mode():
        out = model.eval()(torch.rand(1, 3, 64, 64))
    assert out["semseg"].shape[1] == 13 and out["depth"].shape[1] == 1


def test_benchmarks_section_is_replaced_in_place(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks.md"
    bench.write_text(
        "# Benchmarks\n\n## Training\n\nkeep me\n\n" + BENCHMARK_SECTION + "\n\nold\n\n## Later\n\nkeep too\n"
    )
    update_benchmarks_section(bench, BENCHMARK_SECTION + "\n\nnew table\n")
    text = bench.read_text()
    assert "old" not in text and "new table" in text
    assert text.index("keep me") < text.index("new table") < text.index("## Later") < text.index("keep too")
    update_benchmarks_section(bench, BENCHMARK_SECTION + "\n\nnewer\n")
    assert bench.read_text().count(BENCHMARK_SECTION) == 1
    fresh = tmp_path / "fresh.md"
    update_benchmarks_section(fresh, BENCHMARK_SECTION + "\n\nx\n")
    assert fresh.read_text().startswith("# Benchmarks\n\n" + BENCHMARK_SECTION)


def test_all_profiles_every_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import densemtl.analysis.profile as profile

    monkeypatch.setattr(profile, "_models_registry", lambda: (None, None))  # models have their own tests
    bench, out = tmp_path / "benchmarks.md", tmp_path / "all.json"
    args = parse("--all", "--size", "32x32", "--warmup", "0", "--runs", "1")
    args.benchmarks_file, args.json = bench, out
    assert run(args) == 0
    text = bench.read_text()
    assert "densemtl profile --all --size 32x32" in text and "torch " + torch.__version__ in text
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2"):
        assert f"| {name} | backbone |" in text
    from densemtl.models.backbones import BACKBONES

    # every registered backbone (5 at the layout commit; mobilenet_v2_refinenet registered since)
    assert len(json.loads(out.read_text())["results"]) == len(BACKBONES.names()) >= 5
