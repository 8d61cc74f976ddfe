"""User mistakes are one-line ``densemtl: error: ...`` messages (exit 2), never tracebacks."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from test_cli import FIT_ARGS

from densemtl.cli import main


def _one_line_error(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("densemtl: error:")]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    return lines[0]


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch 3 looked good\n")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 3}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hook": pickle.loads(pickle.dumps(Path("x")))}, pickled)
    return {"text": text, "corrupt": corrupt, "truncated": truncated, "pickled": pickled}


def _fit(tiny_dataset: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        *FIT_ARGS,
        "--data.root",
        str(tiny_dataset),
        "--trainer.default_root_dir",
        str(root),
        *extra,
    ]


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "text"])
def test_test_and_fit_with_a_bad_ckpt_path(
    kind: str, bad_files: dict[str, Path], tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = bad_files[kind]
    for command in ("test", "fit"):
        argv = _fit(tiny_dataset, tmp_path, "--ckpt_path", str(path))
        argv[0] = command
        line = _one_line_error(capsys, main(argv))
        assert line == f"densemtl: error: {path}: not a readable checkpoint" + line.split("checkpoint", 1)[1]


def test_pickled_checkpoint_is_refused_plainly(
    bad_files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    path = bad_files["pickled"]
    line = _one_line_error(
        capsys, main(["export", "--ckpt_path", str(path), "--format", "onnx", "--output", "x"])
    )
    assert "would run code" in line and "refused" in line
    assert "weights_only" not in line and "Re-running" not in line


@pytest.mark.parametrize("command", ["predict", "export"])
def test_text_file_as_checkpoint(
    command: str, bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = bad_files["text"]
    argv = {
        "predict": [
            "predict",
            "--ckpt_path",
            str(path),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
        ],
        "export": [
            "export",
            "--ckpt",
            str(path),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.onnx"),
        ],  # old spelling
    }[command]
    line = _one_line_error(capsys, main(argv))
    assert line.startswith(f"densemtl: error: {path}: not a readable checkpoint")


def test_negative_max_steps(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _one_line_error(capsys, main(_fit(tiny_dataset, tmp_path, "--trainer.max_steps", "-5")))
    assert "--trainer.max_steps must be -1 (no limit) or >= 0, got -5" in line


def test_misspelt_model_option(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = _fit(tiny_dataset, tmp_path, "--model.model_options", "{backbone: resnet18, decoder_chanels: 8}")
    line = _one_line_error(capsys, main(argv))
    assert "bad configuration" in line and "decoder_chanels" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_predict_on_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "predict",
        "--ckpt_path",
        "x.ckpt",
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path),
        "--device",
        "cuda",
    ]
    line = _one_line_error(capsys, main(argv))
    assert line == "densemtl: error: --device cuda: CUDA is not available on this machine; use --device cpu"


def test_resume_without_a_checkpoint(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    line = _one_line_error(capsys, main(_fit(tiny_dataset, tmp_path, "--name", "r1", "--ckpt_path", "last")))
    assert line.startswith("densemtl: error: --ckpt_path last: no checkpoint to resume in ")
    assert str(tmp_path / "r1" / "checkpoints") in line


def test_resume_from_a_truncated_last(
    bad_files: dict[str, Path], tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    last = tmp_path / "r2" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(bad_files["truncated"].read_bytes())
    line = _one_line_error(capsys, main(_fit(tiny_dataset, tmp_path, "--name", "r2", "--ckpt_path", "last")))
    assert line.startswith(f"densemtl: error: {last}: not a readable checkpoint")


def test_fresh_fit_into_an_existing_run_is_refused(
    bad_files: dict[str, Path], tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    last = tmp_path / "r3" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    line = _one_line_error(capsys, main(_fit(tiny_dataset, tmp_path, "--name", "r3")))
    assert "already holds a run: resume it with --ckpt_path last" in line


def test_enable_checkpointing_false_trains_without_checkpoints(tiny_dataset: Path, tmp_path: Path) -> None:
    argv = _fit(tiny_dataset, tmp_path, "--trainer.enable_checkpointing", "false", "--trainer.max_steps", "1")
    assert main([*argv, "--trainer.limit_val_batches", "0", "--name", "nockpt"]) == 0
    assert not list(tmp_path.rglob("*.ckpt"))
