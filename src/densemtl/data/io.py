"""Readers and writers for the per-pixel files densemtl uses, with one-line errors.

Every reader raises :class:`~densemtl.errors.DataError` naming the file and the problem
(missing, unreadable/corrupt, wrong bit depth, NaN/inf values) instead of a deep traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from densemtl.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode image ({exc.__class__.__name__}: {exc})") from None
    return image


def read_image(path: str | Path) -> np.ndarray:
    """RGB image as uint8 [H, W, 3] (greyscale / palette / RGBA converted to RGB)."""
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I", "F"):
        raise DataError(path, f"expected an 8-bit colour image, got mode {image.mode}")
    return np.array(image.convert("RGB"))


def read_label_png(path: str | Path) -> np.ndarray:
    """Integer label map as int64 [H, W]; palette PNGs give their indices, not colours."""
    image = _open(path)
    if image.mode in ("RGB", "RGBA"):
        raise DataError(path, f"label image must be single-channel (ids), got mode {image.mode}")
    if image.mode == "F":
        raise DataError(path, "label image holds floats, expected integer ids")
    return np.asarray(image).astype(np.int64)


def read_depth_png(path: str | Path, scale: float = 1000.0) -> np.ndarray:
    """16-bit depth PNG -> float32 metres (``value / scale``; 0 stays 0 = invalid)."""
    image = _open(path)
    array = np.asarray(image)
    if array.dtype not in (np.uint16, np.int32) or array.ndim != 2:
        raise DataError(path, f"depth PNG must be single-channel 16-bit, got mode {image.mode}")
    if array.min() < 0:
        raise DataError(path, "depth PNG holds negative values")
    return (array.astype(np.float32) / scale).astype(np.float32)


def read_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """``np.load`` without pickles; a missing / corrupt file, a non-numeric dtype or NaN/inf values
    are a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, f"cannot read .npy ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"{what} .npy must be numeric, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(path, f"{what} holds {int((~np.isfinite(array)).sum())} NaN/inf values")
    return array


def read_depth_npy(path: str | Path) -> np.ndarray:
    """Float depth in metres from .npy ([H, W], [H, W, 1] or [1, H, W]); NaN/inf/negative are errors."""
    array = np.squeeze(read_npy(path, "depth").astype(np.float32))
    if array.ndim != 2:
        raise DataError(path, f"depth must be 2-D, got shape {array.shape}")
    check_depth(array, path)
    return array


def check_depth(depth: np.ndarray, path: str | Path) -> None:
    """Reject NaN / inf / negative depth: they would silently poison losses and metrics."""
    if not np.isfinite(depth).all():
        raise DataError(path, f"depth holds {int((~np.isfinite(depth)).sum())} NaN/inf values")
    if (depth < 0).any():
        raise DataError(path, "depth holds negative values")


def read_normals(path: str | Path) -> np.ndarray:
    """Normals as float32 [H, W, 3]: 8/16-bit RGB PNG ``(n + 1) / 2 * max`` or float .npy.

    Vectors shorter than 0.5 are invalid and become all-zero: the all-zero pixels of .npy files and
    PNGs, and the grey (127, 127, 127) that Eigen & Fergus' NYU ``normals_gt`` (and the files derived
    from it) store outside the valid mask. The others are re-normalised to unit length.
    """
    path = Path(path)
    if path.suffix == ".npy":
        normals = read_npy(path, "normals").astype(np.float32)
        if normals.ndim == 3 and normals.shape[0] == 3 and normals.shape[-1] != 3:
            normals = normals.transpose(1, 2, 0)
    else:
        image = _open(path)
        raw = np.asarray(image)
        if raw.ndim != 3 or raw.shape[-1] < 3:
            raise DataError(path, f"normals PNG must be RGB, got mode {image.mode}")
        raw = raw[..., :3]
        peak = 65535.0 if raw.dtype == np.uint16 else 255.0
        normals = raw.astype(np.float32) * (2.0 / peak) - 1.0
        normals[raw.sum(-1) == 0] = 0.0  # (0, 0, 0) marks invalid pixels in densemtl's own PNGs
    if normals.ndim != 3 or normals.shape[-1] != 3:
        raise DataError(path, f"normals must be [H, W, 3], got shape {normals.shape}")
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    # a unit vector quantised to 8 bits keeps a length within 1 %: 0.5 separates it from "invalid"
    return np.where(norm >= 0.5, normals / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def _atomic_save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        # zlib level 1: half the encoding time of the default for ~15 % larger files
        image.save(tmp, compress_level=1) if path.suffix.lower() == ".png" else image.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 [H, W, 3] RGB (PNG lossless, JPEG at quality 95)."""
    path = Path(path)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=95)
    else:
        _atomic_save(image, path)


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write ids as uint8 PNG, or uint16 when an id exceeds 255."""
    labels = np.asarray(labels)
    if labels.min() < 0:
        raise ValueError(f"{path}: label ids must be >= 0 (use 255 for ignore)")
    dtype = np.uint8 if labels.max() <= 255 else np.uint16
    _atomic_save(Image.fromarray(labels.astype(dtype)), Path(path))


def write_depth_png(path: str | Path, depth_m: np.ndarray, scale: float = 1000.0) -> None:
    """Write metres as uint16 ``round(depth * scale)`` (mm by default); 0 = invalid."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    check_depth(depth_m, path)
    value = np.round(depth_m * scale)
    if value.max(initial=0) > 65535:
        raise ValueError(f"{path}: depth {depth_m.max():.2f} m exceeds the uint16 range at scale {scale}")
    _atomic_save(Image.fromarray(value.astype(np.uint16)), Path(path))


def write_normals_png(path: str | Path, normals: np.ndarray) -> None:
    """Write unit normals [H, W, 3] as 8-bit RGB ``(n + 1) * 127.5``; invalid (zero) -> (0, 0, 0)."""
    normals = np.asarray(normals, dtype=np.float32)
    invalid = np.abs(normals).sum(-1) == 0
    encoded = np.clip(np.round((normals + 1.0) * 127.5), 1, 255).astype(np.uint8)
    encoded[invalid] = 0
    _atomic_save(Image.fromarray(encoded, "RGB"), Path(path))
