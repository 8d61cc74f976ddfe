"""End-to-end training on tiny data, missing labels, resume after a crash, atomic checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from densemtl.data.datamodule import DenseDataModule
from densemtl.errors import DataError
from densemtl.training.checkpoint import AtomicCheckpointIO, load_module, read_checkpoint
from densemtl.training.module import DenseMTLModule

SMALL_MODEL = {"backbone": "resnet18", "decoder_channels": 32}


def _data(root: Path, **kwargs) -> DenseDataModule:
    options = {
        "dataset": "folder",
        "root": str(root),
        "tasks": ["semseg", "depth", "normals"],
        "image_size": (32, 48),
        "batch_size": 4,
        "scales": (1.0,),
        "color_jitter": 0.0,
        "flip": False,
        "cache_in_memory": True,
    }
    options.update(kwargs)
    return DenseDataModule(**options)


def _module(data: DenseDataModule, **kwargs) -> DenseMTLModule:
    options = {
        "model": "hard_sharing",
        "tasks": data.tasks,
        "num_classes": data.num_classes,
        "model_options": SMALL_MODEL,
        "lr": 3e-3,
        "class_colors": data.class_colors,
        "log_images": 0,
    }
    options.update(kwargs)
    return DenseMTLModule(**options)


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = {
        "default_root_dir": tmp_path,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "plugins": [AtomicCheckpointIO()],
    }
    options.update(kwargs)
    return L.Trainer(**options)


def test_training_learns_the_tiny_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    data = _data(tiny_dataset)
    module = _module(
        data, losses={"semseg": {"name": "cross_entropy", "class_weights": "sqrt_inverse"}, "depth": "log_l1"}
    )
    trainer = _trainer(tmp_path, max_steps=60, enable_checkpointing=False, limit_val_batches=0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        before = {t: float(v) for t, v in module.compute_losses(module(batch["image"]), batch).items()}
    trainer.fit(module, datamodule=data)
    weights = module.losses["semseg"].parts[0].class_weights  # fitted from the training split in setup()
    assert (
        weights is not None and weights.shape == (4,) and weights.min() > 0 and weights.max() > weights.min()
    )
    module.eval()
    with torch.no_grad():
        after = {t: float(v) for t, v in module.compute_losses(module(batch["image"]), batch).items()}
    for task in before:
        assert after[task] < 0.5 * before[task], (task, before[task], after[task])
    trainer.test(module, datamodule=data, verbose=False)
    results = module.test_results
    assert results["miou"] > 0.5 and results["delta1"] > 0.6 and results["normal_mean"] < 30


def test_samples_without_a_label_do_not_train_that_task(tiny_dataset: Path) -> None:
    data = _data(tiny_dataset, tasks=["semseg", "depth"])
    module = _module(data)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    batch["depth"].zero_()  # as collate fills a missing depth label
    outputs = module(batch["image"])
    losses = module.compute_losses(outputs, batch)
    assert losses["depth"].item() == 0.0
    module.weighting(losses).backward()
    depth_head = module.net.heads["depth"].predict.weight
    assert depth_head.grad is not None and depth_head.grad.abs().sum() == 0
    assert module.net.heads["semseg"].predict.weight.grad.abs().sum() > 0


class _Crash(L.Callback):
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated crash")


def test_resume_after_crash_continues_from_last_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(
        max_epochs: int, callbacks: list, ckpt_path: str | None = None
    ) -> tuple[L.Trainer, DenseMTLModule]:
        L.seed_everything(0)
        data = _data(tiny_dataset)
        module = _module(data)
        checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = _trainer(
            tmp_path, max_epochs=max_epochs, callbacks=[checkpoint, *callbacks], limit_val_batches=0
        )
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return trainer, module

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(4, [_Crash()])
    last = tmp_path / "ckpt" / "last.ckpt"
    saved = read_checkpoint(last)
    steps_per_epoch = saved["global_step"] // 2
    assert saved["epoch"] == 1 and steps_per_epoch > 0
    trainer, _ = run(4, [], ckpt_path=str(last))
    assert trainer.global_step == 4 * steps_per_epoch
    assert read_checkpoint(last)["global_step"] == 4 * steps_per_epoch
    # the resumed run started from the saved weights and optimiser state, not from scratch
    assert read_checkpoint(last)["optimizer_states"][0]["state"]


def test_atomic_checkpoint_keeps_previous_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoints_load_weights_only_and_bad_files_are_clear(tiny_dataset: Path, tmp_path: Path) -> None:
    data = _data(tiny_dataset)
    module = _module(data)
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = load_module(path)
    batch = torch.rand(1, 3, 32, 48)
    module.eval()
    torch.testing.assert_close(restored(batch)["depth"], module(batch)["depth"])
    (tmp_path / "truncated.ckpt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"truncated\.ckpt: not a readable checkpoint"):
        load_module(tmp_path / "truncated.ckpt")
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(DataError, match=r"evil\.ckpt: not a readable checkpoint"):
        load_module(tmp_path / "evil.ckpt")
    with pytest.raises(DataError, match=r"missing\.ckpt: checkpoint not found"):
        load_module(tmp_path / "missing.ckpt")


def test_mixed_precision_and_gradient_accumulation(tiny_dataset: Path, tmp_path: Path) -> None:
    data = _data(tiny_dataset, batch_size=2)
    module = _module(data)
    trainer = _trainer(
        tmp_path,
        max_epochs=1,
        precision="bf16-mixed",
        accumulate_grad_batches=2,
        limit_val_batches=0,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=data)
    batches = len(data.train_dataloader())
    assert batches == 4 and trainer.global_step == batches // 2  # one optimiser step per 2 batches
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_test_time_flip_makes_outputs_mirror_equivariant(tiny_dataset: Path) -> None:
    data = _data(tiny_dataset)
    module = _module(data, test_time_flip=True).eval()
    image = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        out = module.predict_tasks(image)
        mirrored = module.predict_tasks(image.flip(-1))
        plain = module(image)
    torch.testing.assert_close(out["semseg"], mirrored["semseg"].flip(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["depth"], mirrored["depth"].flip(-1), atol=1e-5, rtol=1e-5)
    sign = torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(out["normals"], mirrored["normals"].flip(-1) * sign, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out["depth"], plain["depth"])  # an untrained net is not symmetric
