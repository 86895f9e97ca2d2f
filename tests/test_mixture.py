"""Importance weights of mixed uniform and near-surface points (data/mixture.py) against analytic shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stereo_occ.data.mixture import mixture_weights, near_surface_density_ratio

HALF_SIDE = 0.55  # the padded box of the default occupancy config
SIGMA = 0.01


def test_the_density_near_a_flat_surface_is_the_gaussian_across_it():
    """Samples of a unit square at z = 0 with noise sigma: at height d above its middle the density is
    phi_sigma(d) per unit area, so q(x) / u = phi_sigma(d) (2 half_side)^3 for a surface of area 1."""
    rng = np.random.default_rng(0)
    surface = np.column_stack([rng.random((400_000, 2)) - 0.5, np.zeros(400_000)])
    heights = np.array([0.0, 0.005, 0.01, 0.02, 0.05])
    points = np.column_stack([np.zeros((5, 2)), heights])
    ratio = near_surface_density_ratio(points, surface, SIGMA, HALF_SIDE)
    expected = np.exp(-0.5 * (heights / SIGMA) ** 2) / (math.sqrt(2 * math.pi) * SIGMA) * (2 * HALF_SIDE) ** 3
    assert ratio[:4] == pytest.approx(expected[:4], rel=0.05)
    assert ratio[4] == 0.0  # five sigma away: beyond the kernel's cut


def _shell(rng: np.random.Generator, n: int, inner: float, outer: float) -> np.ndarray:
    """Area-uniform samples of a spherical shell's two faces."""
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radius = np.where(rng.random(n) < outer**2 / (outer**2 + inner**2), outer, inner)
    return directions * radius[:, None]


def test_weighted_mixed_points_estimate_a_thin_shells_volume_without_bias_and_with_less_noise():
    """A shell 0.02 thick (a bowl's wall) fills 1.7% of the box. From 512 uniform and 512 near-surface
    points, the weighted mean of the labels estimates that fraction as the uniform points alone do
    (no bias), with a third of their spread or less."""
    rng = np.random.default_rng(1)
    inner, outer = 0.30, 0.32
    uniform = rng.uniform(-HALF_SIDE, HALF_SIDE, size=(40_000, 3))
    surface = _shell(rng, 40_000, inner, outer)
    near = surface + rng.normal(0.0, SIGMA, size=surface.shape)
    pool = np.concatenate([uniform, near])
    radius = np.linalg.norm(pool, axis=1)
    occupied = (radius >= inner) & (radius <= outer)
    weights = mixture_weights(near_surface_density_ratio(pool, surface, SIGMA, HALF_SIDE), near_share=0.5)
    assert weights.max() <= 2.0 + 1e-6 and weights[:40_000].min() > 0.0

    truth = 4.0 / 3.0 * math.pi * (outer**3 - inner**3) / (2 * HALF_SIDE) ** 3
    alone, mixed = [], []
    for _ in range(400):
        u = rng.integers(0, 40_000, 512)
        n = rng.integers(40_000, 80_000, 512)
        alone.append(occupied[u].mean())
        idx = np.concatenate([u, n])
        mixed.append((weights[idx] * occupied[idx]).sum() / weights[idx].sum())
    assert np.mean(alone) == pytest.approx(truth, rel=0.1)
    assert np.mean(mixed) == pytest.approx(truth, rel=0.04)
    assert np.std(mixed) < np.std(alone) / 3


def test_one_pool_only_weighs_every_point_alike():
    ratio = np.array([0.0, 10.0, 1e4], dtype=np.float32)
    assert mixture_weights(ratio, near_share=0.0).tolist() == [1.0, 1.0, 1.0]
    assert mixture_weights(ratio, near_share=1.0).tolist() == [1.0, 1.0, 1.0]
    assert mixture_weights(ratio, near_share=0.5)[0] == pytest.approx(2.0)
