"""What the pair can see (evaluation/visibility.py), against a sphere whose depth maps are exact."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_occ.config import RigConfig
from stereo_occ.data.rig import StereoRig
from stereo_occ.evaluation.visibility import SURFACE_BAND, VISIBILITY_METRICS, Visibility, view_classes

RADIUS = 0.4


@pytest.fixture(scope="module")
def rig() -> StereoRig:
    return StereoRig.from_config(RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75))


def sphere_depth(rig: StereoRig, camera: int, radius: float = RADIUS, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The depth map (camera z, 0 = background) of a sphere, by ray casting each pixel centre: what the
    renderer stores, computed exactly."""
    size = rig.image_size
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(rig.K).T  # camera coordinates, z = 1
    w2c = rig.world_to_cam[camera]
    rot, origin = w2c[:3, :3], rig.camera_centers()[camera] - np.asarray(centre)
    directions = rays @ rot  # rig frame (the inverse rotation), still z = 1 in the camera
    a = np.einsum("...i,...i", directions, directions)
    b = 2.0 * directions @ origin
    c = origin @ origin - radius**2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)  # the nearer hit; depth = t since ray z is 1
    return np.where(disc > 0, t, 0.0).astype(np.float32)


def visibility_of(rig: StereoRig, points: np.ndarray) -> Visibility:
    depths = np.stack([sphere_depth(rig, 0), sphere_depth(rig, 1)])
    return Visibility.of_points(points, depths, np.stack([rig.K, rig.K]), rig.world_to_cam)


def test_no_point_of_the_sphere_is_seen_empty_and_most_empty_space_is(rig):
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.75, 0.75, size=(200_000, 3))
    inside = np.linalg.norm(points, axis=1) < RADIUS
    vis = visibility_of(rig, points)
    assert not np.any(vis.seen & inside)  # the margin keeps the rim's sampling from carving the sphere
    assert not np.any(vis.seen & vis.hidden) and not np.any(vis.surface & (vis.seen | vis.hidden))
    # the surface class is the sphere's visible shell: within the band of the front, never deep inside
    assert np.all(np.linalg.norm(points[vis.surface], axis=1) > RADIUS - SURFACE_BAND - 0.02)
    assert vis.surface[inside].mean() > 0.05
    # the two views see most of the box empty; what they cannot see is behind the sphere
    assert vis.seen[~inside].mean() > 0.8
    hidden_outside = vis.hidden & (np.linalg.norm(points, axis=1) > RADIUS + 0.03)  # beyond the margin
    assert hidden_outside.any()
    centre_to_cameras = rig.camera_centers().mean(axis=0)
    assert np.all(points[hidden_outside] @ centre_to_cameras < 0.0)  # on the far side of the centre


def test_named_points(rig):
    left_centre = rig.camera_centers()[0]
    toward_left = left_centre / np.linalg.norm(left_centre)
    points = np.array([
        0.6 * toward_left,  # between the left camera and the sphere
        [0.0, 0.0, -0.55],  # behind the sphere, in the shadow of both views
        [0.0, 0.7, 0.0],  # above it, on background rays
        [0.0, 0.0, 0.0],  # its centre
        0.38 * toward_left,  # inside, just behind the surface the left camera sees
    ])
    vis = visibility_of(rig, points)
    assert vis.seen.tolist() == [True, False, True, False, False]
    assert vis.surface.tolist() == [False, False, False, False, True]
    assert vis.hidden.tolist() == [False, True, False, True, False]


def occluded(rig: StereoRig, camera: int, points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Whether the segment from the camera to each point passes through the sphere: ray geometry,
    independent of projection and depth maps."""
    origin = rig.camera_centers()[camera]
    d = points - origin
    length = np.linalg.norm(d, axis=1)
    d = d / length[:, None]
    oc = origin - centre
    b = d @ oc
    disc = b * b - (oc @ oc - radius**2)
    t_near = -b - np.sqrt(np.maximum(disc, 0.0))
    return (disc > 0) & (t_near < length)


@pytest.mark.parametrize("camera", [0, 1])
def test_each_view_sees_empty_what_its_ray_reaches_unobstructed(rig, camera):
    """Off the rig's centre line the two views' shadows differ: a view's depth map, read through its
    own matrices, agrees with ray geometry; read through the other camera's, it does not."""
    centre, radius = np.array([0.3, 0.1, -0.1]), 0.25
    rng = np.random.default_rng(2)
    points = rng.uniform(-0.75, 0.75, size=(100_000, 3))
    keep = (np.abs(np.linalg.norm(points - centre, axis=1) - radius) > 0.05) & (np.linalg.norm(points, axis=1) < 0.75)
    points = points[keep]  # away from the sphere's surface, within the sphere the images hold
    depth = sphere_depth(rig, camera, radius, centre)
    blocked = occluded(rig, camera, points, centre, radius)
    assert 0.02 < blocked.mean() < 0.5
    empty, _, in_image = view_classes(points, depth, rig.K, rig.world_to_cam[camera])
    assert in_image.all()
    assert np.mean(empty == ~blocked) > 0.99
    empty_wrong, _, _ = view_classes(points, depth, rig.K, rig.world_to_cam[1 - camera])
    assert np.mean(~empty_wrong[blocked]) < 0.85  # (0.67-0.76 with these spheres; 1 with the right camera)


def test_the_losses_and_the_iou_add_up_to_one(rig):
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.75, 0.75, size=(50_000, 3))
    occupied = np.linalg.norm(points, axis=1) < RADIUS
    vis = visibility_of(rig, points)
    for predicted in (rng.random(len(points)) < 0.3, np.linalg.norm(points, axis=1) < 0.5, occupied):
        m = vis.metrics(predicted, occupied)
        assert list(m) == list(VISIBILITY_METRICS)
        iou = np.count_nonzero(predicted & occupied) / np.count_nonzero(predicted | occupied)
        assert iou + sum(m[k] for k in VISIBILITY_METRICS[:-1]) == pytest.approx(1.0)
        assert m["iou_given_depth"] >= iou - 1e-12
    assert vis.metrics(occupied, occupied)["iou_given_depth"] == 1.0
    # a ball too big by 0.1: the shell in front is seen empty, the one behind is hidden
    big = vis.metrics(np.linalg.norm(points, axis=1) < 0.5, occupied)
    assert big["iou_lost_seen"] > big["iou_lost_hidden"] > 0.0
    assert big["iou_lost_surface"] < big["iou_lost_seen"] / 3  # (the margin in front of the surface)
    # one too small by 0.03 misses a shell: its front is the visible wall, its back is hidden
    small = vis.metrics(np.linalg.norm(points, axis=1) < RADIUS - 0.03, occupied)
    assert small["iou_lost_seen"] == 0.0
    assert 0.3 < small["iou_lost_surface"] / (small["iou_lost_surface"] + small["iou_lost_hidden"]) < 0.7
    assert big["iou_given_depth"] > 0.65  # its IoU is (0.4 / 0.5)^3 = 0.51: the front of the shell goes


def test_shapes_must_match(rig):
    vis = visibility_of(rig, np.zeros((4, 3)))
    with pytest.raises(ValueError):
        vis.metrics(np.zeros(3, dtype=bool), np.zeros(3, dtype=bool))


@pytest.mark.slow
def test_rendered_depth_never_shows_an_object_empty(tiny_dataset):
    """The renderer's depth maps, the stored cameras and the view's rotation agree with the labels: the
    object's own occupied points are not seen empty, and the pair sees most of the empty box."""
    from stereo_occ.data.dataset import StereoOccupancyDataset

    data = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=1, uniform_only=True, views=2, load_depth=True)
    for index in range(len(data)):
        item = data[index]
        obj = data.objects[index // 2]
        rotation = item["rotation"].numpy().astype(np.float64)
        points = np.asarray(obj.points()[: obj.n_uniform], dtype=np.float64) @ rotation.T
        occupied = obj.occupancies()[: obj.n_uniform]
        vis = Visibility.of_points(points, item["depth"].numpy(), item["K"].numpy(), item["world_to_cam"].numpy())
        assert np.count_nonzero(vis.seen & occupied) <= 0.01 * np.count_nonzero(occupied)  # (thin walls at the tiny images' edges)
        assert vis.seen[~occupied].mean() > 0.5  # (the padded box's corners leave the images)
        # a rotation the views were not rendered at puts the object where the depth maps show nothing
        wrong = np.asarray(obj.points()[: obj.n_uniform], dtype=np.float64) @ rotation
        if not np.allclose(rotation, rotation.T, atol=0.2):
            wrong_vis = Visibility.of_points(wrong, item["depth"].numpy(), item["K"].numpy(), item["world_to_cam"].numpy())
            assert np.count_nonzero(wrong_vis.seen & occupied) > 0.05 * np.count_nonzero(occupied)
