"""Mean-teacher semi-supervised training: EMA maths, confidence thresholding, a tiny end-to-end run,
and the `densemtl semi fit|validate|test` CLI with its checkpoints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from conftest import quiet_trainer
from densemtl.data.sample import IGNORE_INDEX, collate
from densemtl.training.semi import (
    MIXES,
    SemiSupervisedModule,
    _Unlabelled,
    ema_update,
    pseudo_labels,
    split_labelled,
)

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


@pytest.mark.parametrize("mix", MIXES)
def test_tiny_end_to_end(tmp_path, mix: str) -> None:
    module = SemiSupervisedModule(
        model="hard_sharing",
        num_classes=3,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        confidence=0.0,
        mix=mix,
        coloraug_unlabelled=True,
        log_images=0,
        ema_decay=0.5,
    )
    teacher0 = [p.clone() for p in module.teacher.parameters()]
    loaders = {
        "labelled": DataLoader(_samples(4), batch_size=2, collate_fn=collate),
        "unlabelled": DataLoader(_Unlabelled(_samples(4, seed=1)), batch_size=2, collate_fn=collate),
    }
    trainer = quiet_trainer(tmp_path, max_steps=2)
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


# --- `densemtl semi fit|validate|test`: the LightningCLI over SemiSupervisedModule + SemiDataModule ---
SEMI_ARGS = [
    "--data.dataset",
    "folder",
    "--data.image_size",
    "[32,48]",
    "--data.batch_size",
    "2",
    "--data.scales",
    "[1.0]",
    "--data.labelled_fraction",
    "0.5",
    "--model.model_options",
    "{backbone: resnet18, decoder_channels: 16}",
    "--model.tasks",
    "[semseg,depth]",
    "--model.log_images",
    "0",
    "--model.confidence",
    "0.0",
    "--model.ema_decay",
    "0.5",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--seed_everything",
    "0",
]


def test_semi_cli_fit_test_and_predict(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import csv
    import math

    from densemtl.cli import build_cli, main
    from densemtl.training.checkpoint import load_module, read_checkpoint

    args = [*SEMI_ARGS, "--data.root", str(tiny_dataset)]
    initial = build_cli(args, run=False, semi=True).model.net.state_dict()  # same seed, same init
    run = tmp_path / "run"
    code = main(
        [
            "semi",
            "fit",
            *args,
            "--trainer.max_steps",
            "3",
            "--trainer.log_every_n_steps",
            "1",
            "--trainer.logger",
            "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir",
            str(run),
            "--trainer.default_root_dir",
            str(run),
        ]
    )
    assert code == 0
    version = run / "lightning_logs" / "version_0"
    ckpt = version / "checkpoints" / "last.ckpt"
    checkpoint = read_checkpoint(ckpt)
    assert checkpoint["hyper_parameters"]["ema_decay"] == 0.5
    assert (version / "config.yaml").read_text().count("labelled_fraction: 0.5") == 1
    state = checkpoint["state_dict"]
    # the mean teacher was saved, moved away from the initial weights and is not the student
    teacher = {k[len("teacher.") :]: v for k, v in state.items() if k.startswith("teacher.")}
    student = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    assert teacher.keys() == student.keys() == initial.keys()
    floats = [k for k, v in teacher.items() if v.is_floating_point()]
    assert any(not torch.equal(teacher[k], initial[k]) for k in floats)
    assert any(not torch.equal(teacher[k], student[k]) for k in floats)
    # the unlabelled (AffineMix pseudo-label) and ColorAug losses were trained on
    with (version / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for key in ("train/loss_semseg:unlabelled", "train/loss_depth:unlabelled", "train/loss_depth:coloraug"):
        values = [float(r[key]) for r in rows if r.get(key)]
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values), key

    # evaluation: `semi test`, and a plain module (predict / export) holding the teacher's weights
    code = main(
        ["semi", "test", *args, "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path)]
    )
    assert code == 0
    (metrics_file,) = tmp_path.glob("lightning_logs/*/test_metrics.json")
    assert "miou" in json.loads(metrics_file.read_text())
    plain = load_module(ckpt)
    assert all(torch.equal(v, teacher[k]) for k, v in plain.net.state_dict().items())
    out = tmp_path / "pred"
    assert (
        main(["predict", "--ckpt", str(ckpt), "--input", str(tiny_dataset / "rgb"), "--output", str(out)])
        == 0
    )
    assert len(list((out / "depth").glob("*.npy"))) == 16
    # the supervised CLI re-applies the checkpoint's hyper-parameters, semi options included
    capsys.readouterr()
    code = main(["test", *FOLDER_ARGS, "--data.root", str(tiny_dataset), "--ckpt_path", str(ckpt)])
    assert code == 2 and "densemtl semi" in capsys.readouterr().err


FOLDER_ARGS = ["--data.dataset", "folder", "--data.image_size", "[32,48]", "--trainer.accelerator", "cpu"]


def test_every_shipped_config_is_a_semi_config(capsys: pytest.CaptureFixture) -> None:
    import densemtl
    from densemtl.cli import main

    configs = sorted((Path(densemtl.__file__).parent / "configs").glob("*.yaml"))
    assert configs
    for config in configs:
        with pytest.raises(SystemExit) as exit_info:
            main(["semi", "fit", "--config", str(config), "--print_config"])
        assert exit_info.value.code == 0, config.name
        text = capsys.readouterr().out
        assert "ema_decay: 0.99" in text and "labelled_fraction: 0.1" in text, config.name


def test_semi_help_lists_actions(capsys: pytest.CaptureFixture) -> None:
    from densemtl.cli import main

    assert main([]) == 0
    assert "semi" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["semi", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(action in text for action in ("fit", "validate", "test"))


def test_semi_module_loads_a_supervised_checkpoint() -> None:
    """`semi fit/test --ckpt_path supervised.ckpt`: the teacher starts as the supervised model."""
    from densemtl.training.module import DenseMTLModule

    options = {
        "model": "hard_sharing",
        "num_classes": 3,
        "model_options": {"backbone": "resnet18", "decoder_channels": 8},
    }
    plain = DenseMTLModule(**options)
    checkpoint = {"state_dict": plain.state_dict(), "hyper_parameters": dict(plain.hparams)}
    semi = SemiSupervisedModule(**options)
    semi.on_load_checkpoint(checkpoint)
    semi.load_state_dict(checkpoint["state_dict"])
    for k, v in plain.net.state_dict().items():
        assert torch.equal(semi.teacher.state_dict()[k], v) and torch.equal(semi.net.state_dict()[k], v)


def test_teacher_updates_once_per_optimiser_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With gradient accumulation (2 batches per step) the EMA follows optimiser steps, not batches."""
    from densemtl.training import semi

    decays: list[float] = []

    def recording_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
        decays.append(decay)
        ema_update(teacher, student, decay)

    monkeypatch.setattr(semi, "ema_update", recording_update)
    module = SemiSupervisedModule(
        model="hard_sharing",
        num_classes=3,
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        log_images=0,
        use_coloraug=False,
        ema_decay=0.9,
    )
    loaders = {
        "labelled": DataLoader(_samples(8), batch_size=2, collate_fn=collate),
        "unlabelled": DataLoader(_Unlabelled(_samples(8, seed=1)), batch_size=2, collate_fn=collate),
    }
    trainer = quiet_trainer(tmp_path, max_steps=2, accumulate_grad_batches=2)
    trainer.fit(module, train_dataloaders=loaders)
    # 4 batches, 2 optimiser steps: updates after global steps 1 and 2 (warm-up decay (1+t)/(10+t))
    assert decays == pytest.approx([2 / 11, 3 / 12])


def test_class_counts_use_labelled_images_only(tiny_dataset: Path) -> None:
    from densemtl.training.semi import SemiDataModule

    data = SemiDataModule(
        dataset="folder",
        root=str(tiny_dataset),
        image_size=(32, 48),
        scales=(1.0,),
        flip=False,
        color_jitter=0.0,
        labelled_fraction=0.5,
    )
    labelled, _ = split_labelled(8, 0.5)
    train = data.split_dataset("train")
    expected = sum(torch.bincount(train[i]["semseg"].flatten(), minlength=4).double() for i in labelled)
    assert torch.equal(data.class_pixel_counts(4), expected)
    everything = sum(
        torch.bincount(train[i]["semseg"].flatten(), minlength=4).double() for i in range(len(train))
    )
    assert not torch.equal(expected, everything)  # the unlabelled images' labels would change them


# --- diagnosis: properties of the semi-supervised loss, AffineMix, the teacher ---
def _tiny_semi(**kwargs) -> SemiSupervisedModule:
    torch.manual_seed(0)
    options = {"model": "hard_sharing", "num_classes": 3, "log_images": 0}
    options["model_options"] = {"backbone": "resnet18", "decoder_channels": 8}
    return SemiSupervisedModule(**{**options, **kwargs})


def _batch(n: int = 2, seed: int = 0) -> dict:
    return collate(_samples(n, seed=seed))


def test_unlabelled_seg_loss_is_a_mean_over_the_kept_pixels() -> None:
    import torch.nn.functional as F

    module = _tiny_semi(confidence=0.4, mix="none", use_coloraug=False)
    unlabelled = _batch(seed=1)
    terms = module.unsupervised_losses(_batch(), unlabelled)
    with torch.no_grad():
        probs = torch.softmax(module.teacher.eval()(unlabelled["image"])["semseg"], 1)
        out = module.net(unlabelled["image"])["semseg"]
    confidence, labels = probs.max(1)
    kept = confidence >= 0.4
    assert kept.any() and (~kept).any()
    log_p = F.log_softmax(out, 1).gather(1, labels[:, None])[:, 0]
    per_kept = -(log_p[kept]).sum() / kept.sum()
    assert torch.allclose(terms["semseg:unlabelled"].detach(), per_kept, atol=1e-5)
    assert not torch.allclose(per_kept, -(log_p * kept).sum() / kept.numel(), atol=1e-3)


@pytest.mark.parametrize("rampup_steps", [0, 10])
def test_labelled_terms_keep_their_full_weight(rampup_steps: int) -> None:
    module = _tiny_semi(confidence=0.0, unsup_weight=2.0, coloraug_weight=0.5, rampup_steps=rampup_steps)
    logged = {}
    module.log_training_terms = lambda total, terms, size: logged.update(total=total, terms=terms)
    labelled, unlabelled = _batch(), _batch(seed=1)
    torch.manual_seed(5)
    module.training_step({"labelled": labelled, "unlabelled": unlabelled}, 0)
    terms = logged["terms"]
    supervised = module.compute_losses(module.net(labelled["image"]), labelled)
    for task in ("semseg", "depth"):
        assert torch.allclose(terms[task], supervised[task], atol=1e-6)
    # fixed weighting (1, 1): the labelled terms count once, whatever the ramp; the others are ramped
    expected = terms["semseg"] + terms["depth"]
    if rampup_steps == 0:
        extra = [k for k in terms if ":" in k]
        assert set(extra) == {"semseg:unlabelled", "depth:unlabelled", "depth:coloraug"}
        assert all(float(terms[k].detach()) > 0 for k in extra)
        expected = expected + sum(terms[k] for k in extra)
    else:  # step 0 of a 10-step ramp: the unlabelled terms weigh 0
        assert all(float(terms[k].detach()) == 0 for k in terms if ":" in k)
    assert torch.allclose(logged["total"], expected, atol=1e-6)


def test_affinemix_labels_are_those_of_the_mixed_image() -> None:
    """Labels that are a function of the pixels (one colour per class) stay that function of the
    mixed image: exactly with nearest image sampling, up to the class borders with bilinear."""
    from densemtl.training.augment import AffineMix

    palette = torch.tensor(
        [[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1], [0.1, 0.9, 0.9]]
    )

    def scene(seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 5, (4, 8, 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
        return {
            "image": palette[labels].permute(0, 3, 1, 2).contiguous(),
            "semseg": labels,
            "depth": 1.0 + labels[:, None].float(),
        }

    for mode, tolerance in (("nearest", 0.0), ("bilinear", 0.005)):
        mix = AffineMix(image_mode=mode)
        wrong = total = 0
        for seed in range(10):
            out, mask = mix(
                scene(2 * seed), scene(2 * seed + 1), generator=torch.Generator().manual_seed(seed)
            )
            assert mask.any() and (~mask).any()
            decoded = ((out["image"][:, None] - palette[None, :, :, None, None]) ** 2).sum(2).argmin(1)
            valid = out["semseg"] != IGNORE_INDEX
            wrong += int(((decoded != out["semseg"]) & valid).sum())
            total += int(valid.sum())
            # the pasted depth is the pasted class's depth, zoomed: 1 + label over s (nearest)
        assert wrong / total <= tolerance, mode


def test_ema_keeps_constant_buffers_and_averages_bn_statistics() -> None:
    from densemtl.models import build_model

    torch.manual_seed(0)
    student = build_model(
        "hard_sharing", tasks={"semseg": 3, "depth": 1}, backbone="resnet18", decoder_channels=8
    )
    teacher = copy.deepcopy(student)
    bn = next(m for m in student.modules() if isinstance(m, nn.BatchNorm2d))
    t_bn = next(m for m in teacher.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_var.fill_(3.0)
    before = t_bn.running_var.clone()
    ema_update(teacher, student, 0.9)
    assert torch.allclose(t_bn.running_var, 0.9 * before + 0.1 * 3.0)
    for step in range(1, 2001):
        ema_update(teacher, student, min(0.99, (1 + step) / (10 + step)))
    # input normalisation constants are equal in both: they stay bit-identical
    assert torch.equal(teacher.pixel_mean, student.pixel_mean)
    assert torch.equal(teacher.pixel_std, student.pixel_std)


def test_evaluation_uses_the_teacher_with_its_auxiliary_terms() -> None:
    module = _tiny_semi(
        model="xtasc_net",
        model_options={"backbone": "resnet18", "decoder_channels": 8},
        losses={"depth": "xtasc_depth"},
    )
    with torch.no_grad():
        for p in module.teacher.parameters():
            p.mul_(0.5)
    batch = _batch()
    module.eval()
    with torch.no_grad():
        outputs = module.predict_tasks(batch["image"])
        assert torch.equal(outputs["semseg"], module.teacher(batch["image"])["semseg"])
        assert not torch.equal(outputs["semseg"], module.net(batch["image"])["semseg"])
        terms = module.evaluation_terms(outputs, batch)
    assert set(terms) == {"semseg", "depth", "depth:transfer", "semseg:transfer"}
    with torch.no_grad(), module.teacher.auxiliary_outputs():
        teacher_out = module.teacher(batch["image"])
        expected = module.losses.auxiliary_terms(teacher_out, batch)
    assert torch.allclose(terms["depth:transfer"], expected["depth:transfer"])


def test_unlabelled_loss_normalised_over_all_pixels_is_the_kept_mean_times_the_kept_share() -> None:
    unlabelled = _batch(seed=1)
    kept_terms = _tiny_semi(confidence=0.4, mix="none", use_coloraug=False).unsupervised_losses(
        _batch(), unlabelled
    )
    module = _tiny_semi(confidence=0.4, mix="none", use_coloraug=False, unsup_normalise="all")
    all_terms = module.unsupervised_losses(_batch(), unlabelled)
    with torch.no_grad():
        confidence = torch.softmax(module.teacher.eval()(unlabelled["image"])["semseg"], 1).amax(1)
    share = (confidence >= 0.4).float().mean()
    assert 0 < share < 1
    expected = kept_terms["semseg:unlabelled"] * share
    assert torch.allclose(all_terms["semseg:unlabelled"], expected, atol=1e-6)
    # the depth pseudo-targets are valid everywhere: the share is 1, the terms equal
    assert torch.allclose(all_terms["depth:unlabelled"], kept_terms["depth:unlabelled"], atol=1e-6)


@pytest.mark.parametrize(("option", "value"), [("mix", "mixup"), ("unsup_normalise", "pixels")])
def test_unknown_semi_options_are_refused(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        _tiny_semi(**{option: value})


def test_classmix_student_sees_the_mix_of_the_pseudo_labelled_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ClassMix the student's unlabelled input is the pair mixed by the teacher's classes,
    and its targets are the pseudo-labels mixed by the same mask."""
    from densemtl.training import augment

    module = _tiny_semi(confidence=0.0, mix="classmix", use_coloraug=False)
    seen = {}
    original = augment.ClassMix.__call__

    def recording(self, source, target, source_classes, generator=None):
        mixed, mask = original(self, source, target, source_classes, generator)
        seen.update(source=source, target=target, classes=source_classes, mixed=mixed, mask=mask)
        return mixed, mask

    monkeypatch.setattr(augment.ClassMix, "__call__", recording)
    unlabelled = _batch(seed=1)
    module.unsupervised_losses(_batch(), unlabelled)
    with torch.no_grad():
        teacher = module.teacher.eval()(unlabelled["image"])["semseg"].argmax(1)
    assert torch.equal(seen["classes"], teacher)
    assert torch.equal(seen["source"]["image"], unlabelled["image"])
    assert torch.equal(seen["target"]["image"], unlabelled["image"].roll(1, dims=0))
    m = seen["mask"]
    assert m.any() and (~m).any()
    assert torch.equal(seen["mixed"]["semseg"], torch.where(m, teacher, teacher.roll(1, dims=0)))


def _semi_data(root: Path):
    from densemtl.training.semi import SemiDataModule

    return SemiDataModule(
        dataset="folder",
        root=str(root),
        image_size=(32, 48),
        batch_size=2,
        labelled_fraction=0.5,
        tasks=["semseg", "depth"],
        scales=(1.0,),
        flip=False,
        color_jitter=0.0,  # deterministic images, so that the test can draw the same ones
    )


def test_semi_diagnostics_measure_the_teacher_without_changing_training(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    from densemtl.training.semi import SemiDiagnostics

    def fit(callbacks: list) -> SemiSupervisedModule:
        import lightning as L

        L.seed_everything(0)
        module = _tiny_semi(num_classes=4, confidence=0.3, ema_decay=0.5, mix="classmix")
        quiet_trainer(tmp_path, max_steps=4, callbacks=callbacks).fit(
            module, datamodule=_semi_data(tiny_dataset)
        )
        return module

    diagnostics = SemiDiagnostics(every_n_steps=2, num_images=3, path=str(tmp_path / "d.json"))
    with_callback, without = fit([diagnostics]), fit([])
    for a, b in zip(with_callback.state_dict().values(), without.state_dict().values()):
        assert torch.equal(a, b)
    rows = json.loads((tmp_path / "d.json").read_text())
    assert rows == diagnostics.history
    assert [r["step"] for r in rows] == [2.0, 4.0] and rows[-1]["final"] == 1.0
    for row in rows:
        for key in ("teacher_miou", "student_miou", "teacher_confident_share", "teacher_delta1"):
            assert 0.0 <= row[key] <= 1.0, key
    # the last row is the final teacher, measured independently here
    from densemtl.metrics.seg import SegmentationMetrics
    from densemtl.training.semi import split_labelled

    data = _semi_data(tiny_dataset)
    train = data.split_dataset("train")
    _, unlabelled = split_labelled(len(train), 0.5, 0)
    batch = collate([train[i] for i in unlabelled[:3]], tasks=["semseg", "depth"])
    with torch.no_grad():
        logits = with_callback.teacher.eval()(batch["image"])["semseg"]
    seg = SegmentationMetrics(4)
    seg.update(logits, batch["semseg"])
    assert rows[-1]["teacher_miou"] == pytest.approx(float(seg.compute()["miou"]), abs=1e-6)
    assert 0.0 <= rows[-1]["teacher_miou_bn_recomputed"] <= 1.0


def test_ground_truth_oracle_mixes_the_true_labels_and_needs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from densemtl.training import augment

    module = _tiny_semi(confidence=0.99, mix="classmix", use_coloraug=False, pseudo_labels="ground_truth")
    without_labels = collate([{"image": s["image"]} for s in _samples(2, seed=1)])
    with pytest.raises(ValueError, match="keep_unlabelled_labels"):
        module.unsupervised_losses(_batch(), without_labels)
    seen = {}
    original = augment.ClassMix.__call__

    def recording(self, source, target, source_classes, generator=None):
        seen.update(source=source, classes=source_classes)
        return original(self, source, target, source_classes, generator)

    monkeypatch.setattr(augment.ClassMix, "__call__", recording)
    unlabelled = _batch(seed=1)
    module.unsupervised_losses(_batch(), unlabelled)
    # the confidence threshold (0.99) does not apply to true labels: every labelled pixel is kept
    assert torch.equal(seen["source"]["semseg"], unlabelled["semseg"])
    assert torch.equal(seen["source"]["depth"], unlabelled["depth"])
    assert torch.equal(seen["classes"], unlabelled["semseg"])


def test_unlabelled_view_keeps_labels_only_for_the_oracle() -> None:
    samples = _samples(2)
    assert "semseg" not in _Unlabelled(samples)[0]
    assert torch.equal(_Unlabelled(samples, keep_labels=True)[0]["semseg"], samples[0]["semseg"])
