"""The examples of docs/api.md run as written, in order, against a checkpoint of `densemtl fit`."""

from __future__ import annotations

import re
from pathlib import Path

from densemtl.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_api_examples_run(tiny_dataset: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    code = main(
        [
            "fit",
            *["--data.dataset", "folder", "--data.root", str(tiny_dataset), "--data.image_size", "[32,48]"],
            *["--data.batch_size", "4", "--model.tasks", "[semseg,depth]", "--model.log_images", "0"],
            *[
                "--model.model_options",
                "{backbone: resnet18, decoder_channels: 8}",
                "--trainer.max_steps",
                "2",
            ],
            *["--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false"],
            *["--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path)],
        ]
    )
    assert code == 0
    namespace: dict[str, object] = {"CKPT": str(tmp_path / "default" / "checkpoints" / "last.ckpt")}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["checkpoint"]["global_step"] == 2  # type: ignore[index]
