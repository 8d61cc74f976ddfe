"""The in-memory cache of DenseDataModule: decoded once, in worker processes too, the same samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Runs in a fresh interpreter: forking DataLoader workers from a long-lived, multi-threaded test
# process (after ONNX Runtime / OpenVINO tests) has crashed it (SIGSEGV in ld.so).
SCRIPT = """
import sys, torch
from densemtl.data.datamodule import DenseDataModule, InMemoryDataset
def module(**options):
    return DenseDataModule(dataset="folder", root=sys.argv[1], image_size=(24, 32), **options)
plain = module().split_dataset("val")
cached = {n: module(cache_in_memory=True, num_workers=n).split_dataset("val") for n in (0, 2)}
assert all(isinstance(d, InMemoryDataset) for d in cached.values())
assert cached[2].samples[0]["semseg"].dtype == torch.uint8  # kept small
for i in range(len(plain)):
    expected = plain[i]
    for dataset in cached.values():
        sample = dataset[i]
        assert sample["meta"]["id"] == expected["meta"]["id"]
        for key in ("image", "semseg", "depth", "normals"):
            assert sample[key].dtype == expected[key].dtype and torch.equal(sample[key], expected[key]), key
print("same", len(plain))
"""


def test_cache_decoded_by_workers_holds_the_decoded_samples(tiny_dataset: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_dataset)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "same" and int(result.stdout.split()[1]) > 0
