"""``stereo-occ reconstruct`` for many pairs: finding pairs, the batch API and CLI, simplification,
the timing line, and what the command imports."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import trimesh
from PIL import Image

from stereo_occ import cli
from stereo_occ.errors import UserError
from stereo_occ.evaluation import simplify as simplify_module
from stereo_occ.evaluation.mise import grid_to_mesh
from stereo_occ.evaluation.pairs import Pair, find_pairs, pair_name
from stereo_occ.evaluation.reconstruct import InputWarning, Reconstructor
from stereo_occ.evaluation.simplify import SimplifyWarning, repair_pinches, simplify_mesh

# The same small untrained stereo checkpoint as the single-pair tests.
from test_reconstruct import SIZE, checkpoint  # noqa: E402,F401 (a fixture)


def image(path, seed=0, size=SIZE):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def run_cli(*argv: str) -> None:
    cli.main(["reconstruct", *map(str, argv)])


# --- finding pairs -------------------------------------------------------------------------------------


def test_find_pairs_in_a_folder(tmp_path):
    image(tmp_path / "mug_left.png")
    image(tmp_path / "mug_right.png")
    image(tmp_path / "Bowl_2_LEFT.JPG")
    image(tmp_path / "Bowl_2_right.jpeg")
    image(tmp_path / "._mug_left.png")  # macOS metadata file: ignored
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cameras.yaml").write_text("{}")
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["Bowl_2", "mug"]
    assert pairs[0] == Pair("Bowl_2", tmp_path / "Bowl_2_LEFT.JPG", tmp_path / "Bowl_2_right.jpeg")


def test_find_pairs_in_a_list_file_with_relative_paths(tmp_path):
    image(tmp_path / "shots" / "cup-left.png")
    image(tmp_path / "shots" / "cup-right.png")
    image(tmp_path / "scene 1" / "left.png")
    image(tmp_path / "scene 1" / "right.png")
    image(tmp_path / "bottleLeft.bmp")
    absolute = image(tmp_path / "elsewhere" / "x_right.tif")
    listing = tmp_path / "lists" / "pairs.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# left right\n"
        "../shots/cup-left.png ../shots/cup-right.png\n"
        "\n"
        "'../scene 1/left.png' '../scene 1/right.png'   # quoted: the folder has a space\n"
        f"../bottleLeft.bmp {absolute}\n"
    )
    pairs = find_pairs(listing)
    assert [p.name for p in pairs] == ["cup", "scene 1", "bottle"]
    assert pairs[0].left == listing.parent / "../shots/cup-left.png"
    assert pairs[2].right == absolute
    assert all(p.left.is_file() and p.right.is_file() for p in pairs)


@pytest.mark.parametrize(
    "stem, name",
    [("mug_left", "mug"), ("mug-left", "mug"), ("mugLeft", "mug"), ("mug.left", "mug"), ("mug", "mug"),
     ("left", "scene")],
)
def test_pair_name(stem, name):
    assert pair_name(f"data/scene/{stem}.png") == name


def test_a_left_image_without_its_right_is_named(tmp_path):
    image(tmp_path / "mug_left.png")
    image(tmp_path / "mug_right.png")
    image(tmp_path / "bowl_left.png")
    with pytest.raises(UserError, match=r"bowl_left.png has no right image \(expected bowl_right"):
        find_pairs(tmp_path)


def test_a_right_image_without_its_left_is_named(tmp_path):
    image(tmp_path / "bowl_right.png")
    with pytest.raises(UserError, match="bowl_right.png has no left image"):
        find_pairs(tmp_path)


def test_empty_folder_says_what_it_looks_for(tmp_path):
    image(tmp_path / "photo.png")
    with pytest.raises(UserError, match=r"no stereo pairs found; expected <name>_left.<ext>"):
        find_pairs(tmp_path)


def test_two_left_images_of_one_name(tmp_path):
    image(tmp_path / "mug_left.png")
    image(tmp_path / "mug_left.jpg")
    image(tmp_path / "mug_right.png")
    with pytest.raises(UserError, match="two left images for 'mug': mug_left.jpg and mug_left.png"):
        find_pairs(tmp_path)


def test_missing_file_in_a_list_names_the_line(tmp_path):
    image(tmp_path / "a_left.png")
    image(tmp_path / "a_right.png")
    listing = tmp_path / "pairs.txt"
    listing.write_text("a_left.png a_right.png\n# two\nb_left.png a_right.png\n")
    with pytest.raises(UserError, match=r"pairs.txt line 3: left image not found: .*b_left.png"):
        find_pairs(listing)


def test_duplicate_names_in_a_list(tmp_path):
    for folder in ("day", "night"):
        image(tmp_path / folder / "mug_left.png")
        image(tmp_path / folder / "mug_right.png")
    listing = tmp_path / "pairs.txt"
    listing.write_text("day/mug_left.png day/mug_right.png\nnight/mug_left.png night/mug_right.png\n")
    with pytest.raises(UserError, match=r"two pairs are named 'mug' \(line 1 and line 2\)"):
        find_pairs(listing)


def test_names_that_differ_only_in_case_collide(tmp_path):
    for name in ("Mug", "mug"):
        image(tmp_path / f"{name}_left.png")
        image(tmp_path / f"{name}_right.png")
    if len(list(tmp_path.iterdir())) < 4:
        pytest.skip("this file system ignores case")
    with pytest.raises(UserError, match=r"two pairs are named 'mug' \(Mug_left.png and mug_left.png\)"):
        find_pairs(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a_left.png\n", "line 1: expected two paths, LEFT RIGHT .got 1."),
        ("# nothing\n\n", "no pairs in the file"),
        ("'a_left.png a_right.png\n", "line 1: No closing quotation"),
    ],
)
def test_bad_list_files(tmp_path, text, message):
    image(tmp_path / "a_left.png")
    image(tmp_path / "a_right.png")
    listing = tmp_path / "pairs.txt"
    listing.write_text(text)
    with pytest.raises(UserError, match=message):
        find_pairs(listing)


def test_pairs_source_that_is_missing_or_an_image(tmp_path):
    with pytest.raises(UserError, match="nope: no such folder or file"):
        find_pairs(tmp_path / "nope")
    with pytest.raises(UserError, match="this is an image"):
        find_pairs(image(tmp_path / "a_left.png"))


# --- simplification ------------------------------------------------------------------------------------


def grid_mesh(values_fn, n=64, box=0.55) -> trimesh.Trimesh:
    axis = np.linspace(-box, box, n + 1)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return grid_to_mesh(40.0 * values_fn(x, y, z), 0.5, box)  # logit 0 = probability 0.5 at the surface


@pytest.fixture(scope="module")
def sphere():
    mesh = grid_mesh(lambda x, y, z: 0.4 - np.sqrt(x**2 + y**2 + z**2), n=96)
    assert mesh.is_watertight and len(mesh.faces) > 40_000
    return mesh


def test_simplified_sphere_is_capped_closed_and_keeps_its_volume(sphere):
    for budget in (5_000, 1_000):
        simple = simplify_mesh(sphere, budget)
        assert len(simple.faces) <= budget
        assert simple.is_watertight and simple.is_winding_consistent
        assert simple.volume == pytest.approx(sphere.volume, rel=0.01)


def test_no_simplification_when_within_budget_or_zero(sphere):
    assert simplify_mesh(sphere, 0) is sphere
    assert simplify_mesh(sphere, len(sphere.faces)) is sphere
    with pytest.raises(UserError, match="max_faces must be 0"):
        simplify_mesh(sphere, -1)


def test_flat_parts_lose_more_faces_than_curved_ones():
    dome = grid_mesh(lambda x, y, z: np.minimum(0.4 - np.sqrt(x**2 + y**2 + z**2), z + 0.05))
    on_flat = lambda m: np.mean(np.abs(m.triangles_center[:, 2] + 0.05) < 1e-3)  # noqa: E731
    simple = simplify_mesh(dome, 1_000)
    assert simple.is_watertight
    assert on_flat(simple) < 0.6 * on_flat(dome)


def test_an_opened_mesh_is_retried_more_carefully(sphere, monkeypatch):
    decimate = simplify_module._decimate
    tried = []

    def opens_at_default(mesh, max_faces, aggression):
        tried.append(aggression)
        out = decimate(mesh, max_faces, aggression)
        if aggression == simplify_module.AGGRESSION[0]:
            out = trimesh.Trimesh(out.vertices, out.faces[1:], process=False)  # a hole
        return out

    monkeypatch.setattr(simplify_module, "_decimate", opens_at_default)
    simple = simplify_mesh(sphere, 2_000)
    assert tried[:2] == list(simplify_module.AGGRESSION[:2])
    assert simple.is_watertight and len(simple.faces) <= 2_000


def test_a_mesh_that_cannot_be_simplified_closed_is_kept_with_a_warning(sphere, monkeypatch):
    decimate = simplify_module._decimate

    def always_opens(mesh, max_faces, aggression):
        out = decimate(mesh, max_faces, aggression)
        return trimesh.Trimesh(out.vertices, out.faces[1:], process=False)

    monkeypatch.setattr(simplify_module, "_decimate", always_opens)
    with pytest.warns(SimplifyWarning, match="without opening it; kept it as it was"):
        assert simplify_mesh(sphere, 2_000) is sphere


def merged(*meshes: trimesh.Trimesh) -> trimesh.Trimesh:
    """One mesh whose coincident vertices are shared: where the parts touch, edges get four faces."""
    mesh = trimesh.util.concatenate(meshes)
    mesh.merge_vertices()
    return mesh


def edge_face_counts(mesh: trimesh.Trimesh) -> set[int]:
    return set(np.unique(np.unique(np.sort(mesh.edges, axis=1), axis=0, return_counts=True)[1]))


def test_two_cubes_touching_along_an_edge_are_separated_there():
    a = trimesh.creation.box(extents=(1, 1, 1))
    b = trimesh.creation.box(extents=(1, 1, 1), transform=trimesh.transformations.translation_matrix((1, 1, 0)))
    pinched = merged(a, b)
    assert 4 in edge_face_counts(pinched) and not pinched.is_watertight
    repaired = repair_pinches(pinched)
    assert repaired.is_watertight and repaired.is_winding_consistent
    assert len(repaired.faces) == len(pinched.faces)
    assert repaired.volume == pytest.approx(2.0)
    assert len(repaired.split(only_watertight=True)) == 2  # each cube keeps its own copy of the edge


def test_two_cavities_touching_along_an_edge_are_separated_there():
    # A block with two cube-shaped holes that touch along an edge: here the faces around the edge bound
    # empty space, so the solid pairing leaves the edge's ends joined and the other pairing is the one.
    block = trimesh.creation.box(extents=(4, 4, 4))
    holes = [trimesh.creation.box(extents=(1, 1, 1), transform=trimesh.transformations.translation_matrix(t))
             for t in ((0, 0, 0), (1, 1, 0))]
    for hole in holes:
        hole.invert()
    pinched = merged(block, *holes)
    assert 4 in edge_face_counts(pinched)
    repaired = repair_pinches(pinched)
    assert repaired.is_watertight and repaired.is_winding_consistent
    assert repaired.volume == pytest.approx(64.0 - 2.0)


def test_a_flattened_fin_is_removed(sphere):
    a, b = sphere.edges_unique[0]
    tip = len(sphere.vertices)
    fin = np.array([[a, b, tip], [b, a, tip]])  # two coincident triangles facing opposite ways
    finned = trimesh.Trimesh(np.vstack([sphere.vertices, sphere.vertices[a] + 0.01]), np.vstack([sphere.faces, fin]),
                             process=False)
    assert not finned.is_watertight
    repaired = repair_pinches(finned)
    assert repaired.is_watertight and len(repaired.faces) == len(sphere.faces)
    assert repaired.volume == pytest.approx(sphere.volume)
    # a triangle repeated the same way round is not a flattened wall: kept, and the mesh stays open
    doubled = trimesh.Trimesh(sphere.vertices, np.vstack([sphere.faces, sphere.faces[:1]]), process=False)
    assert not repair_pinches(doubled).is_watertight


def test_a_closed_mesh_is_left_as_it_is(sphere):
    assert repair_pinches(sphere) is sphere


def test_a_thin_bowl_reaches_the_budget_closed():
    # Walls 0.02 thick, about one grid cell: the default decimation pinches them (the case of
    # reconstructed mugs and bowls), and the repair keeps it closed at the budget.
    radius = lambda x, y, z: np.sqrt(x**2 + y**2 + z**2)  # noqa: E731
    bowl = grid_mesh(lambda x, y, z: np.minimum(np.minimum(0.4 - radius(x, y, z), radius(x, y, z) - 0.38), -z))
    assert bowl.is_watertight
    opened = simplify_module._decimate(bowl, 2_000, simplify_module.AGGRESSION[0])
    assert not simplify_module._closed(opened)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimplifyWarning)
        simple = simplify_mesh(bowl, 2_000)
    assert len(simple.faces) <= 2_000 and simple.is_watertight and simple.is_winding_consistent
    assert simple.volume == pytest.approx(bowl.volume, rel=0.01)


# --- the batch API -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reconstructor(checkpoint):
    return Reconstructor.from_checkpoint(checkpoint, device="cpu")


def rgb(seed):
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_reconstruct_many_goes_on_after_a_bad_pair(reconstructor, tmp_path):
    grey = np.full((SIZE, SIZE), 90, dtype=np.uint8)
    pairs = [(grey, rgb(1)), (rgb(2), tmp_path / "missing.png"), (grey, rgb(3))]
    results = list(reconstructor.reconstruct_many(pairs, max_faces=200))
    assert [r.name for r in results] == ["0", "1", "2"]
    assert [r.ok for r in results] == [True, False, True]
    assert "right image not found" in results[1].error and results[1].mesh is None
    for r in (results[0], results[2]):  # every pair reports its own warnings
        assert any("left image is greyscale" in w for w in r.warnings)
        assert len(r.mesh.faces) <= 200 < r.raw_faces and r.mesh.is_watertight


def test_reconstruct_many_fails_a_pair_whose_warning_is_made_an_error(reconstructor):
    grey = np.full((SIZE, SIZE), 90, dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        results = list(reconstructor.reconstruct_many([(grey, rgb(1)), (rgb(2), rgb(1))]))
    assert not results[0].ok and "greyscale" in results[0].error
    assert results[1].ok


# --- the command ---------------------------------------------------------------------------------------

TIMING = r"in \d+\.\d\d s \(model load \d+\.\d\d s, reconstruction \d+\.\d\d s\)"


def test_one_pair_prints_the_timing_line(checkpoint, tmp_path, capsys):
    left, right = image(tmp_path / "l.png", 1), image(tmp_path / "r.png", 2)
    run_cli("--checkpoint", checkpoint, "--left", left, "--right", right, "--out", tmp_path / "m.ply",
            "--max-faces", "1000")
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"wrote \S+m\.ply \([\d,]+ vertices, [\d,]+ faces, rig frame; simplified from [\d,]+ faces\) {TIMING}", line
    ), line
    mesh = trimesh.load(tmp_path / "m.ply", force="mesh")
    assert len(mesh.faces) <= 1000 and mesh.is_watertight


def test_max_faces_zero_keeps_the_raw_mesh(checkpoint, reconstructor, tmp_path, capsys):
    left, right = image(tmp_path / "l.png", 1), image(tmp_path / "r.png", 2)
    run_cli("--checkpoint", checkpoint, "--left", left, "--right", right, "--out", tmp_path / "m.ply",
            "--max-faces", "0")
    assert "simplified" not in capsys.readouterr().out
    raw = reconstructor.raw_mesh(left, right)
    assert len(trimesh.load(tmp_path / "m.ply", force="mesh").faces) == len(raw.faces)


def test_max_faces_comes_from_the_config_and_the_flag_wins(checkpoint, tmp_path, capsys):
    left, right = image(tmp_path / "l.png", 1), image(tmp_path / "r.png", 2)
    run_cli("--checkpoint", checkpoint, "--left", left, "--right", right, "--out", tmp_path / "a.ply",
            "reconstruct.max_faces=100")
    assert len(trimesh.load(tmp_path / "a.ply", force="mesh").faces) <= 100
    run_cli("--checkpoint", checkpoint, "--left", left, "--right", right, "--out", tmp_path / "b.ply",
            "reconstruct.max_faces=100", "--max-faces", "1000")
    assert 100 < len(trimesh.load(tmp_path / "b.ply", force="mesh").faces) <= 1000
    capsys.readouterr()


def test_a_folder_of_two_pairs_writes_one_mesh_each(checkpoint, tmp_path, capsys):
    for name, seed in (("mug", 1), ("bowl", 3)):
        image(tmp_path / "in" / f"{name}_left.png", seed)
        image(tmp_path / "in" / f"{name}_right.png", seed + 1)
    run_cli("--checkpoint", checkpoint, "--pairs", tmp_path / "in", "--out", tmp_path / "out", "--format", "glb")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bowl.glb", "mug.glb"]
    assert all(len(trimesh.load(p, force="mesh").faces) > 0 for p in (tmp_path / "out").iterdir())
    out = capsys.readouterr().out
    assert re.search(r"wrote \S+bowl\.glb \([\d,]+ vertices, [\d,]+ faces.*\) in \d+\.\d\d s", out)
    assert re.search(r"wrote 2 meshes to \S+out in \d+\.\d\d s \(model load \d+\.\d\d s, first pair "
                     r"\d+\.\d\d s, then \d+\.\d\d s per pair\)", out), out


def test_a_list_file_with_relative_paths_from_another_folder(checkpoint, tmp_path, monkeypatch, capsys):
    image(tmp_path / "data" / "a" / "cup-left.png", 1)
    image(tmp_path / "data" / "a" / "cup-right.png", 2)
    (tmp_path / "data" / "pairs.txt").write_text("# mine\na/cup-left.png a/cup-right.png\n")
    monkeypatch.chdir(tmp_path)
    run_cli("--checkpoint", checkpoint, "--pairs", "data/pairs.txt", "--out", "meshes")
    assert [p.name for p in (tmp_path / "meshes").iterdir()] == ["cup.ply"]
    assert "wrote 1 mesh to meshes" in capsys.readouterr().out


def test_a_bad_pair_is_reported_and_the_others_still_run(checkpoint, tmp_path, capsys):
    image(tmp_path / "in" / "good_left.png", 1)
    image(tmp_path / "in" / "good_right.png", 2)
    image(tmp_path / "in" / "wide_left.png", 1)
    Image.new("RGB", (2 * SIZE, SIZE)).save(tmp_path / "in" / "wide_right.png")
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--checkpoint", checkpoint, "--pairs", tmp_path / "in", "--out", tmp_path / "out")
    assert exit_info.value.code == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.ply"]
    captured = capsys.readouterr()
    assert "failed: wide: left and right images differ in size: 32x32 vs 64x32" in captured.err
    assert "1 of 2 pairs failed: wide" in captured.out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pairs", "x", "--left", "l.png", "--out", "o"], "either --pairs or --left and --right, not both"),
        (["--out", "o"], "give --left and --right .one pair. or --pairs"),
        (["--left", "l.png", "--out", "o.ply"], "--left needs --right"),
        (["--left", "l.png", "--right", "r.png", "--out", "o.ply", "--format", "obj"], "--format is for --pairs"),
    ],
)
def test_conflicting_or_missing_inputs(tmp_path, argv, message):
    args = cli.build_parser().parse_args(["reconstruct", "--checkpoint", str(tmp_path / "c.pt"), *argv])
    with pytest.raises(UserError, match=message):
        cli.run(args)


def test_pairs_errors_come_before_the_model_is_loaded(tmp_path, capsys):
    image(tmp_path / "in" / "mug_left.png")
    with pytest.raises(SystemExit) as exit_info:  # the checkpoint does not even exist
        run_cli("--checkpoint", tmp_path / "none.pt", "--pairs", tmp_path / "in", "--out", tmp_path / "out")
    assert exit_info.value.code == 2
    assert "mug_left.png has no right image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_reconstruct_path_imports_no_rendering_plotting_or_logging():
    heavy = ["pyrender", "matplotlib", "tensorboard", "selenium", "OpenGL", "torchvision"]
    code = (
        "import sys\n"
        "import stereo_occ.cli, stereo_occ.evaluation.reconstruct, stereo_occ.training.checkpoint\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

