"""Report picture: the fused mesh (coloured by class) beside the GT surface, from two viewpoints.

Drawn with matplotlib's 3D axes on the Agg backend (no display needed) as point sprites of the
mesh vertices and of the GT samples, at most ``max_points`` of each (a fixed-seed subsample). The
top ``cut`` fraction of the scene's height is cut away so the inside of a room shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from densemtl.fusion.mesh import SemanticMesh, class_colors
from densemtl.fusion.sequences import Surface


def _subsample(points: np.ndarray, colors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    if len(points) <= count:
        return points, colors
    pick = np.random.default_rng(0).choice(len(points), count, replace=False)
    return points[pick], colors[pick]


def render_comparison(
    path: str | Path,
    mesh: SemanticMesh,
    surface: Surface | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    views: Sequence[tuple[float, float]] = ((35.0, -60.0), (60.0, 120.0)),
    max_points: int = 30000,
    cut: float = 0.15,
) -> Path:
    """Write a PNG with one row per viewpoint ``(elevation, azimuth)`` in degrees: map | GT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("fused mesh", mesh.vertices, mesh.colors)]
    if surface is not None:
        labels = surface.labels if surface.labels is not None else np.full(len(surface.points), -1)
        panels.append(("ground-truth surface", surface.points, class_colors(np.asarray(labels), palette)))
    everything = np.concatenate([p for _, p, _ in panels if len(p)] or [np.zeros((1, 3))])
    lower, upper = everything.min(0), everything.max(0)
    top = upper[2] - cut * (upper[2] - lower[2])
    figure = plt.figure(figsize=(4.5 * len(panels), 4.0 * len(views)))
    for row, (elevation, azimuth) in enumerate(views):
        for col, (title, points, colors) in enumerate(panels):
            axes = figure.add_subplot(len(views), len(panels), row * len(panels) + col + 1, projection="3d")
            keep = points[:, 2] <= top
            p, c = _subsample(points[keep], np.asarray(colors)[keep], max_points)
            axes.scatter(p[:, 0], p[:, 1], p[:, 2], c=c / 255.0, s=1.5, marker=".", linewidths=0)
            axes.set_xlim(lower[0], upper[0])
            axes.set_ylim(lower[1], upper[1])
            axes.set_zlim(lower[2], upper[2])
            axes.set_box_aspect(np.maximum(upper - lower, 1e-3))
            axes.view_init(elev=elevation, azim=azimuth)
            axes.set_title(f"{title} ({len(points)} points)" if row == 0 else "", fontsize=9)
            axes.tick_params(labelsize=6)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
