"""The non-terminal progress line: step / max_steps and the step rate, every log_every_n_steps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from densemtl.cli.lightning import LineProgressBar


def test_line_progress_shows_step_of_max_steps_and_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    clock = iter([100.0, 104.0, 108.0])
    monkeypatch.setattr("densemtl.cli.lightning.time.perf_counter", lambda: next(clock))
    trainer = SimpleNamespace(
        global_step=0, max_steps=60, log_every_n_steps=10, is_global_zero=True, loggers=[],
        progress_bar_metrics={"train/loss": 0.53125},
    )  # fmt: skip
    bar = LineProgressBar()
    bar.on_train_start(trainer, None)
    for step in range(1, 21):
        trainer.global_step = step
        bar.on_train_batch_end(trainer, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "step 10/60  2.50 steps/s  eta 0.3 min  train/loss 0.5312",
        "step 20/60  2.50 steps/s  eta 0.3 min  train/loss 0.5312",
    ]
    bar.disable()
    trainer.global_step = 30
    bar.on_train_batch_end(trainer, None)
    assert capsys.readouterr().err == ""
