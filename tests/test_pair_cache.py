"""The per-pair cache of frozen computations: it returns exactly what the computation would, and
only for the same pair."""

from __future__ import annotations

import pytest
import torch

from stereo_occ.config import RigConfig
from stereo_occ.data.rig import StereoRig
from stereo_occ.models.cameras import Cameras
from stereo_occ.models.pair_cache import PairCache
from stereo_occ.models.plane_sweep import plane_sweep
from stereo_occ.models.rig_volume import RigVolumeEncoder

RIG = RigConfig(image_size=32, fov_deg=46.0, object_radius=0.75)


def _pairs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    g = torch.Generator().manual_seed(seed)
    cameras = Cameras.from_rig(StereoRig.from_config(RIG)).expand(n)
    return torch.rand(n, 3, 32, 32, generator=g), torch.rand(n, 3, 32, 32, generator=g), cameras


def _sweep(left, right, K, world_to_cam):
    return plane_sweep(left, right, Cameras(K, world_to_cam, (32, 32)), 16, 0.75)


@pytest.mark.parametrize("size,planes,refine", [(32, 16, False), (64, 32, True)])
def test_the_sweep_of_a_pair_does_not_depend_on_its_batch(size, planes, refine):
    """What the cache's exactness rests on: a pair's sweep alone equals its row of a batch's, bit for
    bit, at the training batch's size (16) and the printed configs' sweep too."""
    g = torch.Generator().manual_seed(1)
    rig = RigConfig(image_size=size, fov_deg=46.0, object_radius=0.75)
    cameras = Cameras.from_rig(StereoRig.from_config(rig)).expand(16)
    left, right = torch.rand(16, 3, size, size, generator=g), torch.rand(16, 3, size, size, generator=g)

    def sweep(l, r, K, w2c):
        return plane_sweep(l, r, Cameras(K, w2c, (size, size)), planes, 0.75, refine=refine)

    batch = sweep(left, right, cameras.K, cameras.world_to_cam)
    for rows in ([0], [3], [2, 7, 11]):
        part = sweep(left[rows], right[rows], cameras.K[rows], cameras.world_to_cam[rows])
        for a, b in zip(part, batch):
            assert torch.equal(a, b[rows])


def test_hits_and_misses_give_the_uncached_result():
    left, right, cameras = _pairs(6)
    inputs = (left, right, cameras.K, cameras.world_to_cam)
    expected = _sweep(*inputs)
    cache = PairCache()
    cache(_sweep, tuple(t[[1, 4]] for t in inputs), salt="s")  # two pairs seen before
    got = cache(_sweep, inputs, salt="s")
    assert (cache.hits, cache.misses) == (2, 6)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    again = cache(_sweep, inputs, salt="s")
    assert cache.hits == 8 and all(torch.equal(a, b) for a, b in zip(again, expected))


def test_another_pair_or_another_computation_is_a_miss():
    left, right, cameras = _pairs(2)
    inputs = (left, right, cameras.K, cameras.world_to_cam)
    cache = PairCache()
    cache(_sweep, inputs, salt="16 planes")
    changed = left.clone()
    changed[1, 0, 5, 5] += 0.01  # one pixel of one image
    cache(_sweep, (changed, right, cameras.K, cameras.world_to_cam), salt="16 planes")
    assert (cache.hits, cache.misses) == (1, 3)
    cache(_sweep, inputs, salt="32 planes")
    assert cache.misses == 5


PER_PAIR = 2 * 3 * 32 * 32 * 4  # a pair's two (3, H, W) float maps


def test_the_cache_keeps_to_its_size_and_lets_the_least_recently_used_go():
    left, right, cameras = _pairs(8)
    inputs = (left, right, cameras.K, cameras.world_to_cam)
    cache = PairCache(max_bytes=3 * PER_PAIR)
    cache(_sweep, tuple(t[:3] for t in inputs), salt="s")  # pairs 0, 1, 2
    cache(_sweep, tuple(t[[0]] for t in inputs), salt="s")  # 0 used again: 1 is now the oldest
    cache(_sweep, tuple(t[[5]] for t in inputs), salt="s")  # 5 comes in, 1 goes
    assert len(cache) == 3 and cache.nbytes == 3 * PER_PAIR
    hits = cache.hits
    cache(_sweep, tuple(t[[0, 2, 5]] for t in inputs), salt="s")
    assert cache.hits == hits + 3
    cache(_sweep, tuple(t[[1]] for t in inputs), salt="s")
    assert cache.hits == hits + 3  # 1 was let go


def test_a_pair_twice_in_a_batch_is_computed_and_counted_once():
    left, right, cameras = _pairs(2)
    rows = [0, 0, 1, 1, 0]
    inputs = (left[rows], right[rows], cameras.K[rows], cameras.world_to_cam[rows])
    computed = []

    def counting(*args):
        computed.append(args[0].shape[0])
        return _sweep(*args)

    cache = PairCache()
    got = cache(counting, inputs, salt="s")
    assert computed == [2] and len(cache) == 2 and cache.nbytes == 2 * PER_PAIR
    for a, b in zip(got, _sweep(*inputs)):
        assert torch.equal(a, b)


def test_an_empty_batch_passes_through():
    left, right, cameras = _pairs(1)
    inputs = (left[:0], right[:0], cameras.K[:0], cameras.world_to_cam[:0])
    got = PairCache()(lambda l, r, k, w: (l + r, k), inputs, salt="s")
    assert [t.shape for t in got] == [(0, 3, 32, 32), (0, 2, 3, 3)]


def test_inputs_that_need_a_gradient_are_not_cached():
    left, right, cameras = _pairs(2)
    cache = PairCache()
    cache(lambda l, r: (l * r,), (left.requires_grad_(), right), salt="s")
    assert len(cache) == 0


@pytest.mark.parametrize("training", [True, False])
def test_rig_stereo_encodes_the_same_with_its_sweeps_cached(training):
    torch.manual_seed(0)
    encoder = RigVolumeEncoder(views=2, sweep_planes=8, sweep_refine=True, image_size=32).train(training)
    left, right, cameras = _pairs(3)
    first = encoder(left, right, cameras)
    encoder.pair_cache.clear()
    encoder.pair_cache.max_bytes = 0  # no cache at all
    uncached = encoder(left, right, cameras)
    encoder.pair_cache.max_bytes = 1 << 20
    encoder(left[:1], right[:1], Cameras(cameras.K[:1], cameras.world_to_cam[:1], (32, 32)))  # one pair cached
    cached = encoder(left, right, cameras)
    for got in (first, cached):
        assert torch.equal(got.left_sweep, uncached.left_sweep)
        assert torch.equal(got.right_sweep, uncached.right_sweep)
        assert torch.equal(got.volume, uncached.volume)
