"""Procedural textures: pure functions of coordinates (metres) and material parameters.

Colours are channel-first float32 arrays [3, n] (row operations are several times faster than
[n, 3]). Randomness lives in the material parameters, never here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from densemtl.data.synthetic.scene import _F32, Color, Decal, Material


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell (uint32 arithmetic)."""
    h = i.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343) ^ j.astype(np.int64).astype(
        np.uint32
    ) * np.uint32(0xD8163841)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


@functools.lru_cache(maxsize=4096)
def _wave_params(seed: int, scale: float, ndim: int, n: int) -> tuple[tuple[tuple[float, ...], float], ...]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        freq = rng.normal(size=ndim)
        freq *= 2 * math.pi / (scale * (np.linalg.norm(freq) + 1e-9)) * rng.uniform(0.6, 1.6)
        out.append((tuple(float(f) for f in freq), float(rng.uniform(0, 2 * math.pi))))
    return tuple(out)


def _waves(seed: int, scale: float, *coords: np.ndarray, n: int = 2) -> np.ndarray:
    """Smooth noise in [-1, 1]: a sum of ``n`` random plane waves of wavelength ~``scale`` metres."""
    out = None
    for freq, phase in _wave_params(seed, scale, len(coords), n):
        arg = coords[0] * _F32(freq[0]) + _F32(phase)
        for f, c in zip(freq[1:], coords[1:]):
            arg += c * _F32(f)
        term = np.sin(arg, out=arg)
        out = term if out is None else out + term
    return out * _F32(1.0 / n)  # type: ignore[operator]


def _col(c: Color) -> np.ndarray:
    return np.asarray(c, dtype=_F32)[:, None]


def _solid(c: Color, n: int) -> np.ndarray:
    out = np.empty((3, n), dtype=_F32)
    out[:] = _col(c)
    return out


def _mix(c0: Color, c1: Color, w: np.ndarray) -> np.ndarray:
    """Per-pixel blend [3, n] of two colours with weights ``w`` (0 -> c0, 1 -> c1)."""
    a, b = _col(c0), _col(c1)
    return a + (b - a) * w[None, :].astype(_F32, copy=False)


def _wood(light: Color, dark: Color, ring: float, seed: int, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Wood grain: stripes along ``u`` (the grain), wobbling; ``q`` is the across-grain coordinate
    and ``ring`` the number of grain lines per metre."""
    wob = np.sin(u * _F32(1.7) + _F32(seed % 7)) * _F32(0.07)
    g = np.sin((q + wob) * _F32(ring * 2 * math.pi))
    g2 = np.sin((q * _F32(3.3) + wob) * _F32(ring * 2 * math.pi))
    w = np.clip(g * _F32(0.21) + g2 * _F32(0.14) + _F32(0.35), 0, 1)
    return _mix(light, dark, w)


def _texture_surface(m: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo [3, n] of a room surface (walls, floor, ceiling) at surface coordinates (u, v)."""
    n = u.shape[0]
    base = m.colors[0]
    kind = m.kind
    if kind == "plain":
        return _solid(base, n)
    if kind == "paint":
        return _col(base) * (1 + _F32(0.035) * _waves(m.seed, 1.5, u, v))[None, :]
    if kind in ("stripes", "pattern"):
        if kind == "stripes":
            w = (u * _F32(1.0 / m.params[0])) % 1.0 < m.params[1]
        else:
            k = _F32(2 * math.pi / m.params[0])
            w = np.sin(u * k) * np.sin(v * k) > 0.35
        return _mix(base, m.colors[1], w) * (1 + _F32(0.03) * _waves(m.seed, 1.0, u, v))[None, :]
    if kind == "tiles":
        size, grout = m.params[0], m.params[1]
        su, sv = u * _F32(1.0 / size), v * _F32(1.0 / size)
        i, j = np.floor(su), np.floor(sv)
        fu, fv = su - i, sv - j
        edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) * _F32(size)
        h = _hash(i, j, m.seed)
        out = (
            _mix(base, m.colors[2], (i + j) % 2)
            if len(m.params) > 2 and m.params[2] > 0.5
            else _solid(base, n)
        )
        out *= (h * _F32(0.2) + _F32(0.9) + _F32(0.04) * _waves(m.seed + 1, 0.3, u, v))[None, :]
        g = edge < grout
        out[:, g] = _col(m.colors[1])
        return out
    if kind == "planks":
        width, length, along_u = m.params[0], m.params[1], m.params[2] > 0.5
        a, b = (u, v) if along_u else (v, u)
        rb = b * _F32(1.0 / width)
        row = np.floor(rb)
        off = _hash(row, row, m.seed) * _F32(length)
        ra = (a + off) * _F32(1.0 / length)
        col = np.floor(ra)
        fa, fb = ra - col, rb - row
        h = _hash(row, col, m.seed + 3)
        out = _wood(m.colors[0], m.colors[1], m.params[3], m.seed, a + h * _F32(5.0), b + h)
        out *= (h * _F32(0.3) + _F32(0.85))[None, :]
        gap = (np.minimum(fb, 1 - fb) * _F32(width) < 0.003) | (np.minimum(fa, 1 - fa) * _F32(length) < 0.003)
        out[:, gap] *= _F32(0.45)
        return out
    if kind == "carpet":
        h = _hash(np.floor(u * _F32(150)), np.floor(v * _F32(150)), m.seed)
        return _col(base) * (h * _F32(0.12) + _F32(0.88) + _F32(0.06) * _waves(m.seed, 0.8, u, v))[None, :]
    return _solid(base, n)


def _texture_decal(d: Decal, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo [3, n] and emissive mask (or None) of a decal at local coordinates (s, t): metres from
    its lower-left corner as seen from inside the room."""
    m = d.material
    n = s.shape[0]
    w, h = d.u1 - d.u0, d.v1 - d.v0
    kind = m.kind
    if kind == "door":
        casing, wood = m.params[0], m.params[1] > 0.5
        panels, knob_left = int(m.params[2]), m.params[3] > 0.5
        if wood:
            out = _wood(m.colors[0], m.colors[1], m.params[4], m.seed, t, s)
        else:
            out = _col(m.colors[0]) * (1 + _F32(0.02) * _waves(m.seed, 0.5, s, t))[None, :]
        frame = (s < casing) | (s > w - casing) | (t > h - casing)
        # panel outlines: thin darker rectangles on the leaf
        ls, lt = s - _F32(casing + 0.09), t - _F32(0.12)
        pw, ph = w - 2 * casing - 0.18, (h - casing - 0.3) / max(panels, 1)
        rel_t = lt * _F32(1.0 / ph)
        row = np.floor(rel_t)
        ft = (rel_t - row) * _F32(ph)
        inside = (ls > 0) & (ls < pw) & (row >= 0) & (row < panels) & (ft < ph - 0.06)
        line = inside & ((ls < 0.015) | (ls > pw - 0.015) | (ft < 0.015) | (ft > ph - 0.075))
        out[:, line] *= _F32(0.72)
        out[:, frame] = _col(m.colors[2])
        kx = casing + 0.08 if knob_left else w - casing - 0.08
        knob = (s - _F32(kx)) ** 2 + (t - _F32(1.0)) ** 2 < _F32(0.03**2)
        out[:, knob] = _col(m.colors[3])
        return out, None
    if kind == "window":
        frame_w, vbar, hbar_at = m.params[0], m.params[1] > 0.5, m.params[2]
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        if vbar:
            frame |= np.abs(s - _F32(w / 2)) < _F32(frame_w * 0.5)
        if hbar_at > 0:
            frame |= np.abs(t - _F32(h * hbar_at)) < _F32(frame_w * 0.5)
        sky = _mix(m.colors[1], m.colors[2], np.clip(t * _F32(1.0 / h), 0, 1))
        if m.params[3] > 0.5:  # trees / buildings outside, up to a wavy horizon
            horizon = _F32(m.params[4] * h) + _F32(0.12 * h) * _waves(m.seed, 0.6, s)
            ground = t < horizon
            shade = _F32(0.75) + _F32(0.25) * _waves(m.seed + 5, 0.15, s[ground], t[ground])
            sky[:, ground] = _col(m.colors[3]) * shade[None, :]
        sky[:, frame] = _col(m.colors[0])
        return sky, ~frame
    if kind == "picture":
        frame_w, mat_w, style = m.params[0], m.params[1], int(m.params[2])
        frame = (s < frame_w) | (s > w - frame_w) | (t < frame_w) | (t > h - frame_w)
        inner = frame_w + mat_w
        mat = (s < inner) | (s > w - inner) | (t < inner) | (t > h - inner)
        cw, ch = max(w - 2 * inner, 1e-3), max(h - 2 * inner, 1e-3)
        x, y = (s - _F32(inner)) * _F32(1.0 / cw), (t - _F32(inner)) * _F32(1.0 / ch)
        pal = m.colors[3:]
        if style == 0:  # abstract: smooth blend of palette colours
            w1 = _F32(0.5) + _F32(0.5) * _waves(m.seed, 0.6, x, y)
            w2 = _F32(0.5) + _F32(0.5) * _waves(m.seed + 1, 0.35, x, y)
            out = _mix(pal[0], pal[1], w1)
            out += (_col(pal[2]) - out) * (w2 * w2)[None, :]
        elif style == 1:  # rectangles on a background
            out = _solid(pal[0], n)
            rng = np.random.default_rng(m.seed)
            for i in range(5):
                x0, y0 = rng.uniform(-0.1, 0.8, 2)
                x1, y1 = x0 + rng.uniform(0.15, 0.6), y0 + rng.uniform(0.15, 0.6)
                out[:, (x > x0) & (x < x1) & (y > y0) & (y < y1)] = _col(pal[1 + i % (len(pal) - 1)])
        else:  # landscape: sky gradient over ground with a wavy horizon
            out = _mix(pal[0], pal[1], np.clip(y, 0, 1))
            ground = y < _F32(0.45) + _F32(0.12) * _waves(m.seed, 0.5, x)
            gw = _F32(0.5) + _F32(0.5) * _waves(m.seed + 2, 0.2, x[ground], y[ground])
            out[:, ground] = _mix(pal[2], pal[3], gw)
        out[:, mat] = _col(m.colors[1])
        out[:, frame] = _col(m.colors[0])
        return out, None
    if kind == "emissive":
        return _solid(m.colors[0], n), np.ones(n, dtype=bool)
    return _texture_surface(m, s, t), None


def _texture_object(
    m: Material, x: np.ndarray, y: np.ndarray, z: np.ndarray, face: np.ndarray | None, size: Sequence[float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Albedo [3, n] and emissive mask of a solid at object-local coordinates (centred, metres).

    ``face`` (boxes only): 0..5 = -x, +x, -y, +y (front), -z, +z face that was hit.
    """
    n = x.shape[0]
    kind = m.kind
    if kind == "emissive":
        return _col(m.colors[0]) * (1 + _F32(0.04) * _waves(m.seed, 0.3, x, y, z))[None, :], np.ones(
            n, dtype=bool
        )
    if kind in ("wood", "cabinet"):
        if kind == "cabinet" and m.params[0] < 0.5:  # painted
            out = _col(m.colors[0]) * (1 + _F32(0.02) * _waves(m.seed, 0.5, x, y, z))[None, :]
        else:  # grain along the longest horizontal axis
            ring = m.params[0] if kind == "wood" else m.params[2]
            along, across = (x, y) if size[0] >= size[1] else (y, x)
            out = _wood(m.colors[0], m.colors[1], ring, m.seed, along, across * _F32(0.8) + z)
        if kind == "cabinet" and face is not None:
            _cabinet_front(m, out, x, z, face == 3, size)
        return out, None
    if kind == "fabric":
        h = _hash(np.floor((x + z) * _F32(120)), np.floor((y - z) * _F32(120)), m.seed)
        return _col(m.colors[0]) * (h * _F32(0.1) + _F32(0.9) + _F32(0.05) * _waves(m.seed, 0.5, x, y, z))[
            None, :
        ], None
    if kind == "metal":
        return _col(m.colors[0]) * (_F32(0.9) + _F32(0.1) * np.sin(z * _F32(40.0)))[None, :], None
    return _solid(m.colors[0], n), None


def _cabinet_front(
    m: Material, out: np.ndarray, x: np.ndarray, z: np.ndarray, front: np.ndarray, size: Sequence[float]
) -> None:
    """Doors / drawers on a cabinet's front face: dark gaps, metal handles, a darker plinth."""
    if not front.any():
        return
    hw, hh = 0.5 * size[0], 0.5 * size[2]
    xs, zs = x[front], z[front]
    n_cols = max(1, round(size[0] / 0.5))
    n_rows = max(1, int(m.params[1]))
    col_w, row_h = 2 * hw / n_cols, max(2 * hh - 0.1, 0.05) / n_rows
    cx = (xs + _F32(hw)) * _F32(1.0 / col_w)
    rz = (zs + _F32(hh - 0.08)) * _F32(1.0 / row_h)
    fx, fz = cx - np.floor(cx), rz - np.floor(rz)
    gap = (np.minimum(fx, 1 - fx) * _F32(col_w) < 0.006) | (np.minimum(fz, 1 - fz) * _F32(row_h) < 0.006)
    plinth = zs < _F32(-hh + 0.08)
    handle = (np.abs(fx - 0.5) < 0.12 / max(col_w, 0.2)) & (np.abs(fz - 0.82) < 0.03) & ~plinth
    sub = out[:, front]
    sub[:, gap | plinth] *= _F32(0.6)
    sub[:, handle] = _col(m.colors[2])
    out[:, front] = sub
