"""Reconstruction and semantic-map scores against a ground-truth surface (points + labels).

Geometry, as in Knapitsch et al. (Tanks and Temples, SIGGRAPH 2017) at a threshold ``tau`` (5 cm):

* accuracy: distances from every reconstructed point to the nearest GT point; reported as the mean
  and as precision ``P = |{d < tau}| / N_rec``;
* completeness: distances from every *observable* GT point to the nearest reconstructed point; mean
  and recall ``R = |{d < tau}| / N_gt``. A GT point is observable when at least one frame sees it
  within the fused depth range: it projects inside the image, in front of the camera, at a depth
  ``z <= max_depth`` that agrees with that frame's depth map within ``visibility_tolerance``
  (what a camera never saw cannot be reconstructed, so it is not counted against the map);
* F-score ``F = 2 P R / (P + R)``.

Semantics: every map point takes the label of its nearest GT point; pixel-free "semantic
accuracy" is the fraction of map points whose class equals it, and mIoU is the mean over the
classes present in either of ``|pred = c and gt = c| / |pred = c or gt = c|``. Unlabelled map
points (class ``-1``) count as wrong. Nearest neighbours: ``scipy.spatial.cKDTree``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class VisibilityAccumulator:
    """Marks the GT points seen by at least one frame (projection + depth agreement)."""

    def __init__(
        self, points: np.ndarray, visibility_tolerance: float = 0.05, max_depth: float | None = None
    ) -> None:
        self.points = torch.as_tensor(np.asarray(points, dtype=np.float32))
        self.seen = torch.zeros(len(self.points), dtype=torch.bool)
        self.tolerance = float(visibility_tolerance)
        self.max_depth = max_depth

    def add(self, depth: np.ndarray, intrinsics: np.ndarray, pose: np.ndarray) -> None:
        """Mark the points that frame ``depth`` (metres, ``[H, W]``) sees from camera-to-world ``pose``."""
        depth_t = torch.as_tensor(np.asarray(depth, dtype=np.float32))
        pose_t = torch.as_tensor(np.asarray(pose, dtype=np.float32))
        k = np.asarray(intrinsics, dtype=np.float64)
        todo = (~self.seen).nonzero().squeeze(1)  # a point seen once stays seen
        cam = (self.points[todo] - pose_t[:3, 3]) @ pose_t[:3, :3]
        z = cam[:, 2]
        zs = z.clamp_min(1e-6)
        u = torch.round(float(k[0, 0]) * cam[:, 0] / zs + float(k[0, 2])).long()
        v = torch.round(float(k[1, 1]) * cam[:, 1] / zs + float(k[1, 2])).long()
        height, width = depth_t.shape
        ok = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        if self.max_depth is not None:
            ok &= z <= self.max_depth
        measured = depth_t[v.clamp(0, height - 1), u.clamp(0, width - 1)]
        ok &= (measured > 0) & ((measured - z).abs() <= self.tolerance)
        self.seen[todo[ok]] = True


def reconstruction_metrics(
    reconstructed: np.ndarray,
    gt_points: np.ndarray,
    gt_seen: np.ndarray | None = None,
    threshold: float = 0.05,
) -> dict[str, float]:
    """Accuracy / completeness (means in metres and fractions within ``threshold``) and F-score."""
    from scipy.spatial import cKDTree

    rec = np.asarray(reconstructed, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt_points, dtype=np.float64).reshape(-1, 3)
    if gt_seen is not None:
        gt = gt[np.asarray(gt_seen, dtype=bool)]
    result: dict[str, float] = {"threshold": threshold, "num_points": len(rec), "num_gt_observed": len(gt)}
    if len(rec) == 0 or len(gt) == 0:
        return {
            **result,
            "accuracy": float("nan"),
            "precision": 0.0,
            "completeness": float("nan"),
            "recall": 0.0,
            "fscore": 0.0,
        }
    to_gt, _ = cKDTree(gt).query(rec)
    to_rec, _ = cKDTree(rec).query(gt)
    precision = float((to_gt < threshold).mean())
    recall = float((to_rec < threshold).mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        **result,
        "accuracy": float(to_gt.mean()),
        "precision": precision,
        "completeness": float(to_rec.mean()),
        "recall": recall,
        "fscore": float(fscore),
    }


def semantic_metrics(
    points: np.ndarray, classes: np.ndarray, gt_points: np.ndarray, gt_labels: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Semantic accuracy and mIoU of map points against their nearest GT point's label."""
    from scipy.spatial import cKDTree

    classes = np.asarray(classes).reshape(-1)
    if len(classes) == 0:
        return {"semantic_accuracy": 0.0, "miou": 0.0, "iou": {}}
    _, nearest = cKDTree(np.asarray(gt_points, dtype=np.float64)).query(np.asarray(points, dtype=np.float64))
    target = np.asarray(gt_labels).reshape(-1)[nearest]
    iou: dict[int, float] = {}
    for c in range(num_classes):
        union = int(((classes == c) | (target == c)).sum())
        if union:
            iou[c] = float(((classes == c) & (target == c)).sum()) / union
    return {
        "semantic_accuracy": float((classes == target).mean()),
        "miou": float(np.mean(list(iou.values()))) if iou else 0.0,
        "iou": iou,
    }
