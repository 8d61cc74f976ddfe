"""Checkpoint files: last.ckpt is the latest step, umask permissions, stale temporaries, refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import lightning as L
import pytest
import torch

from densemtl.data.datamodule import DenseDataModule
from densemtl.errors import DataError
from densemtl.training.checkpoint import (
    AtomicCheckpointIO,
    RunCheckpoint,
    read_checkpoint,
    remove_stale_temporaries,
)
from densemtl.training.module import DenseMTLModule


def test_last_checkpoint_is_the_final_step_whatever_the_monitored_metric(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    L.seed_everything(0)
    data = DenseDataModule(
        dataset="folder", root=str(tiny_dataset), tasks=["semseg", "depth"], image_size=(32, 48), batch_size=4
    )
    module = DenseMTLModule(
        model="hard_sharing",
        tasks=data.tasks,
        num_classes=data.num_classes,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        log_images=0,
    )
    saved: list[int] = []

    class Record(L.Callback):
        def on_save_checkpoint(self, trainer: L.Trainer, *args: object) -> None:
            saved.append(trainer.global_step)

    # mode="max" on a loss: the first value stays the best, so only the first event improves it
    checkpoint = RunCheckpoint(filename="best", monitor="val/loss", mode="max", save_top_k=1)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=5,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[checkpoint, Record()],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, datamodule=data)
    folder = tmp_path / "checkpoints"
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == 5  # the end of fit, not step 2
    assert read_checkpoint(folder / "best.ckpt")["global_step"] == 2
    assert sorted(set(saved)) == [2, 4, 5]  # last.ckpt at every event (2, 4) and at the end


def test_checkpoint_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "a.ckpt")
        os.umask(0o077)
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "b.ckpt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.ckpt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.ckpt").stat().st_mode) == 0o600


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    stale = [tmp_path / ".last.ckpt.x1y2.tmp", tmp_path / ".best.ckpt.abcd.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_pickled_checkpoint_refusal_says_why(tmp_path: Path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "path": Path("x")}, path)  # a pathlib object: needs unpickling code
    with pytest.raises(DataError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message == (
        f"{path}: not a readable checkpoint: refused, it holds pickled Python objects and loading "
        "them would run code (only plain tensors and containers are read)"
    )


@pytest.mark.parametrize("content", [b"epoch 3 looked good\n", b""])
def test_foreign_files_are_one_line_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable checkpoint") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)
