"""The renderer agrees with the stored cameras: pixels, depths, framing and stereo shift."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.ndimage import binary_dilation

from stereo_occ.config import RenderConfig, RigConfig
from stereo_occ.data.render import LIGHTING_FIELDS, StereoRenderer
from stereo_occ.data.rig import LEFT, RIGHT, project, random_rotations


@pytest.fixture(scope="module")
def renderer():
    with StereoRenderer(RigConfig(image_size=96), RenderConfig()) as r:
        yield r


def _ray_sphere_depth(K: np.ndarray, w2c: np.ndarray, size: int, radius: float) -> np.ndarray:
    """Exact OpenCV depth of a sphere at the origin through every pixel centre (0 = miss)."""
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    rays = np.stack([cols, rows, np.ones_like(cols)], -1).reshape(-1, 3) @ np.linalg.inv(K).T  # z = 1
    R, t = w2c[:3, :3], w2c[:3, 3]
    origin = -R.T @ t
    dirs = rays @ R  # world directions with unit camera-z component
    b = dirs @ origin
    a = np.einsum("ij,ij->i", dirs, dirs)
    disc = b * b - a * (origin @ origin - radius * radius)
    hit = disc > 0
    depth = np.zeros(len(rays))
    depth[hit] = (-b[hit] - np.sqrt(disc[hit])) / a[hit]
    return depth.reshape(size, size)


def test_depth_maps_match_the_exact_geometry_of_the_stored_cameras(renderer):
    """Each depth pixel holds the depth of the ray through that pixel's centre (OpenCV K, w2c).

    pyrender renders with 4x MSAA and keeps one sample's depth, so a depth pixel may be sampled up to
    half a pixel from its centre (docs/geometry.md); the colour is the centred average. Where the
    surface faces the camera that moves depth by far less than the tolerance used here.
    """
    radius = 0.45
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    R = random_rotations(1, np.random.default_rng(0))[0]
    _, _, left_depth, right_depth, _ = renderer.render(mesh, R, np.random.default_rng(0))
    rig = renderer.rig
    for cam, depth in ((LEFT, left_depth), (RIGHT, right_depth)):
        exact = _ray_sphere_depth(rig.K, rig.world_to_cam[cam], rig.image_size, radius)
        core = exact > 0
        # Away from the silhouette: the inner half of the disc (surface slope <= 30 degrees).
        centre = (rig.image_size - 1) / 2
        rows, cols = np.nonzero(core)
        r_disc = np.hypot(rows - centre, cols - centre).max()
        inner = np.zeros_like(core)
        inner[rows, cols] = np.hypot(rows - centre, cols - centre) < 0.5 * r_disc
        assert (depth[inner] > 0).all()
        assert np.abs(depth[inner] - exact[inner]).max() < 0.006
        assert np.median(np.abs(depth[inner] - exact[inner])) < 0.002
        # The silhouettes agree to within a pixel.
        assert ((depth > 0) != core).sum() < 0.05 * core.sum()


def test_a_visible_vertex_lands_on_the_predicted_pixel_at_its_depth(renderer):
    mesh = trimesh.creation.box(extents=(0.9, 0.6, 0.5))
    rig = renderer.rig
    for R in random_rotations(5, np.random.default_rng(2)):
        images = renderer.render(mesh, R, np.random.default_rng(3))
        verts = mesh.vertices @ R.T
        for cam, depth_map in ((LEFT, images[2]), (RIGHT, images[3])):
            uv, z = project(verts, rig.K, rig.world_to_cam[cam])
            nearest = np.argmin(z)  # the closest corner of a convex box is always visible
            # The corner is a point of the silhouette's tip: look in a 3x3 window around its pixel.
            col, row = np.round(uv[nearest]).astype(int)
            window = depth_map[row - 1 : row + 2, col - 1 : col + 2]
            assert (window > 0).any()
            assert np.abs(window[window > 0] - z[nearest]).min() < 0.02


def test_any_rotation_renders_a_non_empty_object_clear_of_the_border(renderer):
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # the worst case: the whole unit cube
    for R in random_rotations(12, np.random.default_rng(4)):
        left, right, left_depth, right_depth, _ = renderer.render(cube, R, np.random.default_rng(5))
        for image, depth in ((left, left_depth), (right, right_depth)):
            mask = depth > 0
            assert mask.sum() > 0.1 * mask.size
            assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
            # The background is the configured colour (antialiased edges aside); the object is not.
            assert (image[~binary_dilation(mask, iterations=2)] == 255).all()
            assert (image[mask] < 255).any()


def _centroid_u(depth: np.ndarray) -> float:
    return float(np.nonzero(depth > 0)[1].mean())


def test_the_object_shifts_between_left_and_right_as_the_toed_in_geometry_predicts(renderer):
    rig = renderer.rig
    for z in (0.3, -0.3):
        ball = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
        ball.apply_translation([0.0, 0.0, z])
        _, _, left_depth, right_depth, _ = renderer.render(ball, np.eye(3), np.random.default_rng(0))
        centre = np.array([[0.0, 0.0, z]])
        u_left = rig.project(centre, LEFT)[0][0, 0]
        u_right = rig.project(centre, RIGHT)[0][0, 0]
        assert _centroid_u(left_depth) == pytest.approx(u_left, abs=0.5)
        assert _centroid_u(right_depth) == pytest.approx(u_right, abs=0.5)
        # In front of the origin the object moves left from the left to the right image; behind, right.
        assert np.sign(_centroid_u(left_depth) - _centroid_u(right_depth)) == np.sign(z)


def test_lighting_is_drawn_within_the_config_and_renders_are_reproducible(renderer):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    cfg = renderer.cfg
    a = renderer.render(mesh, np.eye(3), np.random.default_rng(9))
    b = renderer.render(mesh, np.eye(3), np.random.default_rng(9))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    light = dict(zip(LIGHTING_FIELDS, a[4]))
    assert len(a[4]) == len(LIGHTING_FIELDS)
    assert cfg.light_intensity[0] <= light["light_intensity"] <= cfg.light_intensity[1]
    assert cfg.roughness[0] <= light["roughness"] <= cfg.roughness[1]
    assert np.linalg.norm(a[4][-3:]) == pytest.approx(1.0, abs=1e-5)
    c = renderer.render(mesh, np.eye(3), np.random.default_rng(10))
    assert not np.array_equal(a[0], c[0])  # other colour or light
    np.testing.assert_array_equal(a[2], c[2])  # same geometry, same depth


def test_switching_meshes_replaces_the_uploaded_one(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    box = trimesh.creation.box(extents=(0.8, 0.3, 0.3))
    first = renderer.render(box, np.eye(3), np.random.default_rng(0))
    renderer.render(sphere, np.eye(3), np.random.default_rng(0))
    again = renderer.render(box, np.eye(3), np.random.default_rng(0))
    np.testing.assert_array_equal(first[2], again[2])
    with StereoRenderer(RigConfig(image_size=96), RenderConfig()) as fresh:
        np.testing.assert_array_equal(fresh.render(box, np.eye(3), np.random.default_rng(0))[0], first[0])


def test_the_drawn_material_colour_reaches_the_image():
    red = RenderConfig(hue=[0.0, 0.0], saturation=[0.8, 0.8], value=[0.9, 0.9], metallic=[0.0, 0.0])
    blue = RenderConfig(hue=[0.66, 0.66], saturation=[0.8, 0.8], value=[0.9, 0.9], metallic=[0.0, 0.0])
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    means = []
    for cfg in (red, blue):
        with StereoRenderer(RigConfig(image_size=48), cfg) as r:
            left, _, depth, _, _ = r.render(mesh, np.eye(3), np.random.default_rng(0))
            means.append(left[depth > 0].astype(float).mean(axis=0))
    assert means[0][0] > 1.5 * means[0][2]  # red: R over B
    assert means[1][2] > 1.5 * means[1][0]  # blue: B over R


def test_closing_the_report_renderer_leaves_the_dataset_renderer_working():
    """pyrender's delete ends the EGL display every context of the process shares: the report's
    figure renderer closing must not break a dataset renderer made before it (the full test suite
    runs figures before later renders in one process)."""
    from stereo_occ.report.figures import MeshRenderer

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    with StereoRenderer(RigConfig(image_size=48), RenderConfig()) as renderer:
        before = renderer.render(mesh, np.eye(3), np.random.default_rng(0))
        rig = renderer.rig
        with MeshRenderer(48) as figure:
            assert (figure.render(mesh, rig.K, rig.world_to_cam[LEFT]) < 255).any()
        after = renderer.render(mesh, np.eye(3), np.random.default_rng(0))
    np.testing.assert_array_equal(before[0], after[0])
