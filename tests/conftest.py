"""Shared fixtures: a tiny learnable dataset in the generic folder format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from densemtl.data.datasets.folder import write_metadata, write_sample

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

TINY_CLASSES = ["floor", "wall", "box", "ball"]

# `make test` runs two xdist workers on two cores: more threads per worker oversubscribes the CPU
# and makes small convolutions several times slower.
torch.set_num_threads(1)


def make_tiny_dataset(
    root: Path, num_images: int = 16, height: int = 32, width: int = 48, seed: int = 0
) -> Path:
    """Images whose colour tells the class and whose row tells the depth, so a model can learn it."""
    rng = np.random.default_rng(seed)
    colors = np.array([[90, 60, 30], [200, 200, 190], [30, 120, 200], [220, 40, 40]], dtype=np.float32)
    ids = [f"{i:04d}" for i in range(num_images)]
    rows = np.linspace(1.0, 4.0, height, dtype=np.float32)[:, None].repeat(width, 1)
    for sample_id in ids:
        semantic = np.ones((height, width), dtype=np.int64)
        semantic[height // 2 :] = 0
        top, left = rng.integers(0, height - 10), rng.integers(0, width - 12)
        semantic[top : top + 8, left : left + 10] = rng.integers(2, 4)
        rgb = np.clip(colors[semantic] + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
        depth = rows * (1.0 + 0.1 * (semantic >= 2))
        normals = np.zeros((height, width, 3), dtype=np.float32)
        normals[..., 2] = -1.0
        normals[semantic == 0] = (0.0, -1.0, 0.0)
        write_sample(root, sample_id, rgb, depth, semantic, normals)
    n_train = num_images // 2
    write_metadata(
        root,
        TINY_CLASSES,
        intrinsics={"fx": 40.0, "fy": 40.0, "cx": width / 2 - 0.5, "cy": height / 2 - 0.5},
        splits={
            "train": ids[:n_train],
            "val": ids[n_train : n_train + num_images // 4],
            "test": ids[n_train + num_images // 4 :],
        },
    )
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


def quiet_trainer(root: Path, max_steps: int, **options: object):  # -> lightning.Trainer
    """A CPU Lightning Trainer for few-step tests: no logger, checkpoints, progress bar or validation."""
    import lightning as L

    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        limit_val_batches=0,
        **options,
    )
