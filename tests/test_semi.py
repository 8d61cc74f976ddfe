"""Mean-teacher semi-supervised training: EMA maths, confidence thresholding, a tiny end-to-end run."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from densemtl.data.sample import IGNORE_INDEX, collate
from densemtl.semi import SemiSupervisedModule, _Unlabelled, ema_update, pseudo_labels, split_labelled

torch.set_num_threads(1)


def test_ema_update_math() -> None:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for t, b, s in zip(teacher.parameters(), before, student.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s)
    assert torch.allclose(teacher[1].running_mean, torch.full((3,), 0.2))
    assert int(teacher[1].num_batches_tracked) == 7
    ema_update(teacher, student, 0.0)  # decay 0 copies the student
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters()))


def test_pseudo_labels_confidence_threshold() -> None:
    logits = torch.zeros(1, 3, 1, 3)
    logits[0, 1, 0, 0] = 10.0  # confident class 1
    logits[0, 2, 0, 1] = 0.5  # unsure class 2
    labels, conf = pseudo_labels(logits, threshold=0.9)
    assert labels.tolist() == [[[1, IGNORE_INDEX, IGNORE_INDEX]]]
    assert conf[0, 0, 0] > 0.9 > conf[0, 0, 1]
    labels, _ = pseudo_labels(logits, threshold=0.0)
    assert labels.tolist() == [[[1, 2, 0]]]


def test_split_and_unlabelled_view() -> None:
    lab, unl = split_labelled(50, 0.1, seed=3)
    assert len(lab) == 5 and len(unl) == 45 and not set(lab) & set(unl)
    assert split_labelled(50, 0.1, seed=3) == (lab, unl)
    view = _Unlabelled([{"image": torch.zeros(3, 2, 2), "semseg": torch.zeros(2, 2), "meta": {}}])
    assert set(view[0]) == {"image", "meta"}


def _samples(n: int, h: int = 32, w: int = 32, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        seg = torch.randint(0, 3, (h, w), generator=g)
        out.append(
            {
                "image": torch.rand(3, h, w, generator=g),
                "semseg": seg,
                "depth": 1.0 + seg[None].float(),
                "meta": {},
            }
        )
    return out


@pytest.mark.parametrize("use_affinemix", [True, False])
def test_tiny_end_to_end(tmp_path, use_affinemix: bool) -> None:
    import lightning as L

    module = SemiSupervisedModule(
        model="hard_sharing",
        num_classes=3,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        confidence=0.0,
        use_affinemix=use_affinemix,
        coloraug_unlabelled=True,
        log_images=0,
        ema_decay=0.5,
    )
    teacher0 = [p.clone() for p in module.teacher.parameters()]
    loaders = {
        "labelled": DataLoader(_samples(4), batch_size=2, collate_fn=collate),
        "unlabelled": DataLoader(_Unlabelled(_samples(4, seed=1)), batch_size=2, collate_fn=collate),
    }
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loaders)
    logged = trainer.callback_metrics
    assert "train/loss_semseg:unlabelled" in logged and "train/loss_depth:coloraug" in logged
    assert all(torch.isfinite(v) for v in logged.values())
    # the teacher moved towards the student and is not the student
    moved = [not torch.equal(a, b) for a, b in zip(teacher0, module.teacher.parameters())]
    assert any(moved)
    assert not all(torch.equal(a, b) for a, b in zip(module.teacher.parameters(), module.net.parameters()))
    assert not any(p.requires_grad for p in module.teacher.parameters())
    module.eval()
    with torch.no_grad():
        out = module(torch.rand(1, 3, 32, 32))
    assert out["semseg"].shape == (1, 3, 32, 32)
