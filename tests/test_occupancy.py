"""Occupancy labels agree with analytic shapes; the pool has the promised layout and precision."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from stereo_occ.config import OccupancyConfig
from stereo_occ.data.occupancy import DISTANCE_CAP, box_half_side, inside, label_points, sample_points


def test_sphere_containment_matches_the_formula():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    points = np.random.default_rng(0).uniform(-0.55, 0.55, (20000, 3))
    r = np.linalg.norm(points, axis=1)
    # The tessellation sits between r = 0.4 * cos(max facet angle) and 0.4; stay clear of that band.
    clear = np.abs(r - 0.4) > 0.004
    labels = inside(mesh, points)
    np.testing.assert_array_equal(labels[clear], (r < 0.4)[clear])
    assert 0.1 < labels.mean() < 0.3  # 4/3 pi 0.4^3 / 1.1^3 = 0.2


def test_signed_distances_to_a_sphere_match_the_formula_up_to_the_cap():
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    points = np.random.default_rng(2).uniform(-0.55, 0.55, (20000, 3))
    labels, distance = label_points(mesh, points)
    truth = np.clip(np.linalg.norm(points, axis=1) - 0.4, -DISTANCE_CAP, DISTANCE_CAP)
    # within the tessellation's sag (0.4 * (1 - cos of half a facet's angle) < 0.001) of the formula
    np.testing.assert_allclose(distance, truth, atol=1e-3)
    np.testing.assert_array_equal(distance <= 0, labels)
    assert np.all(np.abs(distance) <= DISTANCE_CAP) and np.mean(distance == DISTANCE_CAP) > 0.3  # far points: the cap


def test_cylinder_containment_matches_the_formula():
    mesh = trimesh.creation.cylinder(radius=0.3, height=0.8, sections=128)
    points = np.random.default_rng(1).uniform(-0.55, 0.55, (20000, 3))
    radial = np.linalg.norm(points[:, :2], axis=1)
    truth = (radial < 0.3) & (np.abs(points[:, 2]) < 0.4)
    clear = (np.abs(radial - 0.3) > 0.002) & (np.abs(np.abs(points[:, 2]) - 0.4) > 1e-6)
    np.testing.assert_array_equal(inside(mesh, points)[clear], truth[clear])


def test_containment_of_a_hollow_shape_and_an_inverted_mesh():
    ring = trimesh.creation.annulus(r_min=0.2, r_max=0.4, height=0.3, sections=96)
    hole, wall = np.array([[0.0, 0.0, 0.0]]), np.array([[0.3, 0.0, 0.0]])
    assert not inside(ring, hole)[0] and inside(ring, wall)[0]
    flipped = ring.copy()
    flipped.invert()  # inward normals: still the same solid
    assert inside(flipped, wall)[0] and not inside(flipped, hole)[0]


@pytest.fixture(scope="module")
def pool():
    cfg = OccupancyConfig(n_uniform=8000, n_surface=4000, surface_sigma=0.01, padding=0.1)
    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    points, occ, _, _ = sample_points(mesh, cfg, np.random.default_rng(7))
    return cfg, mesh, points, occ


def test_pool_layout_dtype_and_float16_exact_labels(pool):
    cfg, mesh, points, occ = pool
    assert points.dtype == np.float32 and points.shape == (12000, 3)
    assert occ.dtype == bool and occ.shape == (12000,)
    np.testing.assert_array_equal(points.astype(np.float16).astype(np.float32), points)
    # Labels are right for the (float16-rounded) points as stored, checked against the box formula.
    # float16 rounding puts some near-surface points exactly on the faces x = +-0.5; the winding
    # number there is 1/2, which counts as inside.
    truth = np.all(np.abs(points) <= np.array([0.5, 0.3, 0.2]), axis=1)
    np.testing.assert_array_equal(occ, truth)


def test_uniform_part_fills_the_padded_box_and_the_rest_hugs_the_surface(pool):
    cfg, mesh, points, occ = pool
    half = box_half_side(cfg)
    uniform, near = points[: cfg.n_uniform], points[cfg.n_uniform :]
    assert np.abs(uniform).max() <= half
    assert np.abs(uniform).max() > 0.97 * half
    assert abs(occ[: cfg.n_uniform].mean() - 0.24 / half**3 / 8) < 0.02  # volume share
    distance = np.abs(trimesh.proximity.signed_distance(mesh, near[:1000].astype(np.float64)))
    assert np.median(distance) < 2 * cfg.surface_sigma
    assert 0.35 < occ[cfg.n_uniform :].mean() < 0.65  # about half of near-surface points are inside


def test_sampling_is_deterministic_for_the_same_seed(pool):
    cfg, mesh, points, occ = pool
    again, occ_again, _, _ = sample_points(mesh, cfg, np.random.default_rng(7))
    np.testing.assert_array_equal(again, points)
    np.testing.assert_array_equal(occ_again, occ)
    other, _, _, _ = sample_points(mesh, cfg, np.random.default_rng(8))
    assert not np.array_equal(other, points)


@pytest.mark.parametrize("category", ["mug", "bowl", "bottle"])
def test_labels_agree_with_the_winding_number_on_a_generated_object(category):
    """The fast path (bounding-box cull, then the pseudonormal sign) against the slow, robust
    definition on a real shape, with points inside and outside the object's bounding box."""
    import igl

    from stereo_occ.shapes.procedural import generate
    from stereo_occ.shapes.mesh_ops import normalize

    mesh = normalize(generate(category, 0, 0))
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.uniform(-0.55, 0.55, (3000, 3)), mesh.sample(3000) + rng.normal(0, 0.005, (3000, 3))])
    winding = igl.winding_number(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64), points)
    low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    assert 0.2 < np.all((points >= low) & (points <= high), axis=1).mean() < 0.9  # both sides of the box
    np.testing.assert_array_equal(inside(mesh, points), winding >= 0.5)
    np.testing.assert_array_equal(label_points(mesh, points)[0], winding >= 0.5)  # a wider cull, same labels
