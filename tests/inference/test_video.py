"""``densemtl predict`` on videos: streamed frames, --stride / --max-frames, timing.json, panel video, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densemtl.cli import main
from densemtl.errors import DataError
from densemtl.inference import video

av = pytest.importorskip("av")

HEIGHT, WIDTH, FRAMES = 48, 64, 8


def write_video(path: Path, frames: int = FRAMES, rate: int = 10) -> Path:
    """A tiny clip whose frames differ (a moving bright square)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            rgb = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
            rgb[10:26, 4 * i : 4 * i + 16] = 220
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # an untrained model saved like a Lightning checkpoint (as in test_pointcloud): fast, and the
    # outputs' shapes and names do not depend on training
    from densemtl.training.module import DenseMTLModule

    torch.manual_seed(0)
    module = DenseMTLModule(
        model="mt_refinenet",
        tasks=["semseg", "depth"],
        num_classes=3,
        model_options={"channels": 16, "crp_stages": 1},
    )
    path = tmp_path_factory.mktemp("ckpt") / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def predict(ckpt: Path, source: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "predict",
            "--ckpt",
            str(ckpt),
            "--input",
            str(source),
            "--output",
            str(out),
            "--size",
            "32x32",
            *extra,
        ]
    )


def test_video_stride_max_frames_timing_and_panel_video(
    ckpt: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    movie = tmp_path / "panels.mp4"
    assert predict(ckpt, clip, out, "--stride", "2", "--max-frames", "3", "--output-video", str(movie)) == 0
    # frames 0, 2, 4 (stride 2, then capped at 3), named by their index in the source video
    names = ["clip_000000", "clip_000002", "clip_000004"]
    for folder, suffix in [("semantic", "png"), ("depth", "npy"), ("depth_color", "png"), ("panel", "png")]:
        assert sorted(p.stem for p in (out / folder).glob(f"*.{suffix}")) == names, folder
    assert Image.open(out / "semantic" / "clip_000002.png").size == (WIDTH, HEIGHT)
    assert np.load(out / "depth" / "clip_000004.npy").shape == (HEIGHT, WIDTH)
    timing = json.loads((out / "timing.json").read_text())
    assert timing["frames"] == 3
    assert timing["model_fps"] > 0 and timing["end_to_end_fps"] > 0
    assert timing["model_fps"] >= timing["end_to_end_fps"]  # model time is part of the total
    assert "model" in capsys.readouterr().out
    info = video.probe(movie)
    panel = np.asarray(Image.open(out / "panel" / "clip_000002.png"))
    assert info.fps == 5  # 10 frames/s source, every 2nd frame
    even = tuple(d + d % 2 for d in panel.shape[:2])  # yuv420p pads to even sizes
    assert (info.height, info.width) == even and info.height > HEIGHT  # the panels, legends below
    sizes = {np.asarray(Image.open(p)).shape for p in (out / "panel").glob("*.png")}
    assert len(sizes) == 1  # every class in the legend, so every frame has one size
    assert count_frames(movie) == 3


def test_video_all_frames_without_panels(ckpt: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert predict(ckpt, clip, out, "--no-panel") == 0
    assert len(list((out / "semantic").glob("*.png"))) == FRAMES
    assert not (out / "panel").exists()
    assert json.loads((out / "timing.json").read_text())["frames"] == FRAMES


def test_image_folder_reports_timing(ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(folder / f"im{i}.png")
    out = tmp_path / "out"
    assert predict(ckpt, folder, out, "--no-panel", "--max-frames", "2") == 0
    assert sorted(p.stem for p in (out / "semantic").glob("*.png")) == ["im0", "im1"]
    assert json.loads((out / "timing.json").read_text())["model_fps"] > 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "cannot open video"),
        (lambda p: p.write_bytes(b""), "cannot open video"),
        (None, "input not found"),
    ],
    ids=["random-bytes", "empty-file", "missing"],
)
def test_bad_video_is_one_line_error(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content, problem: str
) -> None:
    bad = tmp_path / "bad.mp4"
    if content is not None:
        content(bad)
    assert predict(ckpt, bad, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"densemtl: error: {bad}: {problem}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_video_without_frames_or_video_stream(tmp_path: Path) -> None:
    empty = tmp_path / "empty.avi"  # AVI keeps a video stream header with zero frames
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    with pytest.raises(DataError, match=r"empty\.avi: video holds no frames"):
        list(video.iter_frames(empty))
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(DataError, match=r"audio\.mkv: file holds no video stream"):
        video.probe(audio)


def test_output_video_needs_video_input(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert predict(ckpt, tmp_path / "a.png", tmp_path / "out", "--output-video", str(tmp_path / "v.mp4")) == 2
    assert "--output-video needs a video --input" in capsys.readouterr().err


def test_video_writer_pads_odd_sizes(tmp_path: Path) -> None:
    with video.VideoWriter(tmp_path / "odd.mkv", fps=12) as writer:
        for _ in range(4):
            writer.write(np.zeros((21, 35, 3), np.uint8))
    frames = list(video.iter_frames(tmp_path / "odd.mkv", stride=3))
    assert [i for i, _ in frames] == [0, 3] and frames[0][1].shape == (22, 36, 3)
