"""Deployment graphs of ``densemtl export``: label-map outputs, test-time flip inside the graph, and
the metadata that records both; ``densemtl predict --onnx`` on such a file agrees with the checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import SIZE, _write_images, realistic_model

from densemtl.cli import main
from densemtl.data import io
from densemtl.errors import ConfigError
from densemtl.inference import export


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_deploy_outputs_spec() -> None:
    tasks = ["semseg", "depth", "normals"]
    assert export.deploy_outputs(tasks) == ["labels", "depth", "normals"]
    assert export.deploy_outputs(tasks, "logits,depth") == ["semseg", "depth"]
    assert export.deploy_outputs(tasks, "labels, logits") == ["labels", "semseg"]
    with pytest.raises(ConfigError, match="not an output"):
        export.deploy_outputs(["semseg", "depth"], "labels,normals")
    with pytest.raises(ConfigError, match="once"):
        export.deploy_outputs(tasks, "depth,depth")
    assert export.label_dtype(255) == torch.uint8 and export.label_dtype(256) == torch.int32


def test_label_map_graph_equals_argmax_of_full_logits(tmp_path: Path) -> None:
    """The label map is the argmax of the upsampled logits (every pixel), uint8, with flip too."""
    import onnx

    model = realistic_model({"semseg": 7, "depth": 1, "normals": 3})
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        full = model(x)
        mirrored = model(x.flip(-1))
    for flip in (False, True):
        path = tmp_path / f"m{flip}.onnx"
        names = export.export_onnx(model, path, SIZE, dynamic=True, outputs=["labels", "depth"], flip=flip)
        assert names == ["labels", "depth"]
        labels, depth = export.onnx_session(path).run(None, {"image": x.numpy()})
        logits, ref_depth = full["semseg"], full["depth"]
        if flip:  # DenseMTLModule.predict_tasks's merge, at full resolution
            logits = 0.5 * (logits + mirrored["semseg"].flip(-1))
            ref_depth = 0.5 * (ref_depth + mirrored["depth"].flip(-1))
        assert labels.dtype == np.uint8 and labels.shape == (2, 1, *SIZE)
        agree = (labels[:, 0] == logits.argmax(1).numpy()).mean()
        assert agree >= 0.999, agree
        assert np.abs(depth - ref_depth.numpy()).max() < 1e-4
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["densemtl.flip"] == str(flip).lower() and meta["densemtl.outputs"] == "labels,depth"
        assert meta["densemtl.size"] == "dynamic" and meta["densemtl.classes"] == "7"
    # without flip the label map is bit-exact: the same upsampling and argmax in the graph
    path = tmp_path / "exact.onnx"
    export.export_onnx(model, path, SIZE, outputs=["labels"])
    (labels,) = export.onnx_session(path).run(None, {"image": x[:1].numpy()})
    assert np.array_equal(labels[0, 0], full["semseg"][0].argmax(0).numpy())
    assert export.read_onnx_metadata(path)["size"] == f"{SIZE[0]}x{SIZE[1]}"


def _flip_checkpoint(tmp_path: Path, flip: bool = True) -> Path:
    from densemtl.training.module import DenseMTLModule

    module = DenseMTLModule(
        model="mt_refinenet", tasks=["semseg", "depth"], num_classes=5, test_time_flip=flip
    )
    module.net.load_state_dict(realistic_model({"semseg": 5, "depth": 1}).state_dict())
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    return ckpt


def test_predict_and_predict_onnx_agree_with_flip_baked_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test_time_flip checkpoint: the exported graph averages the mirror image like ``predict``."""
    ckpt = _flip_checkpoint(tmp_path)
    size = "x".join(map(str, SIZE))
    onnx_file, no_flip = tmp_path / "m.onnx", tmp_path / "m_noflip.onnx"
    base = ["export", "--ckpt", str(ckpt), "--format", "onnx", "--size", size]
    assert main([*base, "--out", str(onnx_file)]) == 0
    assert "test-time flip inside the graph" in capsys.readouterr().out
    assert main([*base, "--out", str(no_flip), "--no-flip", "--no-check"]) == 0
    meta = export.read_onnx_metadata(onnx_file)
    assert meta["flip"] == "true" and meta["outputs"] == "labels,depth" and meta["classes"] == "5"
    assert export.read_onnx_metadata(no_flip)["flip"] == "false"
    images = _write_images(tmp_path / "in", 2, SIZE)  # at the graph size: labels comparable pixel by pixel
    common = ["predict", "--ckpt", str(ckpt), "--input", str(images), "--no-panel"]
    assert main([*common, "--output", str(tmp_path / "torch"), "--size", size]) == 0
    assert main([*common, "--output", str(tmp_path / "onnx"), "--onnx", str(onnx_file)]) == 0
    with pytest.warns(UserWarning, match="does not average the mirror image"):
        assert main([*common, "--output", str(tmp_path / "noflip"), "--onnx", str(no_flip)]) == 0
    worst_noflip = 0.0
    for name in ("img_000", "img_001"):
        d_torch = np.load(tmp_path / "torch" / "depth" / f"{name}.npy")
        d_onnx = np.load(tmp_path / "onnx" / "depth" / f"{name}.npy")
        assert np.abs(d_onnx - d_torch).max() <= 1e-4
        worst_noflip = max(
            worst_noflip,
            float(np.abs(np.load(tmp_path / "noflip" / "depth" / f"{name}.npy") - d_torch).max()),
        )
        l_torch = io.read_label_png(tmp_path / "torch" / "semantic" / f"{name}.png")
        l_onnx = io.read_label_png(tmp_path / "onnx" / "semantic" / f"{name}.png")
        assert (l_torch == l_onnx).mean() >= 0.999
    assert worst_noflip > 1e-3  # the flip matters for this network, so the agreement above means something


def test_label_output_is_resized_to_the_input_by_nearest(tmp_path: Path) -> None:
    ckpt = _flip_checkpoint(tmp_path, flip=False)
    onnx_file = tmp_path / "m.onnx"
    assert (
        main(["export", "--ckpt", str(ckpt), "--format", "onnx", "--size", "32x48", "--out", str(onnx_file)])
        == 0
    )
    images = _write_images(tmp_path / "in", 1, (64, 96))
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(images),
                "--output",
                str(out),
                "--no-panel",
                "--onnx",
                str(onnx_file),
            ]
        )
        == 0
    )
    labels = io.read_label_png(out / "semantic" / "img_000.png")
    assert labels.shape == (64, 96) and labels.max() < 5
    # nearest-neighbour x2: every 2x2 block is one label
    assert np.array_equal(labels, np.repeat(np.repeat(labels[::2, ::2], 2, 0), 2, 1))
