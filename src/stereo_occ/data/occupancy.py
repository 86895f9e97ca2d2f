"""Labelled occupancy points for one object (object frame): the pool the loader draws from.

Each object gets ``n_uniform`` points uniform in the padded box (what volumetric IoU is measured on)
followed by ``n_surface`` points near the surface (surface samples plus Gaussian noise), where the
decision boundary is and where training needs most of its signal.

Labels come from the generalised winding number (libigl): for a closed, consistently oriented mesh it
is 1 inside and 0 outside, so thresholding at 0.5 is exact containment. We use libigl's exact,
hierarchically accelerated ``winding_number`` rather than ``fast_winding_number``: on meshes with long
thin triangles (revolved profiles, cylinders), the fast variant's Barnes-Hut expansion measured
5-10x *slower* here (2.5 s vs 0.4 s for 100k points on a 1k-face annulus), and the exact one is never
wrong near the surface. trimesh's ray-based ``contains`` was slower still (7 s for 20k points).

Points are stored as float16 (see storage.py), so we round them to float16 *before* labelling: the
labels are then exact for the points a reader actually gets back.
"""

from __future__ import annotations

import igl
import numpy as np
import trimesh

from ..config import OccupancyConfig

# Query in chunks so memory stays flat for very large pools.
_CHUNK = 200_000


def box_half_side(cfg: OccupancyConfig) -> float:
    """Half the side of the padded box the uniform points fill: 0.5 + padding / 2."""
    return 0.5 + cfg.padding / 2.0


def inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Bool (N,): which points lie inside the watertight ``mesh`` (winding number >= 0.5)."""
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.empty(len(points), dtype=bool)
    for start in range(0, len(points), _CHUNK):
        q = np.ascontiguousarray(points[start : start + _CHUNK])
        # Orientation-agnostic: an inward-facing mesh gives -1 inside, so take the magnitude.
        out[start : start + _CHUNK] = np.abs(igl.winding_number(vertices, faces, q)) >= 0.5
    return out


def sample_points(
    mesh: trimesh.Trimesh, cfg: OccupancyConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The pool of one object: float32 (N, 3) points (uniform first, then near-surface) and bool labels.

    Every coordinate is exactly representable in float16, so storing the pool as float16 loses
    nothing and the labels stay exact. Deterministic for a given ``rng`` state.
    """
    half = box_half_side(cfg)
    uniform = rng.uniform(-half, half, size=(cfg.n_uniform, 3))
    if cfg.n_surface > 0:
        # trimesh's sampler takes an integer seed; derive it from rng so the whole pool follows rng.
        seed = int(rng.integers(0, 2**31 - 1))
        surface, _ = trimesh.sample.sample_surface(mesh, cfg.n_surface, seed=seed)
        near = surface + rng.normal(0.0, cfg.surface_sigma, size=surface.shape)
    else:
        near = np.zeros((0, 3))
    points = np.concatenate([uniform, near]).astype(np.float16).astype(np.float32)
    return points, inside(mesh, points)
