"""Every registered model exports to ONNX (and OpenVINO where installed) at a tiny size, with parity;
pyramid pooling whose bins do not divide the input (``mtl_spp``, ``mtl_ssw``) included."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from densemtl.inference import export
from densemtl.models import build_model, model_names

SIZE = (64, 64)  # feature maps of 8x8 at stride 8: the 3- and 6-bin poolings do not divide them


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", model_names())
def test_every_model_exports_with_parity(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(name, tasks={"semseg": 3, "depth": 1}).eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export.export_onnx(model, path, SIZE)
    assert max(export.onnx_parity(model, path, SIZE).values()) < 1e-4
    if importlib.util.find_spec("openvino") is not None:
        from densemtl.inference import openvino as ovb

        compiled = ovb.compile_model(path, threads=1)  # OpenVINO's ONNX frontend
        diffs = export.onnx_parity(model, path, SIZE, run=lambda _n, feed: list(compiled(feed).values()))
        assert max(diffs.values()) < 1e-4, diffs


def test_exportable_pooling_is_adaptive_pooling() -> None:
    """Eager: bit-identical to ``adaptive_avg_pool2d``; traced at a non-dividing size: equal up to rounding."""
    from densemtl.models.blocks.aspp import ExportableAdaptiveAvgPool2d

    x = torch.randn(2, 4, 13, 17, generator=torch.Generator().manual_seed(0))
    for bins in (1, 2, 3, 6, (2, 5)):
        pool = ExportableAdaptiveAvgPool2d(bins)
        ref = torch.nn.functional.adaptive_avg_pool2d(x, bins)
        assert torch.equal(pool(x), ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(pool, x)
        assert "aten::matmul" in str(traced.graph) or bins == 1
        assert torch.allclose(traced(x), ref, atol=1e-6)
