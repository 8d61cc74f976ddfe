"""Datasets (one file each), the sample contract and transforms."""

from densemtl.data.sample import IGNORE_INDEX, TASKS, collate, empty_label, valid_mask

__all__ = ["IGNORE_INDEX", "TASKS", "collate", "empty_label", "valid_mask"]
