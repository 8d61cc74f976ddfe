"""Resuming ``densemtl fit --ckpt_path last`` after SIGKILL ends where an uninterrupted run ends.

Fault injection (``resume_helpers.KillAt``): a run is killed mid-epoch, halfway through writing
``last.ckpt``, and right after an epoch-boundary checkpoint; each time it is resumed with
``--ckpt_path last``. With ``deterministic: true`` on CPU the final weights must equal the
uninterrupted run's (to 1e-6), and the step count must be the requested one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import RandomSampler

from densemtl.data.datamodule import ResumableRandomSampler

HELPERS = Path(__file__).parent
MAX_STEPS = 8


def _fit_args(dataset: Path, root: Path) -> list[str]:
    return [
        "fit",
        *["--data.dataset", "folder", "--data.root", str(dataset), "--data.image_size", "[32,48]"],
        *["--data.batch_size", "4", "--model.tasks", "[semseg,depth]", "--model.log_images", "0"],
        *["--model.model_options", "{backbone: resnet18, decoder_channels: 8}"],
        *["--seed_everything", "0", "--trainer.deterministic", "true", "--trainer.max_steps", str(MAX_STEPS)],
        *["--trainer.val_check_interval", "3", "--trainer.check_val_every_n_epoch", "null"],
        *["--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"],
        *["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"],
        *["--trainer.default_root_dir", str(root), "--trainer.callbacks", "resume_helpers.KillAt"],
    ]


def _fit(args: list[str], kill: str = "") -> int:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")])),
        "DENSEMTL_TEST_KILL": kill,
    }
    done = subprocess.run(
        [sys.executable, "-m", "densemtl.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode in (0, -9), done.stderr[-3000:]
    return done.returncode


def _state(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    checkpoint = torch.load(path, weights_only=True)
    return checkpoint["global_step"], checkpoint["state_dict"]


def test_sampler_draws_the_shuffle_loader_order() -> None:
    # an uninterrupted run must see exactly today's `shuffle=True` order and random state
    torch.manual_seed(7)
    expected = [list(RandomSampler(range(10))) for _ in range(3)]
    expected_state = torch.get_rng_state()
    torch.manual_seed(7)
    sampler = ResumableRandomSampler(10)
    assert [list(sampler) for _ in range(3)] == expected
    assert torch.equal(torch.get_rng_state(), expected_state)
    # resuming replays the epoch of a seed from an offset, drawing nothing from the global state
    seed = sampler.seed
    sampler.resume(seed, 4)
    before = torch.get_rng_state()
    assert list(sampler) == expected[2][4:]
    assert torch.equal(torch.get_rng_state(), before) and sampler.seed == seed


def _assert_same_weights(whole: Path, resumed: Path) -> None:
    whole_step, expected = _state(whole)
    resumed_step, actual = _state(resumed)
    assert whole_step == resumed_step == MAX_STEPS
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow  # four `densemtl fit` processes
def test_killed_mid_epoch_and_mid_write_then_resumed_equals_uninterrupted(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # tiny_dataset: 8 training images, batch 4 -> 2 steps per epoch; checkpoints at steps 3 and 6
    args = _fit_args(tiny_dataset, tmp_path)
    assert _fit([*args, "--name", "whole"]) == 0
    part = [*args, "--name", "killed"]
    assert _fit(part, "step:5") == -9  # mid-epoch, two steps after the step-3 checkpoint
    assert _fit([*part, "--ckpt_path", "last"], "save:6") == -9  # halfway through writing last.ckpt
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert list(checkpoints.glob(".last.ckpt.*.tmp")) and _state(checkpoints / "last.ckpt")[0] == 3
    assert _fit([*part, "--ckpt_path", "last"]) == 0
    assert not list(checkpoints.glob("*.tmp"))  # the killed save's leftover was removed
    _assert_same_weights(tmp_path / "whole" / "checkpoints" / "last.ckpt", checkpoints / "last.ckpt")


@pytest.mark.slow  # three `densemtl fit` processes
def test_killed_after_an_epoch_end_checkpoint_then_resumed_equals_uninterrupted(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    args = _fit_args(tiny_dataset, tmp_path)
    assert _fit([*args, "--name", "whole"]) == 0
    part = [*args, "--name", "killed"]
    assert _fit(part, "step:7") == -9  # the step-6 checkpoint closes epoch 3
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert _state(checkpoints / "last.ckpt")[0] == 6
    assert _fit([*part, "--ckpt_path", "last"]) == 0
    _assert_same_weights(tmp_path / "whole" / "checkpoints" / "last.ckpt", checkpoints / "last.ckpt")
