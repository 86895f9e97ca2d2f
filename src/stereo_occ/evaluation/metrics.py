"""The Occupancy Networks evaluation metrics, so our numbers compare with the field's.

What is computed (docs/evaluation.md has the full protocol and the differences from the ONet code):

* **Volumetric IoU**: on the uniform points of the padded box, predicted occupied where the
  probability is ``>= threshold``, against the ground-truth labels.
* **Mesh IoU**: the same points, labelled by containment in the extracted mesh.
* **Chamfer-L1**: ``n`` points sampled on each surface; accuracy is the mean Euclidean distance from
  a predicted point to its nearest ground-truth point, completeness the same the other way round;
  Chamfer-L1 is their mean. ONet calls this "L1" although the distances are L2 norms (not squared);
  we keep the name and the computation so the numbers are comparable.
* **Normal consistency**: mean ``|n_a . n_b|`` of the face normals of nearest-neighbour pairs, both
  directions averaged (the absolute value makes it independent of face orientation).
* **F-score** at ``tau``: precision = share of predicted points at most ``tau`` from the ground
  truth, recall = share of ground-truth points at most ``tau`` from the prediction,
  F = 2PR / (P + R) (as in Convolutional Occupancy Networks, which added it to the protocol).

An empty predicted mesh gets the conventional worst values (:data:`EMPTY_MESH_METRICS`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import igl
import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ..config import CATEGORIES

MESH_METRICS = ("chamfer_l1", "normal_consistency", "fscore")
"""The surface metrics, in the order they are reported."""

EMPTY_MESH_METRICS: dict[str, float] = {
    # ONet's value for an empty mesh: both mean distances set to sqrt(3), the unit cube's diagonal.
    "chamfer_l1": math.sqrt(3.0),
    "accuracy": math.sqrt(3.0),
    "completeness": math.sqrt(3.0),
    # ONet stores -1 as a sentinel; 0 is the worst value the metric can take, which keeps means in [0, 1].
    "normal_consistency": 0.0,
    "precision": 0.0,
    "recall": 0.0,
    "fscore": 0.0,
}


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean occupancy arrays.

    Two empty sets are identical, so their IoU is 1 (ONet divides by zero here).
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(f"occupancy shapes differ: {pred.shape} vs {target.shape}")
    union = np.count_nonzero(pred | target)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & target) / union)


def probability_iou(probs: np.ndarray, target: np.ndarray, threshold: float) -> float:
    """Volumetric IoU of a network: occupied where ``probs >= threshold`` (ONet's rule)."""
    return iou(np.asarray(probs) >= threshold, target)


def is_empty(mesh: trimesh.Trimesh | None) -> bool:
    return mesh is None or len(mesh.faces) == 0 or float(mesh.area) <= 0.0


def mesh_contains(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Inside test of points in a watertight mesh: ``|winding number| >= 0.5``, the dataset's rule.

    The ground-truth labels (:func:`stereo_occ.data.occupancy.inside`) use libigl's exact winding
    number, which suits the long thin triangles of revolved shapes. Extracted meshes are
    marching-cubes meshes of small, well-shaped triangles, where libigl's fast (Barnes-Hut) winding
    number gave identical labels on 100k points at 8x the speed (0.28 s vs 2.4 s, 87k faces), so
    that is what runs here. An empty mesh contains nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if is_empty(mesh):
        return np.zeros(len(points), dtype=bool)
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    winding = igl.fast_winding_number(vertices, faces, np.ascontiguousarray(points))
    return np.abs(winding) >= 0.5


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly on the surface (by area) with the normals of the faces they lie on."""
    points, face_index = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[face_index], dtype=np.float64)


@dataclass
class SurfaceMetrics:
    """Distances between two sampled surfaces (prediction vs ground truth)."""

    chamfer_l1: float
    accuracy: float  # mean distance prediction -> ground truth
    completeness: float  # mean distance ground truth -> prediction
    normal_consistency: float
    precision: float
    recall: float
    fscore: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _nearest(
    source: np.ndarray, source_normals: np.ndarray, target: np.ndarray, target_normals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each source point: distance to the nearest target point and ``|dot|`` of their normals.

    The tree is built with sliding-midpoint splits and uncompacted nodes: for a prediction far from
    the ground truth (an untrained model filling the box), that searched 3x faster (3.2 s vs 10 s
    for 100k points) than scipy's default, and equally fast for a close one. The answer is exact.
    """
    tree = cKDTree(target, balanced_tree=False, compact_nodes=False)
    dist, idx = tree.query(source, k=1, workers=-1)
    dots = np.abs(np.einsum("ij,ij->i", source_normals, target_normals[idx]))
    return dist, dots


def pointcloud_metrics(
    pred_points: np.ndarray,
    pred_normals: np.ndarray,
    gt_points: np.ndarray,
    gt_normals: np.ndarray,
    tau: float,
) -> SurfaceMetrics:
    """Chamfer-L1, normal consistency and F-score between two oriented point sets."""
    if len(pred_points) == 0:
        return SurfaceMetrics(**{k: EMPTY_MESH_METRICS[k] for k in SurfaceMetrics.__dataclass_fields__})
    acc_dist, acc_dots = _nearest(pred_points, pred_normals, gt_points, gt_normals)
    comp_dist, comp_dots = _nearest(gt_points, gt_normals, pred_points, pred_normals)
    accuracy, completeness = float(acc_dist.mean()), float(comp_dist.mean())
    precision = float(np.mean(acc_dist <= tau))
    recall = float(np.mean(comp_dist <= tau))
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return SurfaceMetrics(
        chamfer_l1=0.5 * (accuracy + completeness),
        accuracy=accuracy,
        completeness=completeness,
        normal_consistency=0.5 * (float(acc_dots.mean()) + float(comp_dots.mean())),
        precision=precision,
        recall=recall,
        fscore=float(fscore),
    )


def surface_metrics(
    pred_mesh: trimesh.Trimesh | None,
    gt_mesh: trimesh.Trimesh,
    *,
    n_points: int,
    tau: float,
    seed: int = 0,
) -> SurfaceMetrics:
    """Sample ``n_points`` on both meshes (fixed seeds) and compare them; worst values if pred is empty."""
    gt_points, gt_normals = sample_surface(gt_mesh, n_points, seed=seed)
    if is_empty(pred_mesh):
        return pointcloud_metrics(np.empty((0, 3)), np.empty((0, 3)), gt_points, gt_normals, tau)
    pred_points, pred_normals = sample_surface(pred_mesh, n_points, seed=seed + 1)
    return pointcloud_metrics(pred_points, pred_normals, gt_points, gt_normals, tau)


def summarize(
    per_object: Sequence[Mapping[str, object]],
    metrics: Iterable[str],
    categories: Sequence[str] = CATEGORIES,
) -> dict[str, dict[str, float | None]]:
    """Per-category means and their mean: ``{metric: {category: x, ..., "mean": x}}``.

    ``"mean"`` is the mean over the categories that have objects (ONet's class mean), so a large
    category does not outweigh a small one. A category with no objects gets ``None``.
    """
    out: dict[str, dict[str, float | None]] = {}
    for metric in metrics:
        row: dict[str, float | None] = {}
        for category in categories:
            values = [float(o[metric]) for o in per_object if o["category"] == category]  # type: ignore[arg-type]
            row[category] = float(np.mean(values)) if values else None
        present = [v for v in row.values() if v is not None]
        row["mean"] = float(np.mean(present)) if present else None
        out[metric] = row
    return out
