"""The torch Dataset over a built dataset: item layout, frames, determinism, worker safety."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from stereo_occ.config import CATEGORIES, DataConfig, DatasetConfig
from stereo_occ.data.dataset import (
    StereoOccupancyDataset,
    dataset_config,
    read_meta,
    read_split,
)
from stereo_occ.data.rig import project
from stereo_occ.errors import UserError


@pytest.fixture(scope="module")
def train(tiny_dataset):
    return StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, seed=3, load_depth=True)


def test_meta_splits_and_config_round_trip(tiny_dataset):
    meta = read_meta(tiny_dataset)
    cfg = dataset_config(tiny_dataset)
    assert isinstance(cfg, DatasetConfig) and cfg.render.views_per_object == 4
    ids = [i for s in ("train", "val", "test") for i in read_split(tiny_dataset, s)]
    assert sorted(ids) == sorted(meta["objects"])
    with pytest.raises(UserError, match="unknown split"):
        read_split(tiny_dataset, "dev")
    with pytest.raises(UserError, match="meta.json"):
        read_meta(tiny_dataset / "mug")


def test_items_have_the_promised_shapes_and_types(train):
    assert len(train) == len(train.objects) * 4
    item = train[5]
    expected = {
        "left": ((3, 64, 64), torch.float32),
        "right": ((3, 64, 64), torch.float32),
        "points": ((512, 3), torch.float32),
        "occupancies": ((512,), torch.float32),
        "uniform": ((512,), torch.bool),
        "category": ((), torch.int64),
        "rotation": ((3, 3), torch.float32),
        "K": ((2, 3, 3), torch.float32),
        "world_to_cam": ((2, 4, 4), torch.float32),
        "object_index": ((), torch.int64),
        "view": ((), torch.int64),
        "depth": ((2, 64, 64), torch.float32),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in item.items()} == expected
    assert item["object_index"] == 1 and item["view"] == 1
    assert 0.0 <= item["left"].min() and item["left"].max() <= 1.0
    assert set(item["occupancies"].unique().tolist()) <= {0.0, 1.0}
    assert CATEGORIES[int(item["category"])] == train.categories[1]


def test_points_are_the_pool_rotated_into_the_rig_frame(train):
    item = train[6]
    obj = train.objects[int(item["object_index"])]
    rotation = item["rotation"].numpy().astype(np.float64)
    np.testing.assert_allclose(rotation, obj.cameras(int(item["view"]))[0], atol=1e-7)
    p_obj = item["points"].numpy().astype(np.float64) @ rotation  # R^T p_rig
    pool = obj.points().astype(np.float64)
    labels = obj.occupancies()
    # Every drawn point is a pool point (object frame) with the pool's label.
    for p, occ in zip(p_obj[:50], item["occupancies"].numpy()[:50]):
        distance = np.abs(pool - p).max(axis=1)
        j = int(np.argmin(distance))
        assert distance[j] < 1e-5 and labels[j] == bool(occ)


def test_near_surface_share_and_inside_points_project_onto_the_object(train):
    item = train[0]
    obj = train.objects[0]
    # About half of the points come from the near-surface pool: those are balanced in/out.
    assert 0.2 < float(item["occupancies"].mean()) < 0.7
    assert int(item["uniform"].sum()) == 256 and item["uniform"][:256].all()  # uniform first (sorted draw)
    inside = item["points"][item["occupancies"] > 0].numpy().astype(np.float64)
    for cam in (0, 1):
        uv, depth = project(inside, item["K"][cam].double().numpy(), item["world_to_cam"][cam].double().numpy())
        cols, rows = np.round(uv).astype(int).T
        mask = item["depth"][cam].numpy() > 0
        # Inside points fall on object pixels (within a pixel at the silhouette) and lie behind the
        # visible surface.
        on_object = np.array([mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any() for r, c in zip(rows, cols)])
        assert on_object.all()
        surface = item["depth"][cam].numpy()[rows, cols]
        visible = surface > 0
        assert (depth[visible] >= surface[visible] - 0.02).mean() > 0.97
    assert obj.category == train.categories[0]


def test_the_same_seed_epoch_and_index_give_the_same_item(tiny_dataset, train):
    again = StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, seed=3, load_depth=True)
    a, b = train[7], again[7]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    again.set_epoch(1)
    assert not torch.equal(again[7]["points"], a["points"])
    again.set_epoch(0)
    assert torch.equal(again[7]["points"], a["points"])
    other_seed = StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, seed=4)
    assert not torch.equal(other_seed[7]["points"], a["points"])


def test_pickles_for_dataloader_workers(train):
    train[0]  # open the memory maps first: they must not travel with the pickle
    copy = pickle.loads(pickle.dumps(train))
    assert len(pickle.dumps(train)) < 20_000
    for key, value in train[3].items():
        assert torch.equal(copy[3][key], value), key
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=0)
    batch = next(iter(loader))
    assert batch["left"].shape == (4, 3, 64, 64) and batch["points"].shape == (4, 512, 3)


def test_uniform_only_views_and_from_config(tiny_dataset):
    full = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=0, views="first", uniform_only=True)
    assert len(full) == len(full.objects)
    item = full[0]
    obj = full.objects[0]
    assert item["points"].shape == (obj.n_uniform, 3)
    rotation = item["rotation"].double().numpy()
    np.testing.assert_allclose(item["points"].double().numpy() @ rotation, obj.points()[: obj.n_uniform], atol=1e-6)
    np.testing.assert_array_equal(item["occupancies"].numpy().astype(bool), obj.occupancies()[: obj.n_uniform])
    two = StereoOccupancyDataset.from_config(tiny_dataset, "val", DataConfig(points_per_sample=64), views=2)
    assert len(two) == 2 * len(two.objects) and two[1]["points"].shape == (64, 3) and int(two[1]["view"]) == 1
    with pytest.raises(UserError, match="views"):
        StereoOccupancyDataset(tiny_dataset, "val", views=9)


def test_preview_draws_a_grid_and_names_bad_input(tiny_dataset, tmp_path):
    from PIL import Image

    from stereo_occ.data.preview import save_preview

    out = tmp_path / "preview.png"
    save_preview(tiny_dataset, out, n_objects=3)
    with Image.open(out) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert width > 2 * height  # three objects side by side in one row, left and right image each
    assert ((pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum() > 50  # red dots
    with pytest.raises(UserError, match="meta.json"):
        save_preview(tmp_path, tmp_path / "x.png")


def test_distances_are_the_signed_distances_of_the_drawn_points(tiny_dataset):
    import trimesh

    data = StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, seed=3, load_distances=True)
    item = data[2]
    distance, occupied = item["distances"].numpy(), item["occupancies"].numpy() == 1
    assert item["distances"].shape == (512,) and np.array_equal(distance <= 0, occupied)
    obj = data.objects[int(item["object_index"])]
    p_obj = item["points"].numpy().astype(np.float64) @ item["rotation"].numpy().astype(np.float64)  # p_rig = R p_obj
    truth = -trimesh.proximity.signed_distance(obj.mesh(), p_obj)  # trimesh: positive inside
    near = np.abs(truth) < 0.09
    assert near.sum() > 100
    np.testing.assert_allclose(distance[near], truth[near], atol=1e-3)
    assert np.all(distance[truth > 0.11] == pytest.approx(0.1, abs=1e-4))  # clipped at the cap


def test_volume_weights_make_the_drawn_points_estimate_the_objects_volume(tiny_dataset):
    """Each drawn point carries its importance weight (data/mixture.py): uniform points far from the
    surface weigh 1 / uniform share, near-surface ones far less; over an object's items the weighted
    inside share is its volume share of the box, as the uniform points alone say."""
    data = StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, volume_weights=True)
    item = data[0]
    weight, uniform = item["volume_weight"].numpy(), item["uniform"].numpy()
    assert weight.shape == (512,) and weight.dtype == np.float32
    assert np.all(weight > 0) and weight.max() <= 2.0 + 1e-6
    assert np.median(weight[~uniform]) < 0.5 < np.median(weight[uniform])
    obj = data.objects[0]
    truth = np.asarray(obj.occupancies()[: obj.n_uniform], dtype=bool).mean()
    views = data.views_per_object
    weighted = []
    for epoch in range(8):
        data.set_epoch(epoch)
        for i in range(views):
            it = data[i]
            weighted.append(float((it["volume_weight"] * it["occupancies"]).sum() / it["volume_weight"].sum()))
    assert np.mean(weighted) == pytest.approx(truth, rel=0.15)
    assert "volume_weight" not in StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=8)[0]


def test_volume_weights_of_a_dataset_built_before_the_densities_come_from_its_meshes(tiny_dataset, tmp_path):
    """A format-2 dataset has no near_density.npy: fresh samples of each stored mesh estimate it, near
    the exact densities the build stores (each point's estimate is noisy with the tiny dataset's few
    surface samples, and the weights, which invert it, come out a few percent high)."""
    import shutil

    old = tmp_path / "format2"
    shutil.copytree(tiny_dataset, old)
    for f in old.glob("*/*/near_density.npy"):
        f.unlink()
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps(dict(meta, format_version=2)))
    exact = StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=512, volume_weights=True)
    estimated = StereoOccupancyDataset(old, "train", points_per_sample=512, volume_weights=True)
    a, b = exact._pool_weights(0), estimated._pool_weights(0)
    assert a.shape == b.shape and not np.array_equal(a, b)
    near = slice(exact.objects[0].n_uniform, None)
    log_ratio = np.log(b[near] / a[near])
    assert abs(np.median(log_ratio)) < 0.15 and np.median(np.abs(log_ratio)) < 0.4
