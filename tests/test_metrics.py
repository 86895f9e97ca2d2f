"""The ONet metrics against answers known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from stereo_occ.evaluation.metrics import (
    EMPTY_MESH_METRICS,
    iou,
    mesh_contains,
    pointcloud_metrics,
    probability_iou,
    sample_surface,
    summarize,
    surface_metrics,
    volume_precision_recall,
)

R, D = 0.3, 0.2  # two spheres of radius R whose centres are D apart


def lens_iou(r: float, d: float) -> float:
    """IoU of two equal spheres from the volume of their lens-shaped intersection."""
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    ball = 4 / 3 * math.pi * r**3
    return lens / (2 * ball - lens)


@pytest.fixture(scope="module")
def box_points() -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.55, 0.55, size=(200_000, 3))


def sphere(radius: float, center=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    mesh.apply_translation(center)
    return mesh


def test_iou_of_offset_spheres_matches_lens_formula(box_points):
    a = np.linalg.norm(box_points - [D / 2, 0, 0], axis=1) <= R
    b = np.linalg.norm(box_points + [D / 2, 0, 0], axis=1) <= R
    assert iou(a, b) == pytest.approx(lens_iou(R, D), abs=0.01)


def test_mesh_containment_iou_of_offset_spheres(box_points):
    a = mesh_contains(sphere(R, (D / 2, 0, 0)), box_points)
    b = mesh_contains(sphere(R, (-D / 2, 0, 0)), box_points)
    exact_a = np.linalg.norm(box_points - [D / 2, 0, 0], axis=1) <= R
    assert np.mean(a != exact_a) < 0.002  # only points within the icosphere's facet sag disagree
    assert iou(a, b) == pytest.approx(lens_iou(R, D), abs=0.015)


def test_containment_ignores_orientation_and_empty_meshes(box_points):
    mesh = sphere(R)
    flipped = trimesh.Trimesh(mesh.vertices, mesh.faces[:, ::-1], process=False)
    assert np.array_equal(mesh_contains(mesh, box_points[:5000]), mesh_contains(flipped, box_points[:5000]))
    assert not mesh_contains(trimesh.Trimesh(), box_points[:10]).any()


def test_iou_edge_cases():
    assert iou(np.zeros(5, bool), np.zeros(5, bool)) == 1.0
    assert iou(np.ones(5, bool), np.zeros(5, bool)) == 0.0
    with pytest.raises(ValueError):
        iou(np.zeros(4, bool), np.zeros(5, bool))
    # ONet's rule: occupied at probability >= threshold
    assert probability_iou(np.array([0.2, 0.19, 0.9]), np.array([True, False, True]), 0.2) == 1.0


def test_volume_precision_and_recall_say_whether_iou_is_lost_to_filling_or_to_missing():
    target = np.array([True, True, True, True, False, False, False, False])
    thick = np.array([0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.1, 0.1])  # every occupied point, and two more
    assert volume_precision_recall(thick, target, 0.5) == (4 / 6, 1.0)
    holed = np.array([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # half the occupied points, nothing else
    assert volume_precision_recall(holed, target, 0.5) == (1.0, 0.5)
    assert probability_iou(thick, target, 0.5) == 4 / 6 and probability_iou(holed, target, 0.5) == 0.5
    nothing = np.zeros(8)
    assert volume_precision_recall(nothing, target, 0.5) == (0.0, 0.0)
    assert volume_precision_recall(nothing, np.zeros(8, bool), 0.5) == (1.0, 1.0)
    with pytest.raises(ValueError):
        volume_precision_recall(np.zeros(4), target, 0.5)


def test_identical_point_sets_are_perfect():
    pts, normals = sample_surface(sphere(R), 5000, seed=0)
    m = pointcloud_metrics(pts, normals, pts, normals, tau=0.011)
    assert m.chamfer_l1 == 0.0 and m.normal_consistency == pytest.approx(1.0) and m.fscore == 1.0


def test_same_mesh_sampled_twice_is_nearly_perfect():
    m = surface_metrics(sphere(R), sphere(R), n_points=50_000, tau=0.011)
    assert m.chamfer_l1 < 0.003
    assert m.normal_consistency > 0.99
    assert m.fscore > 0.99


def test_sphere_vs_scaled_sphere_chamfer_is_radius_difference():
    m = surface_metrics(sphere(0.35), sphere(R), n_points=20_000, tau=0.011)
    assert m.chamfer_l1 == pytest.approx(0.05, rel=0.05)
    assert m.accuracy == pytest.approx(0.05, rel=0.05) and m.completeness == pytest.approx(0.05, rel=0.05)
    assert m.normal_consistency > 0.99  # concentric: nearest points have parallel normals
    assert m.fscore == 0.0  # every point is 0.05 > tau away
    loose = surface_metrics(sphere(0.35), sphere(R), n_points=20_000, tau=0.06)
    assert loose.fscore == 1.0


def test_normal_consistency_detects_wrong_orientation_of_surface():
    # A plane's normals against a perpendicular plane's: |dot| = 0.
    xy = np.c_[np.random.default_rng(1).uniform(-0.3, 0.3, (2000, 2)), np.zeros(2000)]
    n_z = np.tile([0.0, 0.0, 1.0], (2000, 1))
    n_x = np.tile([1.0, 0.0, 0.0], (2000, 1))
    assert pointcloud_metrics(xy, n_z, xy, n_x, tau=0.01).normal_consistency == pytest.approx(0.0)


def test_empty_prediction_gets_worst_values():
    m = surface_metrics(trimesh.Trimesh(), sphere(R), n_points=1000, tau=0.011)
    assert m.as_dict() == pytest.approx(EMPTY_MESH_METRICS)
    assert m.chamfer_l1 == pytest.approx(math.sqrt(3)) and m.fscore == 0.0 and m.normal_consistency == 0.0


def test_summarize_means_per_category_then_over_categories():
    rows = [
        {"category": "mug", "iou": 0.2},
        {"category": "mug", "iou": 0.4},
        {"category": "bottle", "iou": 0.9},
    ]
    s = summarize(rows, ["iou"])
    assert s["iou"]["mug"] == pytest.approx(0.3)
    assert s["iou"]["bowl"] is None
    assert s["iou"]["bottle"] == pytest.approx(0.9)
    assert s["iou"]["mean"] == pytest.approx(0.6)  # class mean, not the object mean 0.5
