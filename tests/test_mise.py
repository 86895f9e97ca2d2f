"""MISE on analytic occupancy functions: right volume, watertight, cheaper than dense, same mesh."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from stereo_occ.errors import UserError
from stereo_occ.evaluation.metrics import pointcloud_metrics
from stereo_occ.evaluation.mise import _upsample, extract_mesh, extract_mesh_dense, save_mesh

RADIUS = 0.4
WIDTH = 0.01  # of the sigmoid: a smooth "network" whose 0.5 level set is the sphere


def soft_sphere(points: np.ndarray, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    distance = np.linalg.norm(points - np.asarray(center), axis=1)
    return 1.0 / (1.0 + np.exp(-(RADIUS - distance) / WIDTH))


def ball_volume(r: float) -> float:
    return 4.0 / 3.0 * math.pi * r**3


@pytest.fixture(scope="module")
def meshes():
    mise, n_mise = extract_mesh(soft_sphere, resolution=32, steps=2, threshold=0.5)
    dense, n_dense = extract_mesh_dense(soft_sphere, resolution=128, threshold=0.5)
    return mise, n_mise, dense, n_dense


def test_mise_sphere_is_watertight_with_the_right_volume(meshes):
    mise, _, _, _ = meshes
    assert mise.is_watertight and mise.is_winding_consistent
    assert mise.volume > 0  # faces point outwards
    assert mise.volume == pytest.approx(ball_volume(RADIUS), rel=0.02)
    radii = np.linalg.norm(mise.vertices, axis=1)
    assert np.abs(radii - RADIUS).max() < 0.005


def test_mise_queries_far_fewer_points_and_matches_dense(meshes):
    mise, n_mise, dense, n_dense = meshes
    assert n_dense == 129**3
    assert n_mise < n_dense / 4
    assert len(mise.faces) == len(dense.faces)
    assert np.allclose(np.sort(mise.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-9)


def test_threshold_moves_the_surface():
    # sigmoid((R - d) / w) >= t  <=>  d <= R - w * logit(t): a lower threshold grows the shape
    mesh, _ = extract_mesh(soft_sphere, threshold=0.2)
    expected = RADIUS - WIDTH * math.log(0.2 / 0.8)
    assert mesh.volume == pytest.approx(ball_volume(expected), rel=0.02)


def test_binary_off_centre_ball():
    center = np.array([0.08, -0.05, 0.1])

    def ball(points):
        return (np.linalg.norm(points - center, axis=1) <= 0.3).astype(np.float32)

    mesh, _ = extract_mesh(ball)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(ball_volume(0.3), rel=0.03)
    assert np.allclose(mesh.bounds.mean(axis=0), center, atol=0.01)
    dense, _ = extract_mesh_dense(ball)
    pts = mesh.sample(5000, return_index=False)
    dpts = dense.sample(5000, return_index=False)
    normals = np.zeros_like(pts)
    assert pointcloud_metrics(pts, normals, dpts, normals, tau=0.01).chamfer_l1 < 0.01


def test_empty_and_full_functions():
    empty, n = extract_mesh(lambda p: np.zeros(len(p)))
    assert len(empty.faces) == 0 and n == 33**3  # nothing to refine
    full, _ = extract_mesh(lambda p: np.ones(len(p)), box=0.5)
    assert full.is_watertight  # the padding closes the surface at the box
    assert full.volume == pytest.approx(1.0, rel=1e-6)


def test_upsampling_keeps_coarse_values_and_interpolates():
    coarse = np.random.default_rng(0).normal(size=(3, 3, 3))
    fine = _upsample(coarse)
    assert fine.shape == (5, 5, 5)
    assert np.array_equal(fine[::2, ::2, ::2], coarse)
    assert fine[1, 1, 1] == pytest.approx(coarse[:2, :2, :2].mean())


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_save_mesh_by_suffix(tmp_path, suffix):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    path = save_mesh(mesh, tmp_path / "sub" / f"mesh{suffix}")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.volume == pytest.approx(mesh.volume, rel=1e-4)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_save_mesh_rejects_other_formats(tmp_path):
    with pytest.raises(UserError, match="mesh.stl"):
        save_mesh(trimesh.creation.box(), tmp_path / "mesh.stl")
    assert not any(tmp_path.iterdir())


# Thin shells: the hard case of this project (mug and bowl walls are 0.01-0.05 object units, a
# fraction of a coarse MISE cell of 1.1 / 32 = 0.034). Each shape is a smooth "network": the sigmoid
# of a signed distance, as sharp as a trained decoder's boundary.


def _smooth(signed_inside: np.ndarray, width: float = 0.004) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(signed_inside / width, -50, 50)))


def thin_cup(points: np.ndarray, wall: float = 0.02) -> np.ndarray:
    """An open cylindrical cup: side wall and floor ``wall`` thick, open at the top."""
    x, y, z = points.T
    r = np.hypot(x, z)
    outer = np.minimum(0.3 - r, np.minimum(y + 0.35, 0.35 - y))  # solid cylinder, y in [-0.35, 0.35]
    hollow = np.minimum(0.3 - wall - r, np.minimum(y + 0.35 - wall, 0.5 - y))  # open at the top
    return _smooth(np.minimum(outer, -hollow))


def handle_torus(points: np.ndarray, major: float = 0.25, minor: float = 0.03) -> np.ndarray:
    """A torus like a mug handle: a tube ``minor`` thick around a ring ``major`` wide, with a hole."""
    x, y, z = points.T
    ring = np.hypot(np.hypot(x, y) - major, z)
    return _smooth(minor - ring)


def _grid_iou(a: trimesh.Trimesh, b: trimesh.Trimesh, n: int = 200_000) -> float:
    from stereo_occ.evaluation.metrics import iou, mesh_contains

    points = np.random.default_rng(0).uniform(-0.55, 0.55, size=(n, 3))
    return iou(mesh_contains(a, points), mesh_contains(b, points))


@pytest.mark.parametrize("shape", [thin_cup, handle_torus, soft_sphere], ids=["thin-cup", "torus", "sphere"])
def test_mise_matches_dense_extraction_on_thin_shapes(shape):
    mise, n_mise = extract_mesh(shape, resolution=32, steps=2, threshold=0.5)
    dense, n_dense = extract_mesh_dense(shape, resolution=128, threshold=0.5)
    assert mise.is_watertight
    assert n_mise < n_dense / 4
    assert _grid_iou(mise, dense) >= 0.99
    assert abs(len(mise.faces) - len(dense.faces)) <= 0.01 * len(dense.faces)


def test_the_torus_keeps_its_hole():
    mesh, _ = extract_mesh(handle_torus, resolution=32, steps=2, threshold=0.5)
    assert mesh.is_watertight
    assert mesh.euler_number == 0  # genus 1: a handle with its hole, not a filled disc
