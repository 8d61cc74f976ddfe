"""Video input / output for ``densemtl predict``, through PyAV (which bundles ffmpeg).

Frames are decoded one at a time, so a video of any length runs in constant memory. Every PyAV
error becomes a one-line :class:`~densemtl.errors.DataError` naming the file. ``av`` is imported
lazily: image-only use of densemtl never loads ffmpeg.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from densemtl.errors import DataError, DenseMTLError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
# encoders tried in order for --output-video: H.264 where the container takes it, else the
# always-built-in MPEG-4 part 2, else VP9 (the only one of these .webm accepts)
_ENCODERS = ("libx264", "mpeg4", "libvpx-vp9")


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise DenseMTLError("video input/output needs PyAV: pip install av") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says; ``frames`` is 0 when the container does not store a count."""

    width: int
    height: int
    fps: Fraction | None
    frames: int


def probe(path: str | Path) -> VideoInfo:
    """Header of the first video stream; a missing, corrupt or video-less file is a DataError."""
    with _open(path) as container:
        stream = container.streams.video[0]
        # PyAV >= 19 returns an AVRational (falsy 0/1 when unknown), older versions a Fraction or None
        rate = stream.average_rate
        fps = Fraction(rate.numerator, rate.denominator) if rate else None
        return VideoInfo(stream.width, stream.height, fps, int(stream.frames or 0))


def _open(path: str | Path) -> Any:
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot open video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise DataError(path, "file holds no video stream")
    return container


def _reason(exc: BaseException) -> str:
    # PyAV messages end with ": '<path>'", which the DataError already names
    text = str(getattr(exc, "strerror", None) or exc)
    return f"{exc.__class__.__name__}: {text}"


def iter_frames(
    path: str | Path, stride: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame index, uint8 RGB [H, W, 3])`` for every ``stride``-th frame, at most ``max_frames``.

    Skipped frames are still decoded (inter-frame codecs need them) but not converted to RGB.
    A video from which no frame decodes is a DataError.
    """
    av = _av()
    path = Path(path)
    yielded = 0
    index = -1
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # multi-threaded decode: decode is often the bottleneck on CPU
        try:
            for frame in container.decode(stream):
                index += 1
                if index % stride:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                yield index, rgb
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise DataError(path, f"cannot decode frame {index + 1} ({_reason(exc)})") from None
    if index < 0:
        raise DataError(path, "video holds no frames")


class VideoWriter:
    """Encode uint8 RGB frames into a video file (yuv420p, so sizes are padded to even numbers).

    The file and its encoder are checked at construction, before any frame is predicted; the frame
    size is fixed by the first frame and later frames of another size are rescaled to it.
    """

    def __init__(self, path: str | Path, fps: Fraction | float = 30) -> None:
        av = _av()
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)  # MPEG-4 rejects time bases finer than 1/65535
        self.frames = 0
        self._stream: Any = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container: Any = av.open(str(self.path), "w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise DataError(self.path, f"cannot write video ({_reason(exc)})") from None
        # codecs the container (chosen by the file suffix) accepts; an old PyAV without the list: try all
        supported = getattr(self._container, "supported_codecs", None) or set(_ENCODERS)
        self.codec = next((c for c in _ENCODERS if c in supported and _has_encoder(av, c)), None)
        if self.codec is None:
            self.close()
            raise DataError(self.path, f"no encoder for this container (tried {', '.join(_ENCODERS)})")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write(self, rgb: np.ndarray) -> None:
        av = _av()
        if self._stream is None:
            height, width = rgb.shape[:2]
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.width, self._stream.height = width + width % 2, height + height % 2
            self._stream.pix_fmt = "yuv420p"
        height, width = self._stream.height, self._stream.width
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        if (frame.height, frame.width) != (height, width):
            frame = frame.reformat(width=width, height=height)
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush and finish the file (a writer that got no frame leaves no file)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                self._container.mux(self._stream.encode(None))  # the encoder's delayed frames
        finally:
            self._container.close()
            self._container = None


def _has_encoder(av: Any, name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:  # an encoder left out of this ffmpeg build
        return False
    return True
