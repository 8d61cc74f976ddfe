"""The procedural renderer: exact geometry on known scenes, shading/shadows, determinism, the
random-scene contract (ranges, classes, sizes) and the cached dataset writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from densemtl.data import synthetic as syn
from densemtl.data.synthetic import (
    CABINET,
    CEILING,
    CLASS_COLORS,
    CLASS_NAMES,
    DOOR,
    FLOOR,
    LAMP,
    TABLE,
    WALL,
    WINDOW,
    Box,
    Cylinder,
    Decal,
    Material,
    Sphere,
    random_scene,
    render,
    render_dataset,
    render_scene,
    scene_from_spec,
)
from densemtl.errors import DataError


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-world rotation written out from the documented convention (z up, yaw 0 looks
    along +y, positive yaw turns towards +x, positive pitch looks up; OpenCV camera axes)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def _backproject(
    sample: syn.SyntheticSample, camera: tuple[float, float, float], yaw: float, pitch: float
) -> np.ndarray:
    """World points [H, W, 3] of every pixel from z-depth and the pinhole intrinsics."""
    fx, fy, cx, cy = sample.intrinsics
    h, w = sample.depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1) * sample.depth[..., None]
    return cam @ _rotation(yaw, pitch).T + np.asarray(camera)


def _project(point: tuple[float, float, float], camera, yaw, pitch, k) -> tuple[float, float, float]:
    cam = _rotation(yaw, pitch).T @ (np.asarray(point) - np.asarray(camera))
    fx, fy, cx, cy = k
    return fx * cam[0] / cam[2] + cx, fy * cam[1] / cam[2] + cy, cam[2]


def test_intrinsics_are_nyu_scaled() -> None:
    assert syn.intrinsics_for(480, 640) == pytest.approx((518.8579, 519.4696, 325.5824, 253.7362))
    fx, fy, cx, cy = syn.intrinsics_for(240, 320)
    assert (fx, fy, cx, cy) == pytest.approx((259.43, 259.73, 162.79, 126.87), abs=0.01)


def test_fronto_parallel_wall_has_constant_z_depth_not_ray_length() -> None:
    cam = (2.0, 1.0, 1.4)
    s = render(scene_from_spec(room=(4.0, 6.0, 2.8), camera_position=cam), 120, 160)
    fx, fy, cx, cy = s.intrinsics
    # The far wall (y = 6, 5 m ahead) spans u in cx +- 2/5 fx and v in cy +- 1.4/5 fy.
    u0, u1 = math.ceil(cx - 0.4 * fx) + 1, math.floor(cx + 0.4 * fx) - 1
    v0, v1 = math.ceil(cy - 0.28 * fy) + 1, math.floor(cy + 0.28 * fy) - 1
    region = (slice(v0, v1 + 1), slice(u0, u1 + 1))
    np.testing.assert_allclose(s.depth[region], 5.0, atol=1e-4)  # ray length would grow to the corners
    np.testing.assert_allclose(
        s.normals[region], np.broadcast_to([0, 0, -1], s.normals[region].shape), atol=1e-5
    )
    assert (s.semantic[region] == WALL).all()
    # Just outside that window lie the side walls / floor / ceiling, nearer than 5 m.
    assert s.depth[v0 - 3, u0 - 3] < 5.0 and s.depth[v1 + 3, u1 + 3] < 5.0
    assert s.semantic[v1 + 3, (u0 + u1) // 2] == FLOOR and s.semantic[v0 - 3, (u0 + u1) // 2] == CEILING


@pytest.mark.parametrize(("yaw", "pitch"), [(0.0, 0.0), (37.0, -12.0), (-120.0, 25.0)])
def test_empty_room_geometry_is_exact(yaw: float, pitch: float) -> None:
    room = (4.5, 6.0, 2.7)
    cam = (1.7, 2.2, 1.3)
    s = render(scene_from_spec(room=room, camera_position=cam, yaw_deg=yaw, pitch_deg=pitch), 60, 80)
    pts = _backproject(s, cam, yaw, pitch)
    # Every back-projected point lies on the room's boundary, inside its extent.
    dist_to_faces = np.stack(
        [
            pts[..., 0],
            room[0] - pts[..., 0],
            pts[..., 1],
            room[1] - pts[..., 1],
            pts[..., 2],
            room[2] - pts[..., 2],
        ],
        -1,
    )
    assert dist_to_faces.min() > -1e-3
    face = dist_to_faces.argmin(-1)
    assert np.abs(dist_to_faces.min(-1)).max() < 1e-3
    # Normals: the inward normal of that face, mapped into the camera frame.
    inward = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    expected = inward[face] @ _rotation(yaw, pitch)
    np.testing.assert_allclose(s.normals, expected, atol=1e-4)
    # Labels follow the face: floor, ceiling, else wall.
    expected_label = np.where(face == 4, FLOOR, np.where(face == 5, CEILING, WALL))
    np.testing.assert_array_equal(s.semantic, expected_label)


def test_floor_normal_is_world_up_in_camera_frame() -> None:
    pitch = -15.0
    s = render(scene_from_spec(camera_position=(2.0, 0.5, 1.5), pitch_deg=pitch), 60, 80)
    floor = s.semantic == FLOOR
    assert floor.sum() > 200
    p = math.radians(pitch)
    np.testing.assert_allclose(
        s.normals[floor], np.broadcast_to([0.0, -math.cos(p), math.sin(p)], (floor.sum(), 3)), atol=1e-5
    )


def test_box_occupies_its_projection_with_its_label() -> None:
    cam = (2.0, 0.5, 1.4)
    box = Box(center=(2.0, 4.5, 0.5), size=(1.0, 1.0, 1.0), label=CABINET)  # front face 3.5 m ahead
    s = render(scene_from_spec(camera_position=cam, objects=[box]), 120, 160)
    k = s.intrinsics
    ul, vt, _ = _project((1.5, 4.0, 1.0), cam, 0, 0, k)  # front face, top-left corner
    ur, vb, _ = _project((2.5, 4.0, 0.0), cam, 0, 0, k)  # front face, bottom-right corner
    assert 0 < ul < ur < 160 and 0 < vt < vb < 120
    region = (slice(math.ceil(vt) + 1, math.floor(vb)), slice(math.ceil(ul) + 1, math.floor(ur)))
    assert (s.semantic[region] == CABINET).all()
    np.testing.assert_allclose(s.depth[region], 3.5, atol=1e-4)
    np.testing.assert_allclose(
        s.normals[region], np.broadcast_to([0, 0, -1], s.normals[region].shape), atol=1e-5
    )
    mid = (round(vt) + round(vb)) // 2
    assert s.semantic[mid, math.floor(ul) - 2] != CABINET and s.semantic[mid, math.ceil(ur) + 2] != CABINET
    assert s.semantic[math.ceil(vb) + 2, round((ul + ur) / 2)] == FLOOR
    # The camera (1.4 m) is above the box (1 m): its top face shows just above the front face,
    # as a trapezoid up to the projection of the back edge.
    top_row = math.floor(vt) - 1
    assert s.semantic[top_row, round((ul + ur) / 2)] == CABINET
    np.testing.assert_allclose(
        s.normals[top_row, round((ul + ur) / 2)], _rotation(0, 0).T @ [0, 0, 1], atol=1e-5
    )
    bl, vback, _ = _project((1.5, 5.0, 1.0), cam, 0, 0, k)
    br = 2 * _project((2.0, 5.0, 1.0), cam, 0, 0, k)[0] - bl
    area = (vb - vt) * (ur - ul) + (vt - vback) * ((ur - ul) + (br - bl)) / 2
    assert (s.semantic == CABINET).sum() == pytest.approx(area, rel=0.05)


def test_points_of_every_primitive_lie_on_its_surface_with_analytic_normals() -> None:
    cam = (2.5, 0.4, 1.5)
    yaw, pitch = 10.0, -10.0
    box = Box((1.6, 3.2, 0.4), (0.9, 0.5, 0.8), TABLE, yaw=math.radians(30))
    cyl = Cylinder(3.2, 3.0, 0.0, 1.2, 0.3, LAMP)
    sph = Sphere((2.6, 4.2, 1.2), 0.35, LAMP)
    s = render(
        scene_from_spec(
            room=(5, 6, 2.8), camera_position=cam, yaw_deg=yaw, pitch_deg=pitch, objects=[box, cyl, sph]
        ),
        120,
        160,
    )
    pts = _backproject(s, cam, yaw, pitch)
    world_n = s.normals @ _rotation(yaw, pitch).T
    # sphere
    d = pts - np.asarray(sph.center)
    on_sphere = np.abs(np.linalg.norm(d, axis=-1) - sph.radius) < 2e-3
    assert on_sphere.sum() > 50 and (s.semantic[on_sphere] == LAMP).all()
    np.testing.assert_allclose(world_n[on_sphere], d[on_sphere] / sph.radius, atol=1e-2)
    # cylinder side
    r = np.hypot(pts[..., 0] - cyl.x, pts[..., 1] - cyl.y)
    side = (np.abs(r - cyl.radius) < 2e-3) & (pts[..., 2] > 1e-2) & (pts[..., 2] < cyl.z1 - 1e-2)
    assert side.sum() > 50 and (s.semantic[side] == LAMP).all()
    radial = np.stack([pts[..., 0] - cyl.x, pts[..., 1] - cyl.y, np.zeros_like(r)], -1) / cyl.radius
    np.testing.assert_allclose(world_n[side], radial[side], atol=1e-2)
    # rotated box: local coordinates touch a face (max |x_i| / h_i == 1) on every table pixel
    table = s.semantic == TABLE
    assert table.sum() > 100
    c, sn = math.cos(box.yaw), math.sin(box.yaw)
    rel = pts[table] - np.asarray(box.center)
    local = np.stack([c * rel[:, 0] + sn * rel[:, 1], -sn * rel[:, 0] + c * rel[:, 1], rel[:, 2]], -1)
    ratio = np.abs(local) / (np.asarray(box.size) / 2)
    np.testing.assert_allclose(ratio.max(-1), 1.0, atol=5e-3)
    # and the normal is that face's axis, rotated by the box yaw
    axis = ratio.argmax(-1)
    local_n = np.zeros_like(local)
    local_n[np.arange(len(axis)), axis] = np.sign(local[np.arange(len(axis)), axis])
    expect = np.stack(
        [c * local_n[:, 0] - sn * local_n[:, 1], sn * local_n[:, 0] + c * local_n[:, 1], local_n[:, 2]], -1
    )
    edge = np.sort(ratio, -1)[:, -2] > 0.98  # skip pixels on an edge, where either face is right
    np.testing.assert_allclose(world_n[table][~edge], expect[~edge], atol=1e-4)


def test_decals_change_label_and_colour_but_not_geometry() -> None:
    door = Material(
        "door", ((0.8, 0.8, 0.8), (0.8, 0.8, 0.8), (0.95, 0.95, 0.95), (0.7, 0.6, 0.3)), (0.06, 0.0, 2.0, 0.0)
    )
    decal = Decal(syn.WALL_Y1, 1.5, 2.4, 0.0, 2.05, DOOR, door)
    plain = render(scene_from_spec(camera_position=(2.0, 1.0, 1.4)), 60, 80)
    with_door = render(scene_from_spec(camera_position=(2.0, 1.0, 1.4), decals=[decal]), 60, 80)
    np.testing.assert_array_equal(plain.depth, with_door.depth)  # flat on the wall: depth cannot tell
    np.testing.assert_array_equal(plain.normals, with_door.normals)
    changed = with_door.semantic == DOOR
    k = plain.intrinsics
    u0, _, _ = _project((1.5, 6.0, 1.0), (2.0, 1.0, 1.4), 0, 0, k)
    u1, _, _ = _project((2.4, 6.0, 1.0), (2.0, 1.0, 1.4), 0, 0, k)
    assert changed.sum() > 0 and changed.any(0)[math.ceil(u0) : math.floor(u1)].all()
    assert (plain.semantic[changed] == WALL).all() and not (with_door.semantic[~changed] == DOOR).any()
    assert np.abs(with_door.rgb[changed].astype(int) - plain.rgb[changed].astype(int)).max() > 10


def test_lambertian_shading_and_cast_shadow_values() -> None:
    cam = (2.0, 0.5, 1.6)
    light = (2.0, 3.0, 2.5)
    occluder = Box((2.0, 3.0, 1.0), (0.6, 0.6, 0.1), CABINET)
    kw = {"camera_position": cam, "pitch_deg": -30.0, "light": light, "ambient": 0.3, "light_intensity": 0.8}
    lit = render(scene_from_spec(**kw), 120, 160)
    shadowed = render(scene_from_spec(objects=[occluder], **kw), 120, 160)
    u, v, _ = _project((2.0, 3.0, 0.0), cam, 0, -30, lit.intrinsics)  # floor point right below the light
    u, v = round(u), round(v)
    assert lit.semantic[v, u] == FLOOR and shadowed.semantic[v, u] == FLOOR
    albedo, d2 = 0.7, 9.0  # plain material; falloff d0 = 3 m
    pts = _backproject(lit, cam, 0, -30)[v, u]
    dist = np.linalg.norm(np.asarray(light) - pts)
    ndotl = (light[2] - pts[2]) / dist
    diffuse = 0.8 * ndotl * d2 / (d2 + dist**2)
    assert lit.rgb[v, u] == pytest.approx([albedo * (0.3 + diffuse) * 255] * 3, abs=1.0)
    assert shadowed.rgb[v, u] == pytest.approx([albedo * 0.3 * 255] * 3, abs=1.0)  # ambient only
    # The shadow is local: floor far from the occluder is lit the same in both renders.
    u2, v2, _ = _project((0.8, 4.5, 0.0), cam, 0, -30, lit.intrinsics)
    assert lit.rgb[round(v2), round(u2)].tolist() == shadowed.rgb[round(v2), round(u2)].tolist()
    floor = (lit.semantic == FLOOR) & (shadowed.semantic == FLOOR)
    darker = floor & (shadowed.rgb[..., 0].astype(int) < lit.rgb[..., 0].astype(int) - 20)
    assert 20 < darker.sum() < 0.5 * floor.sum()


def test_random_scene_is_deterministic_and_seed_dependent() -> None:
    a, b, c = render_scene(11, 48, 64), render_scene(11, 48, 64), render_scene(12, 48, 64)
    for name in ("rgb", "depth", "semantic", "normals"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert not np.array_equal(a.rgb, c.rgb) and not np.array_equal(a.depth, c.depth)
    assert a.seed == 11


def test_random_scenes_respect_ranges_and_cover_every_class() -> None:
    seen = np.zeros(len(CLASS_NAMES), dtype=bool)
    for seed in range(50):
        scene = random_scene(seed)
        w, d, h = scene.room
        assert 3.0 <= w <= 8.0 and 3.0 <= d <= 10.0 and 2.4 <= h <= 3.5
        cx, cy, cz = scene.camera.position
        assert 0 < cx < w and 0 < cy < d and 1.0 <= cz <= 1.8
        assert abs(scene.camera.pitch) <= math.radians(15.0) + 1e-9
        s = render(scene, 60, 80, seed=seed)
        assert s.rgb.shape == (60, 80, 3) and s.rgb.dtype == np.uint8
        assert s.depth.dtype == np.float32 and s.normals.dtype == np.float32 and s.semantic.dtype == np.uint8
        assert np.isfinite(s.depth).all() and s.depth.min() > 0
        assert s.depth.max() <= math.sqrt(w * w + d * d + h * h) + 1e-3
        np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-4)
        fx, fy, ccx, ccy = s.intrinsics
        u, v = np.meshgrid(np.arange(80), np.arange(60))
        ray_dot = s.normals[..., 0] * (u - ccx) / fx + s.normals[..., 1] * (v - ccy) / fy + s.normals[..., 2]
        assert ray_dot.max() < 0  # normals face the camera
        assert s.semantic.max() < len(CLASS_NAMES)
        seen[np.unique(s.semantic)] = True
    assert seen.all(), [n for n, ok in zip(CLASS_NAMES, seen) if not ok]


def test_objects_keep_class_typical_sizes() -> None:
    for seed in range(40):
        scene = random_scene(seed)
        for decal in scene.decals:
            if decal.label == DOOR:
                assert decal.v0 == 0.0 and 1.9 <= decal.v1 <= 2.1 and 0.8 <= decal.u1 - decal.u0 <= 1.0
            if decal.label == WINDOW:
                assert decal.v0 >= 0.7
        tops: dict[int, float] = {}
        for p in scene.objects:
            if isinstance(p, Box) and p.label == TABLE and p.size[2] < 0.1:  # table tops
                top = p.center[2] + p.size[2] / 2
                assert 0.4 <= top <= 0.78 + 1e-9
            top = (
                p.center[2] + p.size[2] / 2
                if isinstance(p, Box)
                else p.z1
                if isinstance(p, Cylinder)
                else p.center[2] + p.radius
            )
            tops[p.label] = max(tops.get(p.label, 0.0), top)
        assert tops.get(CABINET, 1.0) <= 2.1 + 1e-9 and tops.get(TABLE, 0.5) <= 0.78 + 1e-9


def test_scene_palettes_vary_and_wood_is_shared() -> None:
    walls = {random_scene(s).surfaces[0].colors[0] for s in range(20)}
    assert len(walls) == 20  # the same class does not always have the same colour
    shared = 0
    for s in range(40):
        mats = {p.label: p.material for p in random_scene(s).objects}
        if TABLE in mats and CABINET in mats and mats[CABINET].params[0] > 0.5:
            shared += mats[TABLE].colors[0] == mats[CABINET].colors[0]
    assert shared >= 3  # tables and cabinets often share one wood: colour alone is ambiguous


def test_class_table_is_consistent() -> None:
    assert len(CLASS_NAMES) >= 8 and len(CLASS_COLORS) == len(CLASS_NAMES)
    assert len(set(CLASS_COLORS)) == len(CLASS_COLORS)
    assert all(len(c) == 3 and all(0 <= x <= 255 for x in c) for c in CLASS_COLORS)


def _mtimes(root) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_dataset_writes_folder_layout_and_is_cached(tmp_path, monkeypatch) -> None:
    root = tmp_path / "synth"
    out = render_dataset(root, num_images=6, height=24, width=32, seed=3, workers=1, progress=False)
    assert out == root
    for folder in ("rgb", "depth", "semantic", "normals"):
        assert sorted(p.name for p in (root / folder).iterdir()) == [f"{i:06d}.png" for i in range(6)]
    classes = json.loads((root / "classes.json").read_text())
    assert classes["names"] == list(CLASS_NAMES) and [tuple(c) for c in classes["colors"]] == list(
        CLASS_COLORS
    )
    k = json.loads((root / "intrinsics.json").read_text())
    assert (k["fx"], k["fy"], k["cx"], k["cy"]) == pytest.approx(syn.intrinsics_for(24, 32))
    splits = {
        name: (root / "splits" / f"{name}.txt").read_text().split() for name in ("train", "val", "test")
    }
    assert sorted(i for ids in splits.values() for i in ids) == [f"{i:06d}" for i in range(6)] and all(
        splits.values()
    )
    manifest = json.loads((root / "synthetic.json").read_text())
    assert (
        manifest["num_images"] == 6 and manifest["seed"] == 3 and manifest["version"] == syn.GENERATOR_VERSION
    )
    # The files hold image i = render_scene(image_seed(seed, i)).
    ref = render_scene(syn.image_seed(3, 4), 24, 32)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "rgb" / "000004.png")), ref.rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "semantic" / "000004.png")), ref.semantic)
    depth_mm = np.asarray(Image.open(root / "depth" / "000004.png")).astype(np.float32)
    np.testing.assert_allclose(depth_mm / 1000.0, ref.depth, atol=6e-4)

    # Second call with the same parameters: nothing rendered, nothing rewritten.
    before = _mtimes(root)

    def fail(*args, **kwargs):
        raise AssertionError("re-rendered a cached dataset")

    monkeypatch.setattr(syn, "_render_and_write", fail)
    render_dataset(root, num_images=6, height=24, width=32, seed=3, workers=1, progress=False)
    assert _mtimes(root) == before
    # Other parameters invalidate the cache.
    with pytest.raises(AssertionError, match="re-rendered"):
        render_dataset(root, num_images=6, height=24, width=32, seed=4, workers=1, progress=False)


def test_render_dataset_parallel_matches_serial_and_protects_foreign_folders(tmp_path) -> None:
    serial = render_dataset(tmp_path / "a", num_images=4, height=16, width=20, workers=1, progress=False)
    parallel = render_dataset(tmp_path / "b", num_images=4, height=16, width=20, workers=2, progress=False)
    for name in ("rgb", "depth", "semantic", "normals"):
        for i in range(4):
            a = np.asarray(Image.open(serial / name / f"{i:06d}.png"))
            b = np.asarray(Image.open(parallel / name / f"{i:06d}.png"))
            np.testing.assert_array_equal(a, b)
    # A foreign non-empty folder is never overwritten.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match=r"synthetic\.json"):
        render_dataset(foreign, num_images=2, height=16, width=20, workers=1, progress=False)
    assert (foreign / "notes.txt").read_text() == "precious"


def test_benchmark_render_reports_a_rate() -> None:
    rate = syn.benchmark_render(height=24, width=32, num_images=3, workers=1)
    assert rate > 0


def test_interrupted_render_dataset_is_redone(tmp_path, monkeypatch) -> None:
    root = tmp_path / "synth"
    real = syn._render_and_write
    calls = []

    def interrupted(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(syn, "_render_and_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_dataset(root, num_images=5, height=16, width=20, workers=1, progress=False)
    assert json.loads((root / "synthetic.json").read_text())["complete"] is False
    monkeypatch.setattr(syn, "_render_and_write", real)
    render_dataset(root, num_images=5, height=16, width=20, workers=1, progress=False)
    assert json.loads((root / "synthetic.json").read_text())["complete"] is True
    assert len(list((root / "normals").iterdir())) == 5


def test_folder_dataset_reads_rendered_data(tmp_path) -> None:
    from densemtl.data.datasets.folder import FolderDataset

    root = render_dataset(tmp_path / "synth", num_images=10, height=24, width=32, workers=1, progress=False)
    ds = FolderDataset(root, split="train")
    assert len(ds) == 8 and ds.class_names == list(CLASS_NAMES)
    sample = ds[0]
    assert sample["image"].shape == (3, 24, 32) and sample["depth"].shape == (1, 24, 32)
    assert sample["semseg"].shape == (24, 32) and sample["normals"].shape == (3, 24, 32)
    assert float(sample["depth"].min()) > 0 and int(sample["semseg"].max()) < len(CLASS_NAMES)
    assert sample["meta"]["intrinsics"].tolist() == pytest.approx(list(syn.intrinsics_for(24, 32)))


def test_concurrent_render_dataset_calls_render_once(tmp_path, monkeypatch) -> None:
    import threading

    real = syn._render_and_write
    calls = []

    def counting(job):
        calls.append(job[1])
        return real(job)

    monkeypatch.setattr(syn, "_render_and_write", counting)
    root = tmp_path / "shared"
    errors = []

    def run() -> None:
        try:
            render_dataset(root, num_images=4, height=16, width=20, workers=1, progress=False)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(calls) == [0, 1, 2, 3]  # rendered once, the other callers reused it
    assert json.loads((root / "synthetic.json").read_text())["complete"] is True
