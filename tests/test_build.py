"""Building datasets: splits, meta, resume after a kill, sharding, workers, broken meshes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import tiny_config

from stereo_occ.config import SplitConfig, load_config
from stereo_occ.data import storage
from stereo_occ.data.build import build_dataset
from stereo_occ.data.splits import assign_splits
from stereo_occ.errors import UserError

# 2 objects per category, 3 views, 32 px, small pools: a full build takes a couple of seconds.
SMALL = [
    "dataset.shapes.mug=2",
    "dataset.shapes.bowl=2",
    "dataset.shapes.bottle=2",
    "dataset.render.views_per_object=3",
    "dataset.rig.image_size=32",
    "dataset.occupancy.n_uniform=2000",
    "dataset.occupancy.n_surface=1000",
]


def small_config(*extra: str):
    return tiny_config(*SMALL, *extra)


def object_dirs(root: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(root)) for p in root.glob("*/*/views.npz"))


def assert_same_dataset(a: Path, b: Path, distances_atol: float = 0.0) -> None:
    """Same objects, byte-identical pools and renders, equal camera/lighting arrays, same meta.

    ``distances_atol``: distances computed again from the stored mesh (an upgrade) may differ by
    float16 rounding where the PLY's float32 vertices move the surface by 1e-8."""
    assert object_dirs(a) == object_dirs(b)
    assert json.loads((a / "meta.json").read_text()) == json.loads((b / "meta.json").read_text())
    for split in ("train", "val", "test"):
        assert (a / "splits" / f"{split}.txt").read_text() == (b / "splits" / f"{split}.txt").read_text()
    for object_id in object_dirs(a):
        for name in ("points.npy", "occupancies.npy", "renders.bin", "info.json"):
            assert (a / object_id / name).read_bytes() == (b / object_id / name).read_bytes(), (object_id, name)
        da, db = (np.load(root / object_id / "distances.npy").astype(np.float32) for root in (a, b))
        np.testing.assert_allclose(da, db, rtol=0, atol=distances_atol)
        with np.load(a / object_id / "views.npz") as va, np.load(b / object_id / "views.npz") as vb:
            for key in va.files:
                np.testing.assert_array_equal(va[key], vb[key])


def test_splits_are_disjoint_cover_everything_and_are_stable():
    objects = {f"{c}/obj-{i}": c for c, n in (("mug", 12), ("bowl", 3), ("bottle", 30)) for i in range(n)}
    cfg = SplitConfig()
    splits = assign_splits(objects, cfg)
    ids = [set(v) for v in splits.values()]
    assert set.union(*ids) == set(objects)
    assert sum(len(v) for v in ids) == len(objects)  # disjoint
    for category in ("mug", "bowl", "bottle"):  # every category in every split
        for split in ("train", "val", "test"):
            assert any(objects[i] == category for i in splits[split])
    assert len(splits["train"]) == pytest.approx(0.8 * len(objects), abs=3)
    assert assign_splits(objects, cfg) == splits
    assert assign_splits(objects, SplitConfig(seed=1)) != splits
    # Adding one object leaves the others where they were (hash order, not a shuffled list).
    more = dict(objects, **{"bottle/obj-new": "bottle"})
    moved = {i for s in splits for i in splits[s] if i not in assign_splits(more, cfg)[s]}
    assert len(moved) <= 2


@pytest.fixture(scope="module")
def full_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "full"
    summary = build_dataset(small_config(), out)
    assert summary.built == 6 and summary.skipped == 0 and not summary.failed
    return out


def test_a_build_writes_meta_splits_and_complete_objects(full_build):
    meta = json.loads((full_build / "meta.json").read_text())
    assert meta["format_version"] == 3 and meta["distance_cap"] == pytest.approx(0.1)
    assert meta["config"]["render"]["views_per_object"] == 3
    assert sorted(meta["objects"]) == object_dirs(full_build)
    assert set(meta["objects"].values()) == {"mug", "bowl", "bottle"}
    listed = [i for s in ("train", "val", "test") for i in (full_build / "splits" / f"{s}.txt").read_text().split()]
    assert sorted(listed) == sorted(meta["objects"])
    reader = storage.ObjectReader(full_build / "mug" / "proc-0000")
    assert reader.n_views == 3 and reader.image(2, 1).shape == (32, 32, 3)
    assert len(reader.points()) == 3000 and reader.points().dtype == np.float16
    assert 0.0 < reader.occupancies()[:2000].mean() < 0.6
    distances = np.asarray(reader.distances(), dtype=np.float32)
    assert distances.shape == (3000,) and np.all(np.abs(distances) <= 0.1)
    np.testing.assert_array_equal(distances <= 0, reader.occupancies())  # the sign is the label
    # a training object's near-surface pool density relative to the uniform one: high near the
    # surface, 0 far from it; objects only evaluated have none (training alone reads it)
    train_id = (full_build / "splits" / "train.txt").read_text().split()[0]
    train_reader = storage.ObjectReader(full_build / train_id)
    density = np.asarray(train_reader.near_density())
    distances = np.asarray(train_reader.distances(), dtype=np.float32)
    assert density.shape == (3000,) and density.dtype == np.float32 and np.all(density >= 0)
    assert np.median(density[2000:]) > 10.0 and np.all(density[:2000][np.abs(distances[:2000]) >= 0.1] == 0.0)
    for split in ("val", "test"):
        for object_id in (full_build / "splits" / f"{split}.txt").read_text().split():
            assert storage.ObjectReader(full_build / object_id).near_density() is None, object_id
    assert not list(full_build.glob("*/*" + storage.TMP_SUFFIX))


def test_a_format_1_dataset_reads_and_is_upgraded_in_place_to_the_same_distances(full_build, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(full_build, out)
    for f in out.glob("*/*/distances.npy"):  # what a build before format 2 left
        f.unlink()
    meta = json.loads((out / "meta.json").read_text())
    del meta["distance_cap"]
    (out / "meta.json").write_text(json.dumps(dict(meta, format_version=1)))
    from stereo_occ.data.dataset import StereoOccupancyDataset

    assert len(StereoOccupancyDataset(out, "train")) > 0  # format 1 still reads...
    with pytest.raises(UserError, match="stereo-occ dataset"):
        StereoOccupancyDataset(out, "train", load_distances=True)[0]  # ...but has no distances
    summary = build_dataset(small_config(), out)
    assert (summary.built, summary.upgraded, summary.skipped) == (0, 6, 0)
    assert_same_dataset(full_build, out, distances_atol=1e-4)
    assert build_dataset(small_config(), out).skipped == 6


def test_a_killed_build_resumes_to_the_same_bytes_as_an_uninterrupted_one(full_build, tmp_path):
    out = tmp_path / "resumed"
    # The "killed" build: half of the objects done (with 2 worker processes), and a half-written
    # object folder left behind.
    first = build_dataset(small_config(), out, workers=2, shard=(1, 2))
    assert first.built == 3
    stale = out / "bowl" / ("proc-0000" + storage.TMP_SUFFIX)
    shutil.copytree(full_build / "bowl" / "proc-0000", stale)
    (stale / "views.npz").unlink()
    (stale / "renders.bin").write_bytes(b"truncated")
    second = build_dataset(small_config(), out)
    assert (second.built, second.skipped, second.failed) == (3, 3, [])
    assert not stale.exists()
    assert_same_dataset(full_build, out)
    third = build_dataset(small_config(), out)  # nothing left to do
    assert (third.built, third.skipped) == (0, 6)


def test_shards_together_make_the_full_build(full_build, tmp_path):
    out = tmp_path / "sharded"
    built = [build_dataset(small_config(), out, shard=(k, 2)).built for k in (0, 1)]
    assert built == [3, 3]
    assert_same_dataset(full_build, out)


def test_one_split_alone_then_the_rest_make_the_full_build(tmp_path):
    cfg = small_config("dataset.splits.train=0.5", "dataset.splits.val=0.0", "dataset.splits.test=0.5")
    reference = tmp_path / "whole"
    build_dataset(cfg, reference)
    out = tmp_path / "test-first"
    first = build_dataset(cfg, out, split="test")
    test_ids = (reference / "splits" / "test.txt").read_text().split()
    assert 0 < first.built == len(test_ids) < 6
    assert object_dirs(out) == sorted(test_ids)  # only that split's objects, the split files whole
    assert (out / "splits" / "train.txt").read_text() == (reference / "splits" / "train.txt").read_text()
    second = build_dataset(cfg, out)
    assert (second.built, second.skipped) == (6 - len(test_ids), len(test_ids))
    assert_same_dataset(reference, out)
    with pytest.raises(UserError, match="split must be one of"):
        build_dataset(cfg, out, split="testing")


def test_the_command_line_offers_exactly_the_dataset_splits():
    from stereo_occ.cli import SPLIT_NAMES
    from stereo_occ.data.splits import SPLITS

    assert SPLIT_NAMES == SPLITS


def test_a_folder_built_with_another_config_is_refused(full_build):
    before = (full_build / "meta.json").read_bytes()
    with pytest.raises(UserError, match=r"different config \(render.views_per_object differ\)"):
        build_dataset(small_config("dataset.render.views_per_object=5"), full_build)
    assert (full_build / "meta.json").read_bytes() == before


def test_a_print_setting_without_a_print_is_the_same_dataset(full_build, tmp_path):
    """A plain dataset resumes whatever the print's settings say (they change no pixel without a print);
    a print itself is another dataset."""
    copy = tmp_path / "plain"
    shutil.copytree(full_build, copy)
    summary = build_dataset(small_config("dataset.render.pattern_contrast=[0.1,0.2]"), copy)
    assert summary.built == 0
    with pytest.raises(UserError, match=r"\(render.pattern[,) ]"):
        build_dataset(small_config("dataset.render.pattern=blotches"), copy)


def test_a_dataset_built_before_a_config_field_existed_is_still_the_same_config(full_build, tmp_path):
    # meta.json written before rig.object_radius existed: the field takes its default, so resuming works
    copy = tmp_path / "old"
    shutil.copytree(full_build, copy)
    meta = json.loads((copy / "meta.json").read_text())
    del meta["config"]["rig"]["object_radius"]
    (copy / "meta.json").write_text(json.dumps(meta))
    summary = build_dataset(small_config(), copy)
    assert summary.built == 0
    with pytest.raises(UserError, match="rig.object_radius differ"):
        build_dataset(small_config("dataset.rig.object_radius=0.8"), copy)


def test_a_mesh_reaching_beyond_the_rig_sphere_is_reported_and_the_rest_is_built(tmp_path):
    shapes = tmp_path / "meshes"
    (shapes / "mug").mkdir(parents=True)
    trimesh.creation.cylinder(radius=0.3, height=0.8).export(shapes / "mug" / "cup.obj")  # reaches 0.625
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(shapes / "mug" / "cube.obj")  # reaches 0.87
    cfg = small_config(
        "dataset.shapes.source=folder",
        f"dataset.shapes.root={shapes}",
        "dataset.shapes.categories=[mug]",
        "dataset.shapes.mug=0",
        "dataset.rig.fov_deg=46",
        "dataset.rig.object_radius=0.75",
    )
    summary = build_dataset(cfg, tmp_path / "out")
    assert summary.built == 1
    assert [object_id for object_id, _ in summary.failed] == ["mug/cube"]
    assert "cube.obj" in summary.failed[0][1] and "rig.object_radius" in summary.failed[0][1]


def test_a_corrupt_mesh_is_reported_and_the_rest_is_built(tmp_path):
    shapes = tmp_path / "meshes"
    (shapes / "mug").mkdir(parents=True)
    (shapes / "bowl").mkdir()
    trimesh.creation.cylinder(radius=0.3, height=0.8).export(shapes / "mug" / "cup.obj")
    trimesh.creation.annulus(r_min=0.2, r_max=0.4, height=0.5).export(shapes / "mug" / "ring.obj")
    (shapes / "mug" / "broken.obj").write_text("v 0 0 zero\nf 1 2 this is not a mesh\n\x00\x01")
    trimesh.creation.icosphere(radius=0.5).export(shapes / "bowl" / "ball.obj")
    cfg = small_config(
        "dataset.shapes.source=folder",
        f"dataset.shapes.root={shapes}",
        "dataset.shapes.categories=[mug,bowl]",
        "dataset.shapes.mug=0",  # 0 = every file
        "dataset.shapes.bowl=0",
    )
    summary = build_dataset(cfg, tmp_path / "out")
    assert summary.built == 3
    assert [object_id for object_id, _ in summary.failed] == ["mug/broken"]
    message = summary.failed[0][1]
    assert "broken.obj" in message and "\n" not in message
    assert object_dirs(tmp_path / "out") == ["bowl/ball", "mug/cup", "mug/ring"]


def test_a_rig_that_cannot_see_the_object_fails_before_writing_anything(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(UserError, match="field of view"):
        build_dataset(tiny_config("dataset.rig.fov_deg=10"), out)
    assert not out.exists()  # nothing to lock the folder to the bad config


def test_a_folder_of_two_meshes_becomes_a_test_only_dataset(tmp_path):
    """`stereo-occ dataset --meshes FOLDER`: every mesh a test object, the config's rig, no split arithmetic."""
    from stereo_occ.cli import main
    from test_experiment import two_mesh_folder

    folder = two_mesh_folder(tmp_path / "meshes")
    out = tmp_path / "mine"
    main(["dataset", "--out", str(out), "--meshes", str(folder), "--views", "2",
          "dataset.rig.image_size=64", "dataset.occupancy.n_uniform=5000", "dataset.occupancy.n_surface=2000"])
    splits = {s: (out / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert splits["train"] == [] and splits["val"] == []
    assert sorted(splits["test"]) == ["bottle/tall", "bowl/dish"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["shapes"]["source"] == "folder"
    assert meta["config"]["render"]["views_per_object"] == 2 and meta["config"]["rig"]["image_size"] == 64
    for object_id in splits["test"]:
        assert (out / object_id / "views.npz").is_file()


def test_a_mesh_folder_without_category_folders_is_a_clear_error(tmp_path):
    from stereo_occ.data.build import folder_test_config

    (tmp_path / "stuff").mkdir()
    with pytest.raises(UserError, match="no category sub-folder"):
        folder_test_config(load_config(), tmp_path)
    with pytest.raises(UserError, match="not found"):
        folder_test_config(load_config(), tmp_path / "missing")
