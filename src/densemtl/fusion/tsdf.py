"""A dense, vectorised torch TSDF volume with per-voxel class evidence.

Geometry follows Curless & Levoy (SIGGRAPH 1996) in its projective form (Newcombe et al.,
KinectFusion, ISMAR 2011): every voxel centre ``x`` is projected into the depth map of a frame;
its signed distance is ``sdf = D(u, v) - z_c(x)`` (measured depth minus the voxel's camera-frame
z-depth, positive in front of the surface), truncated to ``tsdf = min(1, sdf / mu)`` and dropped
where ``sdf < -mu`` (behind the surface: unseen). The volume keeps the weighted running average

    F_k(x) = (W_{k-1}(x) F_{k-1}(x) + w_k tsdf_k(x)) / (W_{k-1}(x) + w_k),   W_k = W_{k-1} + w_k,

with ``w_k = 1``, optionally capped at ``max_weight`` (a moving average that follows changes).

Semantics follow SemanticFusion (McCormac et al., ICRA 2017), per voxel instead of per surfel;
only voxels within the truncation band of the observed surface (``|sdf| < mu``) receive a
frame's class evidence, from the pixel they project to:

* ``fusion="bayes"`` (default): the recursive Bayesian update of the class distribution,
  ``P_k(c | x) = P_{k-1}(c | x) p_k(c | u, v) / Z``, kept in log space,
  ``L_k = L_{k-1} + log max(p_k, eps)`` then ``L_k -= logsumexp_c L_k``. It is the default because
  it is SemanticFusion's rule and uses the network's full softmax, so a confident frame outweighs
  an unsure one; ``eps`` (1e-4) keeps one over-confident wrong frame from zeroing a class forever.
  Hard labels (the oracle) enter as ``p = label_confidence`` on the label, the rest spread evenly.
* ``fusion="counts"``: per-class hit counts of hard labels (argmax of the probabilities), i.e. a
  majority vote; robust to over-confident networks, blind to their confidence.

Memory is dense: ``X*Y*Z*(8 + 4*C + 4)`` bytes (tsdf, weight, C evidence channels, a semantic
observation count). Integration touches only the voxels in the axis-aligned box spanned by the
camera centre and the frame's back-projected points (plus ``mu``), in chunks of ``chunk_size``
voxels, so temporary memory stays bounded whatever the volume's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from densemtl.errors import ConfigError

FusionMode = Literal["bayes", "counts"]
FUSION_MODES: tuple[str, ...] = ("bayes", "counts")
IGNORE_LABEL = 255


def _tensor(value: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.ascontiguousarray(value), device=device, dtype=dtype)


def backproject_world(
    depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor, stride: int = 1
) -> torch.Tensor:
    """World points ``[N, 3]`` of the valid (``> 0``, finite) pixels of ``depth`` (z-depth, OpenCV axes)."""
    d = depth[::stride, ::stride]
    v, u = torch.meshgrid(
        torch.arange(0, depth.shape[0], stride, device=depth.device, dtype=depth.dtype),
        torch.arange(0, depth.shape[1], stride, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    valid = torch.isfinite(d) & (d > 0)
    d, u, v = d[valid], u[valid], v[valid]
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    cam = torch.stack([(u - cx) * d / fx, (v - cy) * d / fy, d], dim=1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


class TSDFVolume:
    """A TSDF + class-evidence voxel grid over the box ``[lower, upper]`` (metres, world frame).

    Args:
        lower, upper: corners of the volume; voxel ``(i, j, k)`` has its centre at
            ``lower + voxel_size * (i, j, k)``.
        voxel_size: edge of a voxel in metres.
        num_classes: number of semantic classes (0: geometry only).
        truncation: ``mu`` in metres (default ``4 * voxel_size``).
        fusion: ``"bayes"`` or ``"counts"`` (module docstring).
        device: where the grids live (``"cpu"``, ``"cuda"``...).
        max_weight: cap of the running-average weight (None: plain average).
        chunk_size: voxels processed at once during integration.
        max_voxels: refuse larger grids (a one-line ConfigError asking for a larger voxel size).

    Example::

        volume = TSDFVolume((0, 0, 0), (4, 4, 2.5), voxel_size=0.04, num_classes=5)
        volume.integrate(depth, K, camera_to_world, probabilities)
        tsdf, weight = volume.tsdf, volume.weight
    """

    def __init__(
        self,
        lower: Sequence[float],
        upper: Sequence[float],
        voxel_size: float,
        num_classes: int = 0,
        truncation: float | None = None,
        fusion: FusionMode = "bayes",
        device: str | torch.device = "cpu",
        max_weight: float | None = None,
        chunk_size: int = 1 << 20,
        max_voxels: int = 1 << 27,
        eps: float = 1e-4,
        label_confidence: float = 0.9,
    ) -> None:
        if voxel_size <= 0:
            raise ConfigError(f"--voxel-size must be positive, got {voxel_size}")
        if fusion not in FUSION_MODES:
            raise ConfigError(f"--fusion must be one of {', '.join(FUSION_MODES)}, got {fusion!r}")
        self.truncation = float(truncation) if truncation is not None else 4.0 * voxel_size
        if self.truncation <= 0:
            raise ConfigError(f"--truncation must be positive, got {truncation}")
        self.device = torch.device(device)
        self.voxel_size = float(voxel_size)
        self.lower = torch.tensor([float(v) for v in lower], dtype=torch.float32, device=self.device)
        extent = np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)
        if (extent <= 0).any():
            raise ConfigError(f"volume bounds are empty: lower {list(lower)}, upper {list(upper)}")
        self.shape = tuple(math.floor(e / voxel_size + 1e-6) + 1 for e in extent)
        count = int(np.prod(self.shape))
        if count > max_voxels:
            raise ConfigError(
                f"a {self.shape[0]}x{self.shape[1]}x{self.shape[2]} grid ({count} voxels) exceeds "
                f"{max_voxels}: raise --voxel-size or lower --max-depth"
            )
        self.num_classes = int(num_classes)
        self.fusion = fusion
        self.max_weight = max_weight
        self.chunk_size = int(chunk_size)
        self.eps = float(eps)
        self.label_confidence = float(label_confidence)
        self.tsdf = torch.ones(self.shape, dtype=torch.float32, device=self.device)
        self.weight = torch.zeros(self.shape, dtype=torch.float32, device=self.device)
        # bayes: log-probabilities (0 everywhere = uniform after normalisation); counts: hits
        self.evidence = torch.zeros((*self.shape, self.num_classes), dtype=torch.float32, device=self.device)
        self.semantic_weight = torch.zeros(self.shape, dtype=torch.float32, device=self.device)

    @classmethod
    def from_points(
        cls,
        lower: Sequence[float],
        upper: Sequence[float],
        voxel_size: float,
        truncation: float | None = None,
        **kwargs: Any,
    ) -> TSDFVolume:
        """A volume around the box ``[lower, upper]`` of observed points, padded by ``mu`` + one voxel."""
        pad = (truncation if truncation is not None else 4.0 * voxel_size) + voxel_size
        lo = [float(v) - pad for v in lower]
        hi = [float(v) + pad for v in upper]
        return cls(lo, hi, voxel_size, truncation=truncation, **kwargs)

    @property
    def upper(self) -> torch.Tensor:
        return self.lower + self.voxel_size * (torch.tensor(self.shape, device=self.device) - 1)

    def _frame_box(
        self, depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Index range ``[lo, hi)`` of the voxels a frame can update (camera centre + its points)."""
        points = backproject_world(depth, intrinsics, pose)
        if len(points) == 0:
            return None
        points = torch.cat([points, pose[:3, 3][None]], dim=0)
        lo = ((points.min(0).values - self.truncation - self.lower) / self.voxel_size).floor().long()
        hi = ((points.max(0).values + self.truncation - self.lower) / self.voxel_size).ceil().long() + 1
        shape = torch.tensor(self.shape, device=self.device)
        lo, hi = lo.clamp(0, None), torch.minimum(hi, shape)
        return None if bool((hi <= lo).any()) else (lo, hi)

    def _frame_probabilities(self, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel evidence ``[H*W, C]`` to add and the pixels that carry it (``[H*W]`` bool)."""
        c = self.num_classes
        if semantics.dim() == 3:  # probabilities [C, H, W]
            if semantics.shape[0] != c:
                raise ConfigError(f"semantic probabilities have {semantics.shape[0]} classes, expected {c}")
            probs = semantics.float().flatten(1).T
            valid = torch.isfinite(probs).all(1)
            if self.fusion == "counts":
                return torch.nn.functional.one_hot(probs.argmax(1), c).float(), valid
            return probs.clamp_min(self.eps).log(), valid
        labels = semantics.long().flatten()
        valid = (labels >= 0) & (labels < c)
        onehot = torch.nn.functional.one_hot(labels.clamp(0, c - 1), c).float()
        if self.fusion == "counts":
            return onehot, valid
        rest = (1.0 - self.label_confidence) / max(c - 1, 1)
        return (onehot * (self.label_confidence - rest) + rest).clamp_min(self.eps).log(), valid

    @torch.no_grad()
    def integrate(
        self,
        depth: np.ndarray | torch.Tensor,
        intrinsics: np.ndarray | torch.Tensor,
        pose: np.ndarray | torch.Tensor,
        semantics: np.ndarray | torch.Tensor | None = None,
        max_depth: float | None = None,
    ) -> None:
        """Fuse one frame.

        Args:
            depth: ``[H, W]`` z-depth in metres, ``0`` / non-finite = invalid.
            intrinsics: ``[3, 3]`` pinhole matrix at the depth map's size.
            pose: ``[4, 4]`` camera-to-world (OpenCV camera axes: x right, y down, z forward).
            semantics: ``[C, H, W]`` class probabilities or ``[H, W]`` integer labels (255 = none).
            max_depth: depths beyond this are ignored (metres).
        """
        dev = self.device
        depth = _tensor(depth, dev, torch.float32)
        k = _tensor(intrinsics, dev, torch.float32)
        pose = _tensor(pose, dev, torch.float32)
        depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
        if max_depth is not None:
            depth = torch.where(depth <= max_depth, depth, torch.zeros_like(depth))
        box = self._frame_box(depth, k, pose)
        if box is None:
            return
        evidence = valid_pixels = None
        if semantics is not None and self.num_classes > 0:
            sem = _tensor(semantics, dev, torch.float32 if semantics.ndim == 3 else torch.long)
            evidence, valid_pixels = self._frame_probabilities(sem)
        height, width = depth.shape
        rot, centre = pose[:3, :3], pose[:3, 3]
        lo, hi = box
        (x0, y0, z0), (x1, y1, z1) = lo.tolist(), hi.tolist()
        ny, nz = self.shape[1], self.shape[2]
        # camera coordinates are affine in the voxel index: cam[i,j,k] = A[i] + B[j] + C[k]
        axes = [torch.arange(a, b, device=dev) for a, b in ((x0, x1), (y0, y1), (z0, z1))]
        terms = [
            (self.lower[a] + self.voxel_size * axes[a].float() - centre[a])[:, None] * rot[a][None]
            for a in range(3)
        ]
        plane = terms[1][:, None, :] + terms[2][None, :, :]  # [Y', Z', 3]
        plane_index = (axes[1][:, None] * nz + axes[2][None, :]).reshape(-1)
        slab = max(1, self.chunk_size // plane_index.numel())
        flat_tsdf, flat_weight = self.tsdf.view(-1), self.weight.view(-1)
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        for first in range(0, len(axes[0]), slab):
            xs = axes[0][first : first + slab]
            cam = (terms[0][first : first + slab, None, :] + plane.reshape(1, -1, 3)).reshape(-1, 3)
            z = cam[:, 2]
            front = z > 1e-6
            zs = torch.where(front, z, torch.ones_like(z))
            u = torch.round(fx * cam[:, 0] / zs + cx)
            v = torch.round(fy * cam[:, 1] / zs + cy)
            inside = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            where = inside.nonzero().squeeze(1)
            if where.numel() == 0:
                continue
            pixel = v[where].long() * width + u[where].long()
            measured = depth.view(-1)[pixel]
            sdf = measured - z[where]
            keep = (measured > 0) & (sdf >= -self.truncation)
            if not bool(keep.any()):
                continue
            where, sdf, pixel = where[keep], sdf[keep], pixel[keep]
            n_plane = plane_index.numel()
            index = (xs[where // n_plane] * (ny * nz)) + plane_index[where % n_plane]
            old_w = flat_weight[index]
            new_w = old_w + 1.0
            flat_tsdf[index] = (flat_tsdf[index] * old_w + (sdf / self.truncation).clamp_max(1.0)) / new_w
            flat_weight[index] = new_w if self.max_weight is None else new_w.clamp_max(self.max_weight)
            if evidence is not None:
                near = (sdf.abs() < self.truncation) & valid_pixels[pixel]
                self._add_evidence(index[near], evidence[pixel[near]])

    def _add_evidence(self, index: torch.Tensor, evidence: torch.Tensor) -> None:
        flat = self.evidence.view(-1, self.num_classes)
        updated = flat[index] + evidence
        if self.fusion == "bayes":
            updated = updated - torch.logsumexp(updated, dim=1, keepdim=True)
        flat[index] = updated
        self.semantic_weight.view(-1)[index] += 1.0

    def voxel_classes(self) -> torch.Tensor:
        """``[X, Y, Z]`` argmax class per voxel, ``-1`` where no class evidence arrived."""
        if self.num_classes == 0:
            return torch.full(self.shape, -1, dtype=torch.long, device=self.device)
        classes = self.evidence.argmax(-1)
        return torch.where(self.semantic_weight > 0, classes, torch.full_like(classes, -1))

    def probabilities(self) -> torch.Tensor:
        """``[X, Y, Z, C]`` class distribution per voxel (uniform where unobserved)."""
        if self.fusion == "bayes":
            return self.evidence.softmax(-1)
        total = self.evidence.sum(-1, keepdim=True)
        return torch.where(total > 0, self.evidence / total.clamp_min(1.0), 1.0 / max(self.num_classes, 1))
