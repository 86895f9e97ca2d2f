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


def test_the_sweep_of_a_pair_does_not_depend_on_its_batch():
    """What the cache's exactness rests on: a pair's sweep alone equals its row of a batch's, bit for bit."""
    left, right, cameras = _pairs(5)
    batch = _sweep(left, right, cameras.K, cameras.world_to_cam)
    for i in (0, 3):
        alone = _sweep(left[i:i + 1], right[i:i + 1], cameras.K[i:i + 1], cameras.world_to_cam[i:i + 1])
        for a, b in zip(alone, batch):
            assert torch.equal(a[0], b[i])


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


def test_the_cache_keeps_to_its_size():
    left, right, cameras = _pairs(8)
    per_pair = 2 * 3 * 32 * 32 * 4  # two (3, H, W) float maps
    cache = PairCache(max_bytes=3 * per_pair)
    cache(_sweep, (left, right, cameras.K, cameras.world_to_cam), salt="s")
    assert len(cache) == 3
    cache(_sweep, (left[-3:], right[-3:], cameras.K[-3:], cameras.world_to_cam[-3:]), salt="s")
    assert cache.hits == 3  # the most recent pairs stayed


def test_inputs_that_need_a_gradient_are_not_cached():
    left, right, cameras = _pairs(2)
    cache = PairCache()
    cache(lambda l, r: (l * r,), (left.requires_grad_(), right), salt="s")
    assert len(cache) == 0


@pytest.mark.parametrize("training", [True, False])
def test_rig_stereo_encodes_the_same_with_its_sweeps_cached(training):
    torch.manual_seed(0)
    encoder = RigVolumeEncoder(views=2, sweep_planes=8, image_size=32).train(training)
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
