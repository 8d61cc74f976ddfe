"""The added gradient- and statistics-based weightings under 2-process DDP (gloo, CPU): both ranks
stay identical and equal one process on the global batch (the toy of ``tests/training/ddp_helpers``:
shared encoder, two heads with conflicting read-outs, 8 + 8 samples vs 16, 3 SGD steps)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from ddp_helpers import ToyMTL, toy_data, toy_ddp_worker, toy_state, train_toy  # noqa: E402

from densemtl.weighting import WEIGHTINGS  # noqa: E402

# every added method with a cross-process statistic (imtl_l is a plain learned loss scale: linear)
EARLIER = {"fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "rlw", "xtasc_groups"}
METHODS = [name for name in WEIGHTINGS.names() if name not in EARLIER | {"imtl_l"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_added_weightings_under_ddp_equal_the_global_batch(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    configs = [(name, True) for name in METHODS]
    mp.spawn(toy_ddp_worker, args=(_free_port(), str(tmp_path), configs), nprocs=2, join=True)
    x, y = toy_data()
    for name, sync in configs:
        reference = ToyMTL(name, sync)
        initial = toy_state(reference)
        train_toy(reference, x, y)
        expected = toy_state(reference)
        ranks = [torch.load(tmp_path / f"{name}-{sync}-rank{r}.pt") for r in (0, 1)]
        for key in expected:
            assert torch.equal(ranks[0][key], ranks[1][key]), (name, key)
            assert torch.allclose(ranks[0][key], expected[key], atol=1e-5), (name, key)
        assert not torch.allclose(initial["encoder.0.weight"], expected["encoder.0.weight"])


def test_per_process_statistics_differ_from_the_global_batch(tmp_path: Path) -> None:
    """``sync=False`` solves on each process's own half: another method, which this data tells apart."""
    import torch.multiprocessing as mp

    configs = [("mgda", False), ("mgda_ub", False), ("gls", False)]
    mp.spawn(toy_ddp_worker, args=(_free_port(), str(tmp_path), configs), nprocs=2, join=True)
    x, y = toy_data()
    for name, sync in configs:
        reference = ToyMTL(name, True)
        train_toy(reference, x, y)
        expected = toy_state(reference)
        rank0 = torch.load(tmp_path / f"{name}-{sync}-rank0.pt")
        assert not all(torch.allclose(rank0[k], v, atol=1e-5) for k, v in expected.items()), name
