"""Time and memory of one training step per weighting, relative to ``fixed``, on the demo recipe.

    .venv/bin/python scripts/weighting_cost.py [--rounds 5] [--methods fixed mgda ...]

The model of ``configs/demo.yaml`` (hard_sharing, ResNet-18, 64-channel FPN, channels-last) on
random 12 x 3 x 96 x 128 batches (semseg + depth; the class-frequency weights of the recipe are
left out: they need the dataset and do not change the cost). One step = forward, losses,
weighting, backward, AdamW step. The methods run interleaved (A B C A B C ...: a machine whose load
drifts hits them alike), each round one step per method after one untimed warm-up round; the
table gives medians, the per-round ratio to ``fixed`` (median and range). Memory: the peak of the step above the memory in
use before it (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's resident set,
sampled every 2 ms). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from densemtl.training.module import DenseMTLModule
from densemtl.weighting import WEIGHTINGS

# every registered strategy, ``fixed`` (the reference) first; xtasc_groups needs XTasC-Net's terms
DEFAULT_METHODS = ["fixed", *(n for n in WEIGHTINGS.names() if n not in ("fixed", "xtasc_groups"))]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


class _PeakRSS:
    """Samples ``/proc/self/statm`` in a thread: the peak resident set during a ``with`` block."""

    def __enter__(self) -> _PeakRSS:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())


def build(name: str, device: torch.device) -> tuple[DenseMTLModule, torch.optim.Optimizer]:
    model = yaml.safe_load(CONFIG.read_text())["model"]
    module = DenseMTLModule(
        model=model["model"],
        tasks=model["tasks"],
        model_options=model["model_options"],
        losses={"semseg": "cross_entropy", "depth": model["losses"]["depth"]},
        weighting=name,
        channels_last=model["channels_last"],
        log_images=0,
    ).to(device)
    return module.train(), torch.optim.AdamW(module.parameters(), lr=model["lr"])


def step(module: DenseMTLModule, optimiser: torch.optim.Optimizer, batch: dict[str, Any]) -> None:
    optimiser.zero_grad(set_to_none=True)
    total = module.weighted_loss(module.compute_losses(module(batch["image"]), batch))
    total.backward()
    optimiser.step()


def measure(
    module: DenseMTLModule, optimiser: torch.optim.Optimizer, batch: dict[str, Any]
) -> tuple[float, float]:
    """Seconds and peak extra MiB of one step."""
    cuda = batch["image"].is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        step(module, optimiser, batch)
        torch.cuda.synchronize()
        return time.perf_counter() - start, (torch.cuda.max_memory_allocated() - base) / 2**20
    with _PeakRSS() as rss:
        start = time.perf_counter()
        step(module, optimiser, batch)
        seconds = time.perf_counter() - start
    return seconds, (rss.peak - rss.start) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if "fixed" not in args.methods:
        args.methods.insert(0, "fixed")
    device = torch.device(args.device)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(12, 3, 96, 128, generator=g),
        "semseg": torch.randint(0, 8, (12, 96, 128), generator=g),
        "depth": torch.rand(12, 1, 96, 128, generator=g) + 0.5,
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    runs = {name: build(name, device) for name in args.methods}
    times: dict[str, list[float]] = {n: [] for n in args.methods}
    memory: dict[str, list[float]] = {n: [] for n in args.methods}
    for round_ in range(args.rounds + 1):
        for name in args.methods:
            seconds, mib = measure(*runs[name], batch)
            if round_ > 0:  # round 0 warms up (allocator, AdamW state, solver imports)
                times[name].append(seconds)
                memory[name].append(mib)
    m0 = statistics.median(memory["fixed"])
    print(f"{args.rounds} interleaved rounds on {device} ({torch.get_num_threads()} threads), medians:\n")
    # per-round ratios (the same round's fixed step): their range is the spread of the ratio.
    # Memory has no ratio: fixed's extra is near 0 on CPU (the allocator reuses freed pages).
    print(
        "| weighting | s / step | x fixed (median, min-max over rounds) | peak extra MiB | MiB above fixed |"
    )
    print("|---|---|---|---|---|")
    for name in args.methods:
        t, m = statistics.median(times[name]), statistics.median(memory[name])
        ratios = [a / b for a, b in zip(times[name], times["fixed"])]
        spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {name} | {t:.3f} | {spread} | {m:.0f} | {m - m0:+.0f} |")


if __name__ == "__main__":
    main()
