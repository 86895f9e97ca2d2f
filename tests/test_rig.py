"""The stereo rig's geometry: where the cameras stand, what they look at, what they can see."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stereo_occ.config import RigConfig
from stereo_occ.data.rig import LEFT, OPENCV_TO_OPENGL, RIGHT, StereoRig, project, random_rotations, unproject
from stereo_occ.errors import UserError


@pytest.fixture(scope="module")
def rig() -> StereoRig:
    return StereoRig.from_config(RigConfig())


def test_cameras_stand_at_the_configured_distance_and_angle(rig):
    cfg = RigConfig()
    centers = rig.camera_centers()
    distance = cfg.camera_distance / cfg.object_size
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), [distance, distance])
    assert centers[LEFT, 0] < 0 < centers[RIGHT, 0]  # left camera on the -x side
    np.testing.assert_allclose(centers[:, 1], 0.0, atol=1e-12)
    angle = math.atan2(abs(centers[LEFT, 0]), centers[LEFT, 2])
    assert angle == pytest.approx(cfg.half_angle)
    assert rig.baseline() == pytest.approx(2 * distance * math.sin(cfg.half_angle))


def test_both_cameras_look_at_the_origin_with_y_down(rig):
    centre = (rig.image_size - 1) / 2
    for cam in (LEFT, RIGHT):
        uv, depth = rig.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]]), cam)
        np.testing.assert_allclose(uv[0], [centre, centre], atol=1e-9)
        assert depth[0] == pytest.approx(rig.distance)
        assert uv[1, 1] < centre  # +y (up in the rig) is towards the top row
        R = rig.world_to_cam[cam, :3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)


def test_toed_in_disparity_changes_sign_at_the_origin(rig):
    near, far = np.array([[0.0, 0.0, 0.3]]), np.array([[0.0, 0.0, -0.3]])
    assert rig.project(near, LEFT)[0][0, 0] > rig.project(near, RIGHT)[0][0, 0]
    assert rig.project(far, LEFT)[0][0, 0] < rig.project(far, RIGHT)[0][0, 0]


def test_any_rotation_of_the_unit_cube_stays_inside_both_images(rig):
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    for R in random_rotations(200, np.random.default_rng(1)):
        for cam in (LEFT, RIGHT):
            uv, depth = rig.project(corners @ R.T, cam)
            assert (depth > 0).all()
            assert (uv > 0).all() and (uv < rig.image_size - 1).all()


def test_a_rig_that_can_lose_the_object_is_refused():
    with pytest.raises(UserError, match="field of view"):
        StereoRig.from_config(RigConfig(object_size=1.5))


def test_a_rig_for_smaller_objects_can_narrow_the_field_of_view():
    # 46 degrees loses the unit cube's corners but holds every object within 0.75 of its centre
    with pytest.raises(UserError, match="field of view"):
        StereoRig.from_config(RigConfig(image_size=64, fov_deg=46.0))
    rig = StereoRig.from_config(RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75))
    sphere = np.random.default_rng(0).normal(size=(2000, 3))
    sphere *= 0.75 / np.linalg.norm(sphere, axis=1, keepdims=True)
    for cam in (LEFT, RIGHT):
        uv, _ = rig.project(sphere, cam)
        assert (uv > 0).all() and (uv < rig.image_size - 1).all()
        # and it uses the image: the sphere spans more than 90% of it
        assert np.ptp(uv[:, 0]) > 0.9 * (rig.image_size - 1)


@pytest.mark.parametrize("radius", [0.4, 0.9])
def test_an_object_radius_no_normalised_object_has_is_refused(radius):
    with pytest.raises(UserError, match="object_radius"):
        StereoRig.from_config(RigConfig(object_radius=radius))


def test_an_object_reaching_beyond_the_rig_sphere_is_refused_by_name():
    rig = StereoRig.from_config(RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75))
    cube = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    rig.check_object(cube * 0.8, "small cube")  # reaches 0.69
    with pytest.raises(UserError, match="unit cube.*0.866.*object_radius=0.750"):
        rig.check_object(cube, "unit cube")


def test_a_normalised_box_passes_the_default_rig_despite_rounding():
    from stereo_occ.shapes import normalize
    import trimesh

    default = StereoRig.from_config(RigConfig())
    # normalised boxes of random sizes and places: some corners land a rounding step past sqrt(3)/2
    rng = np.random.default_rng(0)
    past = 0
    for _ in range(100):
        box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
        box.apply_scale(rng.uniform(0.1, 10.0))
        box.apply_translation(rng.uniform(-3.0, 3.0, 3))
        vertices = np.asarray(normalize(box).vertices)
        past += np.linalg.norm(vertices, axis=1).max() > math.sqrt(3) / 2
        default.check_object(vertices, "box")
    assert past > 0
    with pytest.raises(UserError, match="not normalised"):
        default.check_object(np.array([[0.6, 0.6, 0.6]]), "too big")


def test_random_rotations_are_proper_and_deterministic():
    a = random_rotations(50, np.random.default_rng(3))
    b = random_rotations(50, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a @ a.transpose(0, 2, 1), np.broadcast_to(np.eye(3), a.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(a), 1.0, atol=1e-12)
    # Uniform on SO(3): the rotated x axis has mean ~0 over many draws.
    many = random_rotations(4000, np.random.default_rng(4))
    assert np.abs(many[:, :, 0].mean(axis=0)).max() < 0.05


def test_project_matches_the_pinhole_formula(rig):
    p = np.array([[0.2, -0.1, 0.05]])
    uv, depth = project(p, rig.K, rig.world_to_cam[LEFT])
    cam = rig.world_to_cam[LEFT, :3, :3] @ p[0] + rig.world_to_cam[LEFT, :3, 3]
    assert depth[0] == pytest.approx(cam[2])
    assert uv[0, 0] == pytest.approx(rig.K[0, 0] * cam[0] / cam[2] + rig.K[0, 2])
    assert uv[0, 1] == pytest.approx(rig.K[1, 1] * cam[1] / cam[2] + rig.K[1, 2])
    np.testing.assert_array_equal(OPENCV_TO_OPENGL @ OPENCV_TO_OPENGL, np.eye(4))


@pytest.mark.parametrize("camera", [LEFT, RIGHT])
def test_unproject_inverts_project(rig, camera):
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(500, 3))
    pixels, depth = project(points, rig.K, rig.world_to_cam[camera])
    np.testing.assert_allclose(unproject(pixels, depth, rig.K, rig.world_to_cam[camera]), points, atol=1e-9)
