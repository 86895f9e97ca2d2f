"""Importance weights that turn a training sample's mixed points back into a volume estimate.

A sample's points come from two pools: uniform in the padded box (density ``u``) and near the
surface (surface samples plus Gaussian noise of std ``sigma``, density ``q(x)``), in shares ``s_u``
and ``s_n``. The uniform points alone estimate an object's volume integrals (its IoU), but a bowl
filling 1-2% of the box gets a handful of them inside its walls, so the estimate is mostly noise.
Weighting every point by ``u / (s_u u + s_n q(x))``, the inverse of the mixture density that drew
it relative to the uniform one (importance sampling with the balance heuristic), estimates the
same integrals from all the points: inside a thin wall from hundreds, and no weight exceeds
``1 / s_u``.

``q`` is the Gaussian kernel density of surface samples, ``q(x) = mean_j N(x; s_j, sigma^2 I)``,
cut at four sigma (0.1% of the kernel's mass beyond). The dataset build computes it from the very
samples the near points were drawn around, so it is exact, and stores it (``near_density.npy``);
for a dataset built before that, fresh samples of the stored mesh estimate it at training time.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

CUTOFF_SIGMAS = 4.0


def near_surface_density_ratio(points: np.ndarray, surface: np.ndarray, sigma: float, half_side: float) -> np.ndarray:
    """``q(x) / u`` at each of ``points`` (N, 3): the near-surface density relative to the uniform one.

    ``surface`` (M, 3) are samples of the surface (the pool's own, or fresh ones of the same mesh);
    ``u = 1 / (2 half_side)^3``, the uniform pool's density over the padded box.
    """
    if len(surface) == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=np.float32)
    pairs = cKDTree(points).sparse_distance_matrix(cKDTree(surface), CUTOFF_SIGMAS * sigma, output_type="ndarray")
    kernel = np.exp(-0.5 * (pairs["v"] / sigma) ** 2) / ((2.0 * math.pi) ** 1.5 * sigma**3)
    q = np.bincount(pairs["i"], weights=kernel, minlength=len(points)) / len(surface)
    return (q * (2.0 * half_side) ** 3).astype(np.float32)


def mixture_weights(density_ratio: np.ndarray, near_share: float) -> np.ndarray:
    """``1 / (s_u + s_n q(x) / u)`` per point: a sample drawn with these shares then estimates a volume
    integral as the weighted mean of its points (up to a constant, which a ratio such as the IoU
    does not see). With one pool only (share 0 or 1) every point weighs the same."""
    if not 0.0 < near_share < 1.0:
        return np.ones(len(density_ratio), dtype=np.float32)
    return (1.0 / ((1.0 - near_share) + near_share * density_ratio)).astype(np.float32)
