"""``densemtl benchmark``: paths timed interleaved, same-run ratios, OpenVINO and label-map paths."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from densemtl.analysis import benchmark
from densemtl.models import build_model


def test_interleaved_ratios_and_label_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    order: list[int] = []
    real = benchmark._time_interleaved

    def spy(fns, runs, warmup, device):  # type: ignore[no-untyped-def]
        wrapped = [lambda i=i, f=f: (order.append(i), f())[1] for i, f in enumerate(fns)]
        return real(wrapped, runs, warmup, device)

    monkeypatch.setattr(benchmark, "_time_interleaved", spy)
    paths = ["onnxruntime_plain", "onnxruntime", "onnxruntime+labels"]
    if importlib.util.find_spec("openvino") is not None:
        paths += ["openvino", "openvino+labels"]
    model = build_model("mt_refinenet", tasks={"semseg": 3, "depth": 1})
    result = benchmark.run_benchmark(model, (32, 32), paths, runs=2, warmup=1, matmul_size=64, profile=True)
    n = len(paths)
    assert order == list(range(n)) * 3  # warm-up round, then A B C ... A B C ...
    rows = {r["path"]: r for r in result["rows"]}
    assert all("error" not in r for r in rows.values()), rows
    for name, row in rows.items():
        assert set(row["latency_vs"]) == set(paths) - {name}
        other = paths[0] if name != paths[0] else paths[1]
        assert row["latency_vs"][other] == pytest.approx(
            row["latency_ms_median"] / rows[other]["latency_ms_median"]
        )
        assert row["max_abs_diff"] < 1e-3  # labels: fraction of pixels differing from the eager argmax
    assert result["interleaved"] and len(result["matmul_gflops_before_after"]) == 2
    if "openvino" in rows:
        assert rows["openvino"]["profile"]["total_ms"] > 0
        assert "per-layer profile" in benchmark.markdown_section(result, "mt_refinenet", "cmd", "machine")
    with pytest.raises(Exception, match="unknown benchmark path"):
        benchmark._build("openvino+logits", model, torch.rand(1, 3, 8, 8), None, 1)  # type: ignore[arg-type]


def test_openvino_bf16_path_runs_in_bf16() -> None:
    ov = pytest.importorskip("openvino")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 units")
    torch.set_num_threads(1)
    # kaiming: the authors' N(0, 0.01) decoder init leaves outputs too flat for rounding to show
    model = build_model("mt_refinenet", tasks={"semseg": 3, "depth": 1}, init="kaiming")
    result = benchmark.run_benchmark(model, (32, 32), ["openvino", "openvino_bf16"], runs=1, warmup=0)
    rows = {r["path"]: r for r in result["rows"]}
    assert all("error" not in r for r in rows.values()), rows
    f32, bf16 = rows["openvino"]["max_abs_diff"], rows["openvino_bf16"]["max_abs_diff"]
    assert f32 < 1e-5 and bf16 > 100 * max(f32, 1e-9)  # bf16 rounding, not the f32 kernels renamed
