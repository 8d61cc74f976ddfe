"""Accuracy / completeness / F-score, observability of GT points, semantic accuracy and mIoU."""

from __future__ import annotations

import numpy as np
import pytest

from densemtl.fusion.metrics import VisibilityAccumulator, reconstruction_metrics, semantic_metrics


def _plane(n: int = 50) -> np.ndarray:
    g = np.linspace(0, 1, n)
    x, y = np.meshgrid(g, g)
    return np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)


def test_exact_reconstruction_scores_one_and_an_offset_one_scores_zero() -> None:
    gt = _plane()
    m = reconstruction_metrics(gt, gt)
    assert m["fscore"] == 1.0 and m["accuracy"] == 0.0
    shifted = gt + np.array([0, 0, 0.06])
    m = reconstruction_metrics(shifted, gt)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["fscore"] == 0.0
    assert m["accuracy"] == pytest.approx(0.06)


def test_half_missing_map_halves_recall_unless_the_half_was_never_seen() -> None:
    gt = _plane()
    half = gt[gt[:, 0] < 0.5]
    m = reconstruction_metrics(half, gt)
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(0.54, abs=0.005)  # + the GT columns within 5 cm of the cut
    m = reconstruction_metrics(half, gt, gt_seen=gt[:, 0] < 0.5)
    assert m["recall"] == 1.0 and m["num_gt_observed"] == len(half)


def test_visibility_needs_projection_range_and_depth_agreement() -> None:
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 2.5], [5.0, 0.0, 2.0], [0.0, 0.0, -2.0], [0.0, 0.0, 4.0]])
    k = np.array([[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]])
    depth = np.full((10, 10), 2.0, np.float32)
    visibility = VisibilityAccumulator(points, visibility_tolerance=0.05, max_depth=3.0)
    visibility.add(depth, k, np.eye(4))
    # seen; hidden behind the wall; outside the image; behind the camera; beyond max depth
    assert visibility.seen.tolist() == [True, False, False, False, False]
    far = np.full((10, 10), 4.0, np.float32)
    visibility.add(far, k, np.eye(4))
    assert visibility.seen.tolist() == [True, False, False, False, False]  # 4 m > max depth
    visibility.max_depth = None
    visibility.add(far, k, np.eye(4))
    assert visibility.seen.tolist() == [True, False, False, False, True]


def test_semantic_accuracy_and_miou() -> None:
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    labels = np.array([0, 0, 1, 1])
    points = gt + 0.01
    m = semantic_metrics(points, np.array([0, 0, 1, -1]), gt, labels, num_classes=3)
    assert m["semantic_accuracy"] == 0.75
    assert m["iou"] == {0: 1.0, 1: 0.5}  # class 2 absent from both: not averaged
    assert m["miou"] == 0.75
