"""LightningDataModule over any registered dataset (the synthetic scenes by default).

The training loader is resumable: its ``state_dict`` (saved by Lightning in every checkpoint)
holds the epoch's shuffling seed, the batches already trained on and the Python / NumPy / torch
random states, so a run resumed mid-epoch draws the same batches and augmentations as one that
was never interrupted (with ``num_workers=0``; worker processes keep their own random state).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from densemtl.data.datasets import build_dataset
from densemtl.data.sample import IGNORE_INDEX, collate
from densemtl.data.transforms import IMAGE_INTERPOLATIONS, Compose, Resize, build_transforms
from densemtl.errors import ConfigError

DEFAULT_SYNTHETIC = {"num_images": 1200, "height": 240, "width": 320, "seed": 0}


def synthetic_root(num_images: int, height: int, width: int, seed: int) -> Path:
    """The render cache of one synthetic configuration (one folder per configuration)."""
    return Path("data_cache") / f"synthetic-{num_images}-{height}x{width}-s{seed}"


class InMemoryDataset(Dataset):
    """Decodes every sample once (after ``Resize``) and applies the random transforms per access.

    On a 2-core CPU, PNG decoding and resizing would otherwise compete with the model for the
    same cores every epoch (Cityscapes: two 2-megapixel PNGs per sample, ~0.17 s of one core).
    ``num_workers > 0`` decodes in that many processes (the same values: decoding and resizing
    draw no random numbers). Class-id labels are kept as uint8 and handed out as int64 again,
    an eighth of their memory.
    """

    def __init__(self, base: Dataset, transform: Any | None, num_workers: int = 0) -> None:
        if num_workers > 0:
            loader = DataLoader(base, batch_size=None, num_workers=num_workers, collate_fn=_compact)
            # clones: tensors received from workers would each hold a shared-memory file open
            self.samples = [_private(sample) for sample in loader]
        else:
            self.samples = [_compact(base[i]) for i in range(len(base))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = _expand(self.samples[index])
        return self.transform(sample) if self.transform is not None else sample


def _compact(sample: dict[str, Any]) -> dict[str, Any]:
    label = sample.get("semseg")
    fits = isinstance(label, torch.Tensor) and label.dtype == torch.int64 and label.numel() > 0
    if fits and int(label.min()) >= 0 and int(label.max()) <= 255:
        sample = {**sample, "semseg": label.to(torch.uint8)}
    return sample


def _expand(sample: dict[str, Any]) -> dict[str, Any]:
    label = sample.get("semseg")
    if isinstance(label, torch.Tensor) and label.dtype == torch.uint8:
        sample = {**sample, "semseg": label.long()}
    return sample


def _private(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _private(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_private(v) for v in value]
    return value


log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU, and CUDA once initialised) random states, as plain
    containers and tensors so that a ``weights_only`` checkpoint can hold them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumableRandomSampler(Sampler[int]):
    """``RandomSampler(data)`` (no replacement, no generator) that can restart mid-epoch.

    Each epoch draws its seed from the global torch generator exactly as ``RandomSampler`` does
    (so an uninterrupted run sees the same order as ``shuffle=True``); :meth:`resume` replays an
    epoch from its seed, skipping the indices already used. Hand-written because torch's sampler
    keeps its per-epoch seed in a local variable.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.seed: int | None = None
        self._resume: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.length

    def resume(self, seed: int, skip: int) -> None:
        """Make the next epoch the one of ``seed``, without its first ``skip`` indices."""
        self._resume = (seed, skip)

    def __iter__(self) -> Iterator[int]:
        if self._resume is not None:
            (seed, skip), self._resume = self._resume, None
        else:
            seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        self.seed = seed
        generator = torch.Generator()
        generator.manual_seed(seed)
        yield from torch.randperm(self.length, generator=generator).tolist()[skip:]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableRandomSampler` with Lightning's ``state_dict`` /
    ``load_state_dict`` protocol for mid-epoch resumption.

    ``consumed()`` tells how many batches of the current epoch the trainer has taken (Lightning
    fetches one batch ahead, and that batch's augmentation has already drawn random numbers):
    the state keeps the random state from before that prefetched batch and the one at save
    time; a resumed loader re-makes the batch under the first, then continues from the second.
    Hand-written: torchdata's ``StatefulDataLoader`` is not a dependency, and it restores the
    sampler but not the global random state the augmentations draw from.
    """

    def __init__(self, *args: Any, consumed: Callable[[], int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._consumed = consumed
        self._fetched = 0
        self._rng_before: dict[int, dict[str, Any]] = {}
        self._pending: dict[str, Any] | None = None

    @property
    def _resumable_sampler(self) -> ResumableRandomSampler:
        sampler = self.sampler
        assert isinstance(sampler, ResumableRandomSampler)
        return sampler

    def state_dict(self) -> dict[str, Any]:
        consumed = self._consumed() if self._consumed is not None else None
        consumed = self._fetched if consumed is None else min(int(consumed), self._fetched)
        return {
            "seed": self._resumable_sampler.seed,
            "consumed": consumed,
            "fetched": self._fetched,
            "batch_size": self.batch_size,
            "rng": capture_rng(),
            "rng_next": self._rng_before.get(consumed),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = dict(state)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        state = self._pending
        mid_epoch = (
            state is not None
            and state["seed"] is not None
            and state["consumed"] < len(self)
            and state["batch_size"] == self.batch_size
        )
        position = self._consumed() if self._consumed is not None else None
        if state is not None and not mid_epoch and position is not None and position >= len(self):
            # saved at an epoch's end: Lightning first drains that (finished) epoch, then asks
            # for the next one, whose seed must come from the saved random state
            self._fetched = 0
            return iter(())
        self._pending = None
        if state is not None and not mid_epoch:
            restore_rng(state["rng"])  # a new epoch draws its seed from the saved state
        if mid_epoch:
            self._resumable_sampler.resume(state["seed"], state["consumed"] * self.batch_size)
        self._fetched = state["consumed"] if mid_epoch else 0
        self._rng_before = {}
        return self._tracked(super().__iter__(), state if mid_epoch else None)

    def _tracked(self, iterator: Iterator[Any], resume: dict[str, Any] | None) -> Iterator[Any]:
        if resume is not None and resume["rng_next"] is None:
            restore_rng(resume["rng"])
            resume = None
        elif resume is not None:
            restore_rng(resume["rng_next"])
        while True:
            self._rng_before = {
                self._fetched: capture_rng(),
                **{k: v for k, v in self._rng_before.items() if k >= self._fetched - 2},
            }
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self._fetched += 1
            if resume is not None:  # the prefetched batch is re-made: continue from the save time
                restore_rng(resume["rng"])
                resume = None
            yield batch


def panel_ranges(
    dataset: str, dataset_options: dict[str, Any] | None = None
) -> dict[str, tuple[float, float]]:
    """The fixed colour ranges of prediction panels for a dataset: ``{"depth": (lo, hi)}`` from its
    ``depth_display_range`` when its depth label holds metres, else ``{}`` (each panel its own range)."""
    if dataset == "synthetic":
        from densemtl.data.synthetic import DEPTH_DISPLAY_RANGE

        return {"depth": DEPTH_DISPLAY_RANGE}
    from densemtl.data.datasets import dataset_class

    cls = dataset_class(dataset)
    target = (dataset_options or {}).get("depth_target", getattr(cls, "depth_target", "depth"))
    display = getattr(cls, "depth_display_range", None)
    return {"depth": tuple(display)} if display is not None and target == "depth" else {}


class DenseDataModule(L.LightningDataModule):
    """Train / val / test loaders with depth-correct augmentation.

    Args:
        dataset: registered dataset name (``synthetic``, ``folder``, ``nyuv2``, ...).
        root: dataset folder; for ``synthetic`` the render cache (default
            ``data_cache/synthetic-<N>-<H>x<W>-s<seed>``).
        tasks: tasks to load (default: all the dataset provides).
        image_size: (height, width) every sample is resized to.
        image_interpolation: how the image is resized to ``image_size``: ``bilinear`` (default,
            antialiased when shrinking) or ``nearest`` (XTasC-Net's Cityscapes pre-processing).
        batch_size / eval_batch_size / num_workers: loader settings.
        scales / flip / color_jitter: training augmentation (see ``densemtl.data.transforms``).
        cache_in_memory: decode each sample once (with ``num_workers`` processes) and keep it in RAM.
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
        image_interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if image_interpolation not in IMAGE_INTERPOLATIONS:
            raise ConfigError(
                f"data.image_interpolation must be one of {list(IMAGE_INTERPOLATIONS)}, got {image_interpolation!r}"
            )
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

    @property
    def panel_ranges(self) -> dict[str, tuple[float, float]]:
        """Fixed colour ranges of prediction panels per task (:func:`panel_ranges`)."""
        return panel_ranges(self.dataset, self.dataset_options)

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
            resize = Resize(self.image_size, hp.get("image_interpolation", "bilinear"))
            augment = build_transforms(
                None, train=stage == "train", scales=hp.scales, flip=hp.flip, color_jitter=hp.color_jitter
            )
            if hp.cache_in_memory:
                dataset: Dataset = InMemoryDataset(
                    self._build(split, resize), augment if augment.transforms else None, hp.num_workers
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

    def missing_labels(self, stage: str = "train") -> dict[str, int]:
        """Samples of ``stage`` lacking each task's label (a sample without a label file trains
        without that task's loss). Counted from the label files where the dataset can say
        (``label_path``, e.g. the folder format) or from the cached samples; else empty."""
        dataset = self.split_dataset(stage)
        indices: Sequence[int] = range(len(dataset))
        if isinstance(dataset, torch.utils.data.Subset):
            dataset, indices = dataset.dataset, dataset.indices
        counts: dict[str, int] = {}
        for task in self.tasks:
            if isinstance(dataset, InMemoryDataset):
                lacking = sum(task not in dataset.samples[i] for i in indices)
            elif hasattr(dataset, "label_path") and hasattr(dataset, "ids"):
                pseudo = getattr(dataset, "use_pseudo", False)
                lacking = sum(
                    dataset.label_path(task, dataset.ids[i]) is None
                    and not (pseudo and dataset.label_path(task, dataset.ids[i], pseudo=True))
                    for i in indices
                )
            else:
                continue
            if lacking:
                counts[task] = int(lacking)
        return counts

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.split_dataset("train")
            self.split_dataset("val")
            if not getattr(self, "_missing_logged", False):  # once, even when setup runs again
                self._missing_logged = True
                total = len(self.split_dataset("train"))
                for task, lacking in self.missing_labels("train").items():
                    log.warning(
                        "train split: %d of %d samples lack a %s label; they train without the %s loss "
                        "(`densemtl data check` lists them)",
                        lacking,
                        total,
                        task,
                        task,
                    )
        if stage in ("validate",):
            self.split_dataset("val")
        if stage in (None, "test"):
            self.split_dataset("test")

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        batch_size = hp.batch_size if stage == "train" else (hp.eval_batch_size or hp.batch_size)
        dataset = self.split_dataset(stage)
        options: dict[str, Any] = {
            "batch_size": batch_size,
            "num_workers": hp.num_workers,
            "collate_fn": functools.partial(collate, tasks=self.tasks),
            "drop_last": stage == "train" and len(dataset) > batch_size,
            "persistent_workers": hp.num_workers > 0,
        }
        trainer = getattr(self, "trainer", None)
        # under DDP Lightning swaps a plain shuffle for its DistributedSampler: keep that path
        if shuffle and (trainer is None or trainer.world_size == 1):
            return ResumableDataLoader(
                dataset, sampler=ResumableRandomSampler(len(dataset)), consumed=self._batches_taken, **options
            )
        return DataLoader(dataset, shuffle=shuffle, **options)

    def _batches_taken(self) -> int | None:
        """Training batches of the current epoch handed to the model (None outside a Trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
