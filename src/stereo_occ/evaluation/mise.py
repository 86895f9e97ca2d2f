"""Mesh extraction from an occupancy function: MISE + marching cubes.

Multiresolution IsoSurface Extraction (the Occupancy Networks method, written from its description):
evaluate the function on a coarse grid of ``(resolution + 1)^3`` points spanning the padded box, then
``steps`` times halve the cell size, but query the network only at the new points of cells where the
surface may pass: cells whose corners straddle the threshold and, before the last step, their
neighbours too, since a thin part can slip between two coarse samples. The last of several steps
refines only crossing cells: it holds most of the queries, and a wall that no sample of the previous level saw
is already caught by the dilation one level up (bench/bench_extraction.py and tests/test_mise.py compare
with dense extraction on thin walls). Everywhere else the finer grid takes values interpolated
from the coarser one, which can never cross the threshold there. Each level's new points go to the
network in one batched pass. At 32^3 with 2 steps this gives the 128^3 mesh for about a tenth of
the 129^3 network queries.

Values are handled as logits (probabilities are converted), as ONet does: interpolating logits places
vertices where a smooth network's decision boundary is, rather than where a squashed sigmoid is.
The final grid is padded with a clearly-outside value so marching cubes closes the surface at the
box boundary: the mesh is always watertight.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from scipy import ndimage
from skimage import measure

from ..errors import UserError
from ..files import write_atomic

QueryFn = Callable[[np.ndarray], np.ndarray]
"""Maps (N, 3) float32 points to (N,) occupancy probabilities."""

MESH_SUFFIXES = (".ply", ".obj", ".glb")
_EPS = 1e-6
_OUTSIDE = -1e6  # logit padding: far outside, so the surface closes at the box boundary


def to_logits(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def threshold_logit(threshold: float) -> float:
    if not 0.0 < threshold < 1.0:
        raise UserError(f"eval.threshold must be in (0, 1) (got {threshold})")
    return math.log(threshold) - math.log1p(-threshold)


def grid_coordinates(resolution: int, box: float) -> np.ndarray:
    """The ``resolution + 1`` sample positions along each axis of the box ``[-box, box]``."""
    return np.linspace(-box, box, resolution + 1)


def _query_logits(query: QueryFn, points: np.ndarray, batch_points: int) -> np.ndarray:
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_points):
        chunk = points[start : start + batch_points].astype(np.float32)
        probs = np.asarray(query(chunk)).reshape(-1)
        if len(probs) != len(chunk):
            raise ValueError(f"query returned {len(probs)} values for {len(chunk)} points")
        out[start : start + len(chunk)] = to_logits(probs)
    return out


def _grid_points(index: np.ndarray, resolution: int, box: float) -> np.ndarray:
    """Box coordinates of integer grid indices (M, 3) on a grid of ``resolution`` cells per side."""
    return -box + index * (2.0 * box / resolution)


def _upsample(values: np.ndarray) -> np.ndarray:
    """Trilinear refinement by 2: (n+1)^3 -> (2n+1)^3; old samples keep their values."""
    for axis in range(3):
        v = np.moveaxis(values, axis, 0)
        fine = np.empty((2 * v.shape[0] - 1,) + v.shape[1:], dtype=v.dtype)
        fine[0::2] = v
        fine[1::2] = 0.5 * (v[:-1] + v[1:])
        values = np.moveaxis(fine, 0, axis)
    return values


def _cell_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of the 8 corner values of every cell: (n+1)^3 -> n^3 each."""
    n = values.shape[0] - 1
    corners = [values[dx : dx + n, dy : dy + n, dz : dz + n] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
    return np.minimum.reduce(corners), np.maximum.reduce(corners)


def surface_cells(values: np.ndarray, level: float, dilate: bool = True) -> np.ndarray:
    """Cells the surface may cross: corners on both sides of ``level``, optionally dilated by one cell."""
    lo, hi = _cell_range(values)
    crossing = (lo < level) & (hi >= level)
    if not dilate:
        return crossing
    return ndimage.binary_dilation(crossing, structure=np.ones((3, 3, 3), dtype=bool))


def _cells_to_points(cells: np.ndarray) -> np.ndarray:
    """Points of the refined grid (2n+1)^3 that belong to the given coarse cells (n^3)."""
    n = cells.shape[0]
    points = np.zeros((2 * n + 1,) * 3, dtype=bool)
    for dx in range(3):
        for dy in range(3):
            for dz in range(3):
                points[dx : dx + 2 * n : 2, dy : dy + 2 * n : 2, dz : dz + 2 * n : 2] |= cells
    return points


def mise_grid(
    query: QueryFn,
    *,
    resolution: int = 32,
    steps: int = 2,
    threshold: float = 0.2,
    box: float = 0.55,
    batch_points: int = 100_000,
) -> tuple[np.ndarray, int]:
    """The logit grid ``(resolution * 2^steps + 1)^3`` filled by MISE, and the number of queries."""
    if resolution < 1 or steps < 0:
        raise UserError(f"MISE needs resolution >= 1 and steps >= 0 (got {resolution}, {steps})")
    level = threshold_logit(threshold)
    n = resolution
    index = np.stack(np.meshgrid(*(np.arange(n + 1),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    values = _query_logits(query, _grid_points(index, n, box), batch_points).reshape((n + 1,) * 3)
    known = np.ones_like(values, dtype=bool)
    n_queries = len(index)
    for step in range(steps):
        cells = surface_cells(values, level, dilate=steps == 1 or step < steps - 1)
        values = _upsample(values)
        fine_known = np.zeros(values.shape, dtype=bool)
        fine_known[::2, ::2, ::2] = known
        n *= 2
        todo = _cells_to_points(cells) & ~fine_known
        index = np.argwhere(todo)
        if len(index):
            values[todo] = _query_logits(query, _grid_points(index, n, box), batch_points)
        fine_known |= todo
        known = fine_known
        n_queries += len(index)
    return values, n_queries


def dense_grid(
    query: QueryFn, *, resolution: int = 128, box: float = 0.55, batch_points: int = 100_000
) -> tuple[np.ndarray, int]:
    """The logit grid ``(resolution + 1)^3`` with every point queried (the reference MISE saves on)."""
    axis = grid_coordinates(resolution, box)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = _query_logits(query, points, batch_points).reshape((resolution + 1,) * 3)
    return values, len(points)


def grid_to_mesh(values: np.ndarray, threshold: float, box: float) -> trimesh.Trimesh:
    """Marching cubes on a logit grid spanning ``[-box, box]^3``; watertight, outward-facing.

    Returns an empty mesh when no grid point is occupied.
    """
    level = threshold_logit(threshold)
    if not np.any(values >= level):
        return trimesh.Trimesh()
    padded = np.pad(values, 1, mode="constant", constant_values=_OUTSIDE)
    resolution = values.shape[0] - 1
    step = 2.0 * box / resolution
    # "descent": the surface faces where values decrease, i.e. from inside (high) to outside.
    verts, faces, _, _ = measure.marching_cubes(
        padded, level=level, spacing=(step, step, step), gradient_direction="descent", allow_degenerate=False
    )
    verts = verts - box - step  # undo the padding cell and move the grid's corner to -box
    return trimesh.Trimesh(vertices=verts, faces=faces[:, ::-1], process=True)


def extract_mesh(
    query: QueryFn,
    *,
    resolution: int = 32,
    steps: int = 2,
    threshold: float = 0.2,
    box: float = 0.55,
    batch_points: int = 100_000,
) -> tuple[trimesh.Trimesh, int]:
    """MISE + marching cubes: the mesh of ``{p : query(p) >= threshold}`` and the number of queries."""
    values, n_queries = mise_grid(
        query, resolution=resolution, steps=steps, threshold=threshold, box=box, batch_points=batch_points
    )
    return grid_to_mesh(values, threshold, box), n_queries


def extract_mesh_dense(
    query: QueryFn,
    *,
    resolution: int = 128,
    threshold: float = 0.2,
    box: float = 0.55,
    batch_points: int = 100_000,
) -> tuple[trimesh.Trimesh, int]:
    """Marching cubes on a fully queried grid: the reference for MISE in tests and bench."""
    values, n_queries = dense_grid(query, resolution=resolution, box=box, batch_points=batch_points)
    return grid_to_mesh(values, threshold, box), n_queries


def save_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write a mesh as PLY, OBJ or GLB (chosen by suffix), atomically (temporary name, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise UserError(f"{path}: unsupported mesh format {suffix or '(none)'!r}; use .ply, .obj or .glb")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, mesh.export(file_type=suffix[1:]))
