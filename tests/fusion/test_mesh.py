"""Marching cubes on the TSDF, vertex classes, and the binary PLY layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densemtl.errors import DataError
from densemtl.fusion.mesh import extract_mesh, read_mesh_ply, write_mesh_ply
from densemtl.fusion.tsdf import TSDFVolume

K = np.array([[20.0, 0, 9.5], [0, 20.0, 7.5], [0, 0, 1]])
PALETTE = [[255, 0, 0], [0, 255, 0]]


def _wall_volume() -> TSDFVolume:
    volume = TSDFVolume((-0.4, -0.3, 1.0), (0.4, 0.3, 3.0), voxel_size=0.05, num_classes=2, fusion="counts")
    labels = np.zeros((16, 20), dtype=np.int64)
    labels[:, 10:] = 1  # right half of the wall is class 1 (x > 0 in the camera frame)
    volume.integrate(np.full((16, 20), 2.0, np.float32), K, np.eye(4), labels)
    return volume


def test_mesh_lies_on_the_wall_with_its_classes_and_colours() -> None:
    mesh = extract_mesh(_wall_volume(), PALETTE)
    assert len(mesh.faces) > 50
    np.testing.assert_allclose(mesh.vertices[:, 2], 2.0, atol=1e-4)  # no surface at the band's back
    right = mesh.vertices[:, 0] > 0.06
    left = mesh.vertices[:, 0] < -0.06
    assert (mesh.classes[right] == 1).all() and (mesh.classes[left] == 0).all()
    assert (mesh.colors[right] == [0, 255, 0]).all()
    assert mesh.faces.max() < len(mesh.vertices)


def test_nothing_observed_gives_an_empty_mesh() -> None:
    volume = TSDFVolume((0, 0, 0), (1, 1, 1), voxel_size=0.1)
    assert len(extract_mesh(volume).vertices) == 0


def test_ply_is_binary_little_endian_and_round_trips(tmp_path: Path) -> None:
    mesh = extract_mesh(_wall_volume(), PALETTE)
    path = write_mesh_ply(tmp_path / "mesh.ply", mesh)
    raw = path.read_bytes()
    header = raw[: raw.index(b"end_header\n")].decode()
    assert "format binary_little_endian 1.0" in header
    assert f"element vertex {len(mesh.vertices)}" in header and "property int class" in header
    assert "property list uchar int vertex_indices" in header
    body = len(raw) - len(header) - len("end_header\n")
    assert body == len(mesh.vertices) * (12 + 3 + 4) + len(mesh.faces) * 13
    back = read_mesh_ply(path)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.classes, mesh.classes)
    np.testing.assert_array_equal(back.colors, mesh.colors)


def test_reading_a_foreign_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\n")
    with pytest.raises(DataError, match=r"broken\.ply"):
        read_mesh_ply(path)
