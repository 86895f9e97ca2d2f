"""Shapes from ShapeNetCore trees, folders of meshes and the generator: listing, loading, repair."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import trimesh

from stereo_occ.config import SHAPENET_SYNSETS, ShapesConfig
from stereo_occ.errors import UserError
from stereo_occ.shapes import ShapeSource, list_shapes, make_watertight, normalize, read_mesh

FAST_REPAIR = 4_000  # octree leaves: enough for boxes, keeps each repair well under a second


def _write(path: Path, mesh: trimesh.Trimesh | trimesh.Scene) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


def _open_cup() -> trimesh.Trimesh:
    """A cylinder without its top cap: a cup-like surface with a hole too big to patch."""
    cylinder = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=32)
    return trimesh.Trimesh(cylinder.vertices, cylinder.faces[cylinder.face_normals[:, 2] < 0.5])


def _double_sided_box(size: float = 1.0) -> trimesh.Trimesh:
    """Every face twice, once per orientation: ShapeNet's habit; each edge has four faces."""
    box = trimesh.creation.box((size, size, size))
    return trimesh.Trimesh(box.vertices, np.vstack([box.faces, box.faces[:, ::-1]]), process=False)


def _assert_normalised_solid(mesh: trimesh.Trimesh) -> None:
    assert mesh.is_watertight and mesh.is_volume
    assert np.max(mesh.extents) == pytest.approx(1.0, abs=1e-6)
    assert np.abs(mesh.bounds.mean(axis=0)).max() < 1e-6


def _cfg(source: str, root: Path | None, **kw) -> ShapesConfig:
    counts = {"mug": 0, "bowl": 0, "bottle": 0, **kw}
    return ShapesConfig(source=source, root=None if root is None else str(root), watertight_resolution=FAST_REPAIR, **counts)


# --- ShapeNetCore -------------------------------------------------------------------------------


def _shapenet_tree(root: Path, version: str) -> None:
    relative = "model.obj" if version == "v1" else "models/model_normalized.obj"
    models = {"mug": ["b88bcf33", "a3cd44bb", "c6b24bf0"], "bowl": ["e3d4d57a"], "bottle": ["f0e1d2c3", "0a1b2c3d"]}
    for category, ids in models.items():
        for i, model_id in enumerate(ids):
            _write(root / SHAPENET_SYNSETS[category] / model_id / relative, trimesh.creation.box((1, 2, 3 + i)))
    (root / SHAPENET_SYNSETS["mug"] / "ffff0000").mkdir()  # a model folder without its mesh
    (root / "taxonomy.json").write_text("[]")
    (root / "04379243").mkdir()  # tables: not ours, ignored


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_shapenet_layouts_are_listed_in_sorted_order(tmp_path, version, caplog):
    _shapenet_tree(tmp_path, version)
    with caplog.at_level(logging.WARNING):
        shapes = list_shapes(_cfg("shapenet", tmp_path))
    assert [s.object_id for s in shapes] == [
        "mug/a3cd44bb", "mug/b88bcf33", "mug/c6b24bf0", "bowl/e3d4d57a", "bottle/0a1b2c3d", "bottle/f0e1d2c3",
    ]
    assert {s.source for s in shapes} == {"shapenet"}
    assert [s.category for s in shapes] == ["mug"] * 3 + ["bowl"] + ["bottle"] * 2
    assert all(Path(s.origin).is_file() for s in shapes)
    assert "ffff0000" in caplog.text  # skipped with a warning, not silently
    _assert_normalised_solid(shapes[0].load())


def test_shapenet_counts_take_the_first_models(tmp_path):
    _shapenet_tree(tmp_path, "v2")
    shapes = list_shapes(_cfg("shapenet", tmp_path, mug=2, bottle=1))
    assert [s.object_id for s in shapes] == ["mug/a3cd44bb", "mug/b88bcf33", "bowl/e3d4d57a", "bottle/0a1b2c3d"]


def test_shapenet_missing_synset_names_it(tmp_path):
    _shapenet_tree(tmp_path, "v1")
    for model in (tmp_path / SHAPENET_SYNSETS["bowl"]).iterdir():
        (model / "model.obj").unlink()
        model.rmdir()
    (tmp_path / SHAPENET_SYNSETS["bowl"]).rmdir()
    with pytest.raises(UserError, match=SHAPENET_SYNSETS["bowl"]):
        list_shapes(_cfg("shapenet", tmp_path))
    only = list_shapes(ShapesConfig(source="shapenet", root=str(tmp_path), categories=["mug", "bottle"], mug=0, bottle=0))
    assert {s.category for s in only} == {"mug", "bottle"}


# --- folder of meshes -----------------------------------------------------------------------------


def _folder_tree(root: Path) -> None:
    _write(root / "mug" / "Blue Mug.stl", trimesh.creation.cylinder(radius=0.4, height=1.0))
    _write(root / "mug" / "brand" / "tall.ply", trimesh.creation.cylinder(radius=0.3, height=2.0))
    _write(root / "mug" / "a.obj", trimesh.creation.box((1, 1, 1)))
    _write(root / "mug" / "a.off", trimesh.creation.box((1, 2, 1)))
    (root / "mug" / "notes.txt").write_text("not a mesh")
    _write(root / "mug" / ".cache" / "x.obj", trimesh.creation.box((1, 1, 1)))
    _write(root / "bowl" / "b.glb", trimesh.Scene([trimesh.creation.icosphere()]))
    _write(root / "bottle" / "c.obj", trimesh.creation.capsule(height=2.0, radius=0.3))
    (root / "textures").mkdir()


def test_folder_names_are_safe_unique_and_sorted(tmp_path, caplog):
    _folder_tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        shapes = list_shapes(_cfg("folder", tmp_path))
    assert [s.object_id for s in shapes] == [
        "mug/Blue_Mug", "mug/a", "mug/a-2", "mug/brand_tall", "bowl/b", "bottle/c",
    ]
    assert Path(shapes[2].origin).name == "a.off"
    assert "textures" in caplog.text
    assert list_shapes(_cfg("folder", tmp_path, mug=2))[:2] == shapes[:2]
    for shape in shapes:
        _assert_normalised_solid(shape.load())


def test_folder_scene_is_flattened_and_overlaps_are_merged(tmp_path):
    """Two overlapping closed boxes in a GLB: one solid whose volume is that of their union."""
    first = trimesh.creation.box((2.0, 1.0, 1.0))
    second = trimesh.creation.box((1.0, 1.0, 1.0)).apply_translation([0.5, 0.5, 0.0])  # half outside
    path = _write(tmp_path / "mug" / "two.glb", trimesh.Scene([first, second]))
    source = ShapeSource("mug/two", "mug", "folder", str(path))
    mesh = source.load()
    _assert_normalised_solid(mesh)
    assert len(mesh.split(only_watertight=False)) == 1
    # union = 2 + 0.5, longest side 2 -> scaled by 1/2 in each axis
    assert mesh.volume == pytest.approx(2.5 / 8.0, rel=1e-4)


def test_folder_typo_of_a_category_is_an_error(tmp_path):
    _folder_tree(tmp_path)
    (tmp_path / "bottle").rename(tmp_path / "bottles")
    with pytest.raises(UserError, match="looks like category 'bottle'"):
        list_shapes(_cfg("folder", tmp_path))


def test_folder_missing_or_empty_category_is_an_error(tmp_path):
    (tmp_path / "mug").mkdir()
    _write(tmp_path / "bowl" / "b.obj", trimesh.creation.icosphere())
    with pytest.raises(UserError, match="no mesh files"):
        list_shapes(_cfg("folder", tmp_path))
    with pytest.raises(UserError, match="bottle"):
        list_shapes(ShapesConfig(source="folder", root=str(tmp_path), categories=["bowl", "bottle"]))


# --- procedural and configuration mistakes ----------------------------------------------------------


def test_procedural_listing_and_pickling():
    shapes = list_shapes(ShapesConfig(mug=2, bowl=0, bottle=1, seed=5))
    assert [s.object_id for s in shapes] == ["mug/proc-0000", "mug/proc-0001", "bottle/proc-0000"]
    assert shapes[1].origin == "procedural:mug:seed=5:index=1"
    assert pickle.loads(pickle.dumps(shapes[1])) == shapes[1]


def test_procedural_meshes_pass_through_unchanged():
    from stereo_occ.shapes.procedural import generate

    source = list_shapes(ShapesConfig(mug=1, bowl=0, bottle=0))[0]
    loaded = source.load()
    _assert_normalised_solid(loaded)
    expected = normalize(generate("mug", 0, 0))
    assert len(loaded.faces) == len(expected.faces)
    assert np.allclose(np.sort(loaded.vertices, axis=0), np.sort(expected.vertices, axis=0))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (ShapesConfig(source="folder", root="/no/such/folder"), "not found: /no/such/folder"),
        (ShapesConfig(source="shapenet"), "set dataset.shapes.root"),
        (ShapesConfig(source="procedural", root="/data/meshes"), "source is 'procedural'"),
        (ShapesConfig(categories=["mug", "plate"]), "unknown category 'plate'"),
        (ShapesConfig(source="zip"), "unknown shape source 'zip'"),
        (ShapesConfig(bowl=-1), "dataset.shapes.bowl must be >= 0"),
        (ShapesConfig(watertight_resolution=0), "watertight_resolution must be >= 1"),
    ],
)
def test_configuration_mistakes_are_user_errors(cfg, message):
    with pytest.raises(UserError, match=message):
        list_shapes(cfg)


# --- corrupt files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("junk.obj", bytes(range(256)) * 8, "junk.obj"),
        ("empty.obj", b"", "empty.obj: empty file"),
        ("junk.ply", b"\x00\xff" * 500, "junk.ply: not a readable .ply mesh"),
        ("junk.stl", b"\x01\x02\x03", "junk.stl"),
        ("words.obj", b"hello\nthis is not a mesh\n", "words.obj: contains no triangles"),
        ("line.obj", b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "line.obj: contains no triangles"),
        ("dot.obj", b"v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n", "dot.obj: cannot normalise a mesh of zero size"),
    ],
)
def test_corrupt_files_are_user_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / "mug" / name
    path.parent.mkdir()
    path.write_bytes(content)
    (source,) = list_shapes(ShapesConfig(source="folder", root=str(tmp_path), categories=["mug"], mug=0))
    with pytest.raises(UserError, match=message):
        source.load()


def test_point_cloud_file_has_no_triangles(tmp_path):
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).random((50, 3))).export(path)
    with pytest.raises(UserError, match="cloud.ply: contains no triangles"):
        read_mesh(path)
    with pytest.raises(UserError, match="not found"):
        read_mesh(tmp_path / "missing.obj")


# --- repair ---------------------------------------------------------------------------------------------


def test_open_cup_becomes_a_thin_closed_shell():
    mesh = normalize(make_watertight(_open_cup(), resolution=FAST_REPAIR))
    _assert_normalised_solid(mesh)
    # its walls thickened by about one octree cell: far less than the full cylinder (0.785), far more than 0
    assert 0.05 < mesh.volume < 0.4
    assert not mesh.contains([[0.0, 0.0, 0.1]])[0]  # the cup's inside stays empty
    assert mesh.contains([[0.0, 0.0, -0.49]])[0]  # the floor is solid


def test_double_sided_closed_box_becomes_the_exact_box():
    """Dropping each face's second side closes it: no resampling needed."""
    mesh = make_watertight(_double_sided_box())
    assert mesh.is_volume and len(mesh.faces) == 12
    assert mesh.volume == pytest.approx(1.0, rel=1e-9)


def test_double_sided_open_surface_is_rebuilt_like_the_single_sided_one():
    """ShapeNet's typical defect: an open surface whose every face is there twice, once per side."""
    cup = _open_cup()
    both_sides = trimesh.Trimesh(cup.vertices, np.vstack([cup.faces, cup.faces[:, ::-1]]), process=False)
    single = make_watertight(cup, resolution=FAST_REPAIR)
    double = make_watertight(both_sides, resolution=FAST_REPAIR)
    assert double.is_volume
    assert double.volume == pytest.approx(single.volume, rel=0.02)


def test_repair_is_deterministic_and_simplified():
    first = make_watertight(_open_cup(), resolution=2_000, seed=3)
    second = make_watertight(_open_cup(), resolution=2_000, seed=3)
    assert np.array_equal(first.vertices, second.vertices) and np.array_equal(first.faces, second.faces)
    unsimplified = make_watertight(_open_cup(), resolution=2_000, seed=3, simplify_tolerance=0)
    assert len(first.faces) < len(unsimplified.faces) / 2
    assert first.volume == pytest.approx(unsimplified.volume, rel=0.02)


def test_closed_meshes_are_not_resampled():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    split_seams = trimesh.Trimesh(sphere.vertices[sphere.faces].reshape(-1, 3), np.arange(len(sphere.faces) * 3).reshape(-1, 3), process=False)
    assert not split_seams.is_watertight  # like a scan whose vertices are split along texture seams
    out = make_watertight(split_seams)
    assert np.array_equal(np.sort(out.vertices, axis=0), np.sort(sphere.vertices, axis=0))
    holed = trimesh.Trimesh(sphere.vertices, np.delete(sphere.faces, [3, 100], axis=0))
    patched = make_watertight(holed)  # two missing triangles: patched, vertices untouched
    assert patched.is_volume and np.array_equal(patched.vertices, holed.vertices)
    assert patched.volume == pytest.approx(sphere.volume)
    inside_out = trimesh.creation.box((1, 2, 3))
    inside_out.invert()
    fixed = make_watertight(inside_out)
    assert fixed.is_volume and fixed.volume == pytest.approx(6.0)
    assert np.array_equal(np.sort(fixed.vertices, axis=0), np.sort(inside_out.vertices, axis=0))


def test_inside_out_nested_shell_is_a_cavity():
    outer = trimesh.creation.box((2.0, 2.0, 2.0))
    inner = trimesh.creation.box((1.0, 1.0, 1.0))
    inner.invert()
    hollow = make_watertight(trimesh.util.concatenate([outer, inner]))
    assert hollow.volume == pytest.approx(7.0, rel=1e-5)
    assert not hollow.contains([[0.0, 0.0, 0.0]])[0]
    apart = trimesh.creation.box((1.0, 1.0, 1.0)).apply_translation([5.0, 0.0, 0.0])
    apart.invert()  # wound the wrong way but not inside anything: a solid, flipped
    both = make_watertight(trimesh.util.concatenate([outer, apart]))
    assert both.volume == pytest.approx(9.0, rel=1e-5)
    loose_part = trimesh.creation.box((0.5, 0.5, 0.5))  # an outward part inside the body: absorbed
    merged = make_watertight(trimesh.util.concatenate([outer, loose_part]))
    assert merged.volume == pytest.approx(8.0, rel=1e-5) and len(merged.split(only_watertight=False)) == 1


# --- real meshes -------------------------------------------------------------------------------------


def test_real_meshes_load_watertight_and_normalised(real_meshes):
    from stereo_occ.config import load_config
    from stereo_occ.data.rig import StereoRig

    shapes = list_shapes(ShapesConfig(source="folder", root=str(real_meshes), mug=0, bowl=0, bottle=0))
    assert len(shapes) == 9
    assert {s.category for s in shapes} == {"mug", "bowl", "bottle"}
    assert "bottle/gso_5_HTP" in {s.object_id for s in shapes}
    # the quick config's narrower field of view (rig.object_radius 0.75) still holds every real mesh
    quick_rig = StereoRig.from_config(load_config(Path(__file__).parents[1] / "configs" / "quick.yaml").dataset.rig)
    assert quick_rig.object_radius < 0.8
    for shape in shapes:
        mesh = shape.load()
        _assert_normalised_solid(mesh)
        quick_rig.check_object(np.asarray(mesh.vertices), shape.origin)
