"""Helpers that DDP child processes import by name (a test module would drag pytest state along):
a callback that saves each rank's parameters, and a toy multi-task model for gradient checks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from densemtl.weighting import build_weighting, select_shared_parameters

TASKS = ["semseg", "depth"]


class DumpRankState(L.Callback):
    """Writes ``<default_root_dir>/rank<r>.pt``: every parameter and the weighting's buffers."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {name: p.detach().cpu().clone() for name, p in pl_module.named_parameters()}
        state |= {
            f"weighting.{name}": b.detach().cpu().clone() for name, b in pl_module.weighting.named_buffers()
        }
        torch.save(state, Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.pt")


class ToyMTL(nn.Module):
    """Shared encoder + two heads whose targets pull the encoder in opposite directions."""

    def __init__(self, weighting: str, sync: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
        self.heads = nn.ModuleDict({t: nn.Linear(6, 1) for t in TASKS})
        with torch.no_grad():  # opposite read-outs of the same features: conflicting task gradients
            self.heads["depth"].weight.copy_(-self.heads["semseg"].weight)
        self.weighting = build_weighting(weighting, TASKS, sync=sync)
        self.shared = select_shared_parameters(self.weighting, self)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        losses = {
            "semseg": (self.heads["semseg"](z)[:, 0] - y).square().mean(),
            "depth": (self.heads["depth"](z)[:, 0] - 2 * y).abs().mean(),
        }
        return self.weighting(losses, self.shared)


def toy_data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return x, x.sum(1) + 0.3 * torch.randn(n, generator=g)


def train_toy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> None:
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        model(x, y).backward()
        optimiser.step()


def toy_state(model: ToyMTL) -> dict[str, torch.Tensor]:
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    return state | {f"weighting.{n}": b.detach().clone() for n, b in model.weighting.named_buffers()}


def toy_ddp_worker(rank: int, port: int, out: str, configs: list[tuple[str, bool]]) -> None:
    """Rank ``rank`` of 2: trains a DDP-wrapped :class:`ToyMTL` on its half of :func:`toy_data`."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        x, y = toy_data()
        half = x.shape[0] // 2
        x, y = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
        for name, sync in configs:
            model = ToyMTL(name, sync)
            train_toy(DistributedDataParallel(model), x, y)
            torch.save(toy_state(model), Path(out) / f"{name}-{sync}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()
