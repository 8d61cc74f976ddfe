"""Semantic meshes from a :class:`~densemtl.fusion.tsdf.TSDFVolume`: marching cubes + class colours + PLY.

The zero level set of the TSDF is extracted with scikit-image's marching cubes (Lorensen & Cline,
SIGGRAPH 1987; ``skimage.measure.marching_cubes``, Lewiner et al. 2003 variant); crossings towards
an unobserved voxel (``weight == 0``: not free space, just unknown) are dropped. A vertex takes the class of
its nearest voxel (argmax of that voxel's evidence, ``-1`` when it has none) and that class's
palette colour (grey for ``-1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densemtl.errors import DataError
from densemtl.fusion.tsdf import TSDFVolume

UNLABELLED_COLOR = (160, 160, 160)


@dataclass
class SemanticMesh:
    """Triangle mesh in world metres: ``vertices`` [V,3] float32, ``faces`` [F,3] int32,
    ``colors`` [V,3] uint8, ``classes`` [V] int32 (``-1`` = no class evidence)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    classes: np.ndarray


def class_colors(classes: np.ndarray, palette: Sequence[Sequence[int]] | None) -> np.ndarray:
    """Palette colour per class id (grey for ``-1`` or ids beyond the palette)."""
    pal = np.asarray([*list(palette or []), UNLABELLED_COLOR], dtype=np.uint8).reshape(-1, 3)
    index = np.where((classes >= 0) & (classes < len(pal) - 1), classes, len(pal) - 1)
    return pal[index]


def extract_mesh(volume: TSDFVolume, palette: Sequence[Sequence[int]] | None = None) -> SemanticMesh:
    """Marching cubes at level 0 on the observed voxels; empty mesh when no zero crossing exists."""
    from skimage.measure import marching_cubes

    tsdf = volume.tsdf.cpu().numpy()
    observed = volume.weight.cpu().numpy() > 0
    empty = SemanticMesh(
        np.zeros((0, 3), np.float32),
        np.zeros((0, 3), np.int32),
        np.zeros((0, 3), np.uint8),
        np.zeros(0, np.int32),
    )
    if min(tsdf.shape) < 2 or not observed.any():
        return empty
    values = tsdf[observed]
    if values.min() > 0 or values.max() < 0:
        return empty
    try:
        verts, faces, _, _ = marching_cubes(tsdf, level=0.0)
    except (ValueError, RuntimeError):  # no zero crossing
        return empty
    verts, faces = _drop_unobserved(verts, faces, observed)
    if len(verts) == 0:
        return empty
    nearest = np.clip(np.rint(verts).astype(np.int64), 0, np.array(tsdf.shape) - 1)
    voxel_classes = volume.voxel_classes().cpu().numpy()
    classes = voxel_classes[nearest[:, 0], nearest[:, 1], nearest[:, 2]].astype(np.int32)
    lower = volume.lower.cpu().numpy().astype(np.float64)
    vertices = (lower + volume.voxel_size * verts).astype(np.float32)
    return SemanticMesh(vertices, faces.astype(np.int32), class_colors(classes, palette), classes)


def _drop_unobserved(
    verts: np.ndarray, faces: np.ndarray, observed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove the faces with a vertex on an edge that has an unobserved end.

    Each marching-cubes vertex lies on a grid edge between two voxels (``floor`` and ``ceil`` of its
    index coordinates); a crossing towards an unobserved voxel (tsdf 1 by default) is no surface
    but the far edge of the observed band behind every wall."""
    hi = np.array(observed.shape) - 1
    a = np.clip(np.floor(verts).astype(np.int64), 0, hi)
    b = np.clip(np.ceil(verts).astype(np.int64), 0, hi)
    good = observed[a[:, 0], a[:, 1], a[:, 2]] & observed[b[:, 0], b[:, 1], b[:, 2]]
    faces = faces[good[faces].all(1)]
    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


VERTEX_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("class", "<i4"),
    ]
)


def write_mesh_ply(path: str | Path, mesh: SemanticMesh) -> Path:
    """Binary little-endian PLY (plyfile): vertex float x, y, z; uchar red, green, blue; int class;
    faces as ``list uchar int vertex_indices`` (read by MeshLab, CloudCompare, Open3D)."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vertex = np.empty(len(mesh.vertices), dtype=VERTEX_DTYPE)
    for axis, name in enumerate("xyz"):
        vertex[name] = mesh.vertices[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = mesh.colors[:, channel]
    vertex["class"] = mesh.classes
    face = np.empty(len(mesh.faces), dtype=[("vertex_indices", "<i4", (3,))])
    face["vertex_indices"] = mesh.faces
    elements = [
        PlyElement.describe(vertex, "vertex"),
        PlyElement.describe(
            face, "face", len_types={"vertex_indices": "u1"}, val_types={"vertex_indices": "i4"}
        ),
    ]
    comments = ["densemtl fused semantic mesh (densemtl fuse)"]
    PlyData(elements, text=False, byte_order="<", comments=comments).write(str(path))
    return path


def read_mesh_ply(path: str | Path) -> SemanticMesh:
    """Read a mesh PLY with the properties :func:`write_mesh_ply` writes (plyfile)."""
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    try:
        data = PlyData.read(str(path))
        vertex, faces = data["vertex"].data, data["face"].data["vertex_indices"]
        return SemanticMesh(
            np.stack([vertex["x"], vertex["y"], vertex["z"]], 1),
            np.stack(list(faces)).astype(np.int32) if len(faces) else np.zeros((0, 3), np.int32),
            np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1),
            vertex["class"].astype(np.int32),
        )
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError, PlyParseError) as exc:
        raise DataError(path, f"not a densemtl mesh PLY ({exc.__class__.__name__}: {exc})") from None
