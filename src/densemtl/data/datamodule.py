"""LightningDataModule over any registered dataset (the synthetic scenes by default)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from densemtl.data.datasets import build_dataset
from densemtl.data.sample import IGNORE_INDEX, collate
from densemtl.data.transforms import Compose, Resize, build_transforms
from densemtl.errors import ConfigError

DEFAULT_SYNTHETIC = {"num_images": 1200, "height": 240, "width": 320, "seed": 0}


def synthetic_root(num_images: int, height: int, width: int, seed: int) -> Path:
    """The render cache of one synthetic configuration (one folder per configuration)."""
    return Path("data_cache") / f"synthetic-{num_images}-{height}x{width}-s{seed}"


class InMemoryDataset(Dataset):
    """Decodes every sample once (after ``Resize``) and applies the random transforms per access.

    On a 2-core CPU, PNG decoding and resizing would otherwise compete with the model for the
    same cores every epoch.
    """

    def __init__(self, base: Dataset, transform: Any | None) -> None:
        self.samples = [base[i] for i in range(len(base))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        return self.transform(sample) if self.transform is not None else sample


class DenseDataModule(L.LightningDataModule):
    """Train / val / test loaders with depth-correct augmentation.

    Args:
        dataset: registered dataset name (``synthetic``, ``folder``, ``nyuv2``, ...).
        root: dataset folder; for ``synthetic`` the render cache (default
            ``data_cache/synthetic-<N>-<H>x<W>-s<seed>``).
        tasks: tasks to load (default: all the dataset provides).
        image_size: (height, width) every sample is resized to.
        batch_size / eval_batch_size / num_workers: loader settings.
        scales / flip / color_jitter: training augmentation (see ``densemtl.data.transforms``).
        cache_in_memory: decode each sample once and keep it in RAM.
        synthetic: ``num_images``, ``height``, ``width``, ``seed`` of the rendered set.
        dataset_options: extra keyword arguments of the dataset class.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        tasks: Sequence[str] | None = None,
        image_size: Sequence[int] = (120, 160),
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        scales: Sequence[float] = (1.0, 1.5),
        flip: bool = True,
        color_jitter: float = 0.2,
        cache_in_memory: bool = False,
        synthetic: dict[str, Any] | None = None,
        dataset_options: dict[str, Any] | None = None,
        limit_train_samples: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dataset = dataset
        self.synthetic = {**DEFAULT_SYNTHETIC, **(synthetic or {})}
        unknown = set(self.synthetic) - set(DEFAULT_SYNTHETIC)
        if unknown:
            raise ConfigError(
                f"unknown synthetic option(s) {sorted(unknown)}; known: {sorted(DEFAULT_SYNTHETIC)}"
            )
        if root is None and dataset != "synthetic":
            raise ConfigError(f"data.root is required for dataset {dataset!r}")
        self.root = Path(root) if root is not None else synthetic_root(**self.synthetic)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.dataset_options = dict(dataset_options or {})
        self._tasks = list(tasks) if tasks is not None else None
        self._datasets: dict[str, Dataset] = {}
        self._info: dict[str, Any] | None = None

    # --- dataset description, available before setup() so the CLI can link it to the model ---
    def _describe(self) -> dict[str, Any]:
        if self._info is None:
            if self.dataset == "synthetic":
                from densemtl.data import synthetic

                self._info = {
                    "class_names": list(synthetic.CLASS_NAMES),
                    "class_colors": [list(c) for c in synthetic.CLASS_COLORS],
                    "tasks": ["semseg", "depth", "normals"],
                }
            else:
                probe = self._build(self.hparams.train_split, transform=None)
                self._info = {
                    "class_names": list(probe.class_names),
                    "class_colors": [list(c) for c in probe.class_colors],
                    "tasks": list(probe.tasks),
                }
        return self._info

    @property
    def tasks(self) -> list[str]:
        return self._tasks if self._tasks is not None else self._describe()["tasks"]

    @property
    def num_classes(self) -> int:
        return len(self._describe()["class_names"])

    @property
    def class_names(self) -> list[str]:
        return self._describe()["class_names"]

    @property
    def class_colors(self) -> list[list[int]]:
        return self._describe()["class_colors"]

    # --- data ---
    def prepare_data(self) -> None:
        if self.dataset == "synthetic":
            from densemtl.data.synthetic import render_dataset

            render_dataset(self.root, **self.synthetic)

    def _build(self, split: str, transform: Any) -> Any:
        name = "folder" if self.dataset == "synthetic" else self.dataset
        return build_dataset(
            name,
            root=str(self.root),
            split=split,
            tasks=self._tasks,
            transform=transform,
            **self.dataset_options,
        )

    def split_dataset(self, stage: str) -> Dataset:
        """The dataset of ``stage`` (``train``, ``val``, ``test``) with its transforms."""
        if stage not in self._datasets:
            hp = self.hparams
            split = {"train": hp.train_split, "val": hp.val_split, "test": hp.test_split}[stage]
            resize = Resize(self.image_size)
            augment = build_transforms(
                None, train=stage == "train", scales=hp.scales, flip=hp.flip, color_jitter=hp.color_jitter
            )
            if hp.cache_in_memory:
                dataset: Dataset = InMemoryDataset(
                    self._build(split, resize), augment if augment.transforms else None
                )
            else:
                dataset = self._build(split, Compose([resize, *augment.transforms]))
            if stage == "train" and hp.limit_train_samples:
                dataset = torch.utils.data.Subset(dataset, range(min(hp.limit_train_samples, len(dataset))))
            self._datasets[stage] = dataset
        return self._datasets[stage]

    def labelled_train_dataset(self) -> Dataset:
        """The training images whose labels may be used (all of them here; the semi-supervised
        data module keeps only its labelled part)."""
        return self.split_dataset("train")

    def class_pixel_counts(self, num_classes: int, max_samples: int = 2000) -> torch.Tensor:
        """Labelled pixels per class over (up to ``max_samples`` of) :meth:`labelled_train_dataset`."""
        dataset = self.labelled_train_dataset()
        counts = torch.zeros(num_classes, dtype=torch.float64)
        step = max(len(dataset) // max_samples, 1)
        for index in range(0, len(dataset), step):
            label = dataset[index].get("semseg")
            if label is not None:
                label = label[label != IGNORE_INDEX]
                counts += torch.bincount(label.flatten(), minlength=num_classes)[:num_classes].double()
        return counts

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.split_dataset("train")
            self.split_dataset("val")
        if stage in ("validate",):
            self.split_dataset("val")
        if stage in (None, "test"):
            self.split_dataset("test")

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        batch_size = hp.batch_size if stage == "train" else (hp.eval_batch_size or hp.batch_size)
        return DataLoader(
            self.split_dataset(stage),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=hp.num_workers,
            collate_fn=functools.partial(collate, tasks=self.tasks),
            drop_last=stage == "train" and len(self.split_dataset(stage)) > batch_size,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
