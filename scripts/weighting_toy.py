"""The two-task toy with conflicting objectives of CAGrad (Liu et al., NeurIPS 2021; also
Nash-MTL, Navon et al. 2022): each weighting's trajectory from the same starts, one panel each.

    .venv/bin/python scripts/weighting_toy.py            # writes docs/img/weighting_toy.png

The objectives are those of the CAGrad code (``toy.py``) plus 21, so that they are positive for the
loss-scale methods (GLS, FAMO, DB-MTL, IMTL-L take logarithms or ratios of the losses); the shift
changes no gradient. ``x`` is the "shared parameter" of both tasks (no task-specific part); the
representation-level variants coincide with the parameter-level ones here and are not drawn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from densemtl.weighting import build_weighting

TASKS = ["f1", "f2"]
STARTS = [(-8.5, 7.5), (0.0, 0.0), (9.0, 9.0)]
METHODS = {
    "fixed": {},
    "pcgrad": {},
    "gradnorm": {},
    "mgda": {},
    "gradvac": {},
    "imtl": {"level": "parameters"},
    "imtl_g": {"level": "parameters"},
    "imtl_l": {},
    "cagrad": {"c": 0.5},
    "nash_mtl": {"max_norm": 0.0},
    "aligned_mtl": {},
    "upgrad": {},
    "db_mtl": {},
    "famo": {},
    "gls": {},
    "graddrop": {},
}
LOWER, SHIFT = 5e-6, 21.0


def objectives(x: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` -> ``[..., 2]``: CAGrad's two objectives (``toy.py``), shifted by 21."""
    x1, x2 = x[..., 0], x[..., 1]
    f1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), LOWER).log() + 6
    f2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), LOWER).log() + 6
    c1 = torch.clamp(torch.tanh(x2 * 0.5), 0)
    f1_sq = ((-x1 + 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    f2_sq = ((-x1 - 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    c2 = torch.clamp(torch.tanh(-x2 * 0.5), 0)
    return torch.stack([f1 * c1 + f1_sq * c2, f2 * c1 + f2_sq * c2], -1) + SHIFT


def trajectory(name: str, start: tuple[float, float], steps: int, lr: float) -> np.ndarray:
    x = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    weighting = build_weighting(name, TASKS, **METHODS[name]).double().train()
    optimiser = torch.optim.Adam([x, *weighting.parameters()], lr=lr)
    path = [x.detach().clone().numpy()]
    for _ in range(steps):
        f = objectives(x)
        optimiser.zero_grad()
        weighting({"f1": f[0], "f2": f[1]}, [x]).backward()
        optimiser.step()
        path.append(x.detach().clone().numpy())
    return np.stack(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--lr", type=float, default=0.08)
    parser.add_argument("--out", type=Path, default=Path("docs/img/weighting_toy.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    grid = torch.stack(
        torch.meshgrid(torch.linspace(-10, 10, 201), torch.linspace(-10, 10, 201), indexing="xy"), -1
    )
    mean = objectives(grid.double()).mean(-1).numpy()
    cols = 4
    rows = -(-len(METHODS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), sharex=True, sharey=True)
    for ax, name in zip(axes.flat, METHODS):
        ax.contour(grid[..., 0], grid[..., 1], mean, levels=20, linewidths=0.5, cmap="Greys")
        for start in STARTS:
            path = trajectory(name, start, args.steps, args.lr)
            ax.plot(path[:, 0], path[:, 1], lw=1.2)
            ax.plot(*path[0], "k.", ms=4)
            ax.plot(*path[-1], "r*", ms=7)
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
    for ax in list(axes.flat)[len(METHODS) :]:
        ax.axis("off")
    fig.suptitle(
        f"CAGrad's two-task toy: {len(STARTS)} starts (black), end points (red), Adam lr {args.lr}, {args.steps} steps"
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
