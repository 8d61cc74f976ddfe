"""Dataset writer: folder-format output (docs/data.md), the parameter manifest that makes it a
cache, an inter-process lock, parallel rendering and the throughput benchmark."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.pool
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from densemtl.data.synthetic.render import render_scene
from densemtl.data.synthetic.scene import CLASS_COLORS, CLASS_NAMES, GENERATOR_VERSION, intrinsics_for

MANIFEST_NAME = "synthetic.json"
_SAMPLE_DIRS = ("rgb", "depth", "semantic", "normals")


def image_seed(seed: int, index: int) -> int:
    """Seed of image ``index`` of a dataset made with ``seed``: independent of ``num_images``, so a
    bigger dataset extends a smaller one with the same images."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def _split_ids(ids: list[str], fractions: Sequence[float]) -> dict[str, list[str]]:
    names = ("train", "val", "test")
    total = float(sum(fractions))
    n = len(ids)
    counts = [0, 0, 0]
    for k in (1, 2):
        if fractions[k] > 0:
            counts[k] = max(1, round(n * fractions[k] / total)) if n >= 3 else 0
    counts[0] = n - counts[1] - counts[2]
    out, start = {}, 0
    for name, count in zip(names, counts):
        if count > 0:
            out[name] = ids[start : start + count]
        start += count
    return out


def _manifest(
    num_images: int, height: int, width: int, seed: int, splits: Sequence[float]
) -> dict[str, object]:
    return {
        "generator": "densemtl.data.synthetic",
        "version": GENERATOR_VERSION,
        "num_images": int(num_images),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
        "splits": [float(f) for f in splits],
    }


def _count_files(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".png"))
    except FileNotFoundError:
        return 0


def _manifest_matches(path: Path, params: dict[str, object]) -> bool:
    """The manifest at ``path`` records ``params`` and says the output is complete."""
    try:
        recorded = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool(recorded.get("complete")) and {k: recorded.get(k) for k in params} == params


def _is_complete(root: Path, params: dict[str, object]) -> bool:
    """Same generation parameters recorded as complete, metadata present, every sample file there."""
    if not _manifest_matches(root / MANIFEST_NAME, params):
        return False
    if not (root / "classes.json").is_file() or not (root / "splits").is_dir():
        return False
    return all(_count_files(root / d) >= int(params["num_images"]) for d in _SAMPLE_DIRS)  # type: ignore[call-overload]


def _render_and_write(job: tuple[str, int, int, int, int]) -> int:
    """Worker: render image ``index`` and write it; returns the index (arrays never cross processes)."""
    from densemtl.data.datasets.folder import write_sample

    root, index, seed, height, width = job
    s = render_scene(image_seed(seed, index), height, width)
    write_sample(root, f"{index:06d}", rgb=s.rgb, depth=s.depth, semantic=s.semantic, normals=s.normals)
    return index


def _render_only(job: tuple[int, int, int]) -> int:
    seed, height, width = job
    return int(render_scene(seed, height, width).semantic[0, 0])


def _pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker pool forked from a fork server where there is one (Linux, macOS), else spawned.

    Not a plain ``fork`` of the caller: the caller may hold threads (torch's intra-op pool,
    OpenVINO, a test runner's I/O), and forking a multi-threaded process is unsafe; under pytest-xdist
    it took a test worker down. The server is a fresh single-threaded interpreter that imports the
    renderer once, so each worker is still a cheap fork.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "densemtl.data.synthetic.trajectory"])
    else:  # pragma: no cover - Windows
        context = multiprocessing.get_context("spawn")
    return context.Pool(workers)


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Inter-process lock on a file beside ``root`` (POSIX ``flock``; no lock elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.synthetic.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _render_into(
    root: Path, params: dict[str, Any], workers: int, progress: bool, job: Callable[[Any], int]
) -> None:
    """Render every image with ``job`` (:func:`_render_and_write` or a wrapper) and write the metadata."""
    num_images, height, width, seed = params["num_images"], params["height"], params["width"], params["seed"]
    _claim_folder(root, MANIFEST_NAME, (*_SAMPLE_DIRS, "splits"))
    _write_manifest(root, {**params, "complete": False})  # marks the folder ours, even if interrupted
    jobs = [(str(root), i, int(seed), int(height), int(width)) for i in range(num_images)]
    _run_jobs(job, jobs, workers, f"rendering synthetic scenes {height}x{width}", progress, chunksize=4)
    ids = [f"{i:06d}" for i in range(num_images)]
    _write_folder_metadata(root, height, width, _split_ids(ids, params["splits"]))
    _write_manifest(root, {**params, "complete": True, "classes": list(CLASS_NAMES)})  # last: all is there


def _claim_folder(root: Path, manifest_name: str, stale: Sequence[str]) -> None:
    """Make ``root`` ready to (re)write: remove our ``stale`` outputs when ``manifest_name`` marks it
    ours, refuse a non-empty folder that it does not (user data is never overwritten)."""
    from densemtl.errors import DataError

    if (root / manifest_name).exists():  # our own output with other parameters (or unfinished)
        for name in stale:
            _remove_tree(root / name)
    elif root.exists() and any(root.iterdir()):
        raise DataError(
            root,
            f"folder is not empty and holds no {manifest_name}; refusing to write synthetic data into it",
        )
    root.mkdir(parents=True, exist_ok=True)


def _run_jobs(
    job: Callable[[Any], Any], jobs: Sequence[Any], workers: int, desc: str, progress: bool, chunksize: int
) -> None:
    """Run ``job`` on every item, in a process pool when ``workers > 1``, with a progress bar."""
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress) as bar:
        if workers > 1 and len(jobs) > 1:
            with _pool(min(workers, len(jobs))) as pool:
                for _ in pool.imap_unordered(job, jobs, chunksize=chunksize):
                    bar.update(1)
        else:
            for item in jobs:
                job(item)
                bar.update(1)


def _write_folder_metadata(root: Path, height: int, width: int, splits: dict[str, list[str]]) -> None:
    """``classes.json``, ``intrinsics.json`` (at ``height`` x ``width``) and ``splits/`` of the folder format."""
    from densemtl.data.datasets.folder import write_metadata

    fx, fy, cx, cy = intrinsics_for(height, width)
    write_metadata(
        root,
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
        intrinsics={"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        splits=splits,
    )


def _write_manifest(root: Path, content: dict[str, object], name: str = MANIFEST_NAME) -> None:
    tmp = root / f".{name}.tmp"
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, root / name)


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)


def benchmark_render(height: int = 240, width: int = 320, num_images: int = 40, workers: int = 2) -> float:
    """Rendering throughput in images/s (scene generation + ray casting, no disk writes).

    With ``workers > 1`` the pool is started and warmed up before the clock starts, so the
    number is the steady-state rate :func:`render_dataset` can reach before PNG encoding.
    """
    jobs = [(image_seed(12345, i), height, width) for i in range(num_images)]
    if workers <= 1:
        _render_only(jobs[0])
        start = time.perf_counter()
        for job in jobs:
            _render_only(job)
        return num_images / (time.perf_counter() - start)
    with _pool(workers) as pool:
        pool.map(_render_only, jobs[:workers], chunksize=1)
        start = time.perf_counter()
        pool.map(_render_only, jobs, chunksize=2)
        return num_images / (time.perf_counter() - start)
