"""The classical plane sweep (model.sweep_planes): the homography is the cameras' projection, and on a
rendered pair the swept depth is the rendered depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from stereo_occ.config import RenderConfig, RigConfig
from stereo_occ.data.pattern import draw_pattern
from stereo_occ.data.render import StereoRenderer
from stereo_occ.data.rig import StereoRig
from stereo_occ.errors import UserError
from stereo_occ.models.cameras import LEFT, RIGHT, Cameras
from stereo_occ.models.plane_sweep import (
    OFFSET_SCALE,
    plane_depths,
    plane_pixels,
    plane_sweep,
    sub_plane_offset,
    sweep_features,
)
from stereo_occ.models.rig_volume import RigVolumeEncoder

RIG = RigConfig(image_size=64, fov_deg=46.0, object_radius=0.75)


def _cameras(batch: int = 1) -> Cameras:
    return Cameras.from_rig(StereoRig.from_config(RIG)).expand(batch)


@pytest.mark.parametrize("view", [LEFT, RIGHT])
def test_a_plane_is_where_the_cameras_project_its_points(view):
    """Each pixel lifted onto a plane of the sweep lands where projecting that 3D point puts it."""
    cameras = _cameras()
    depths = plane_depths(cameras, view, 5, 0.75)
    landed = plane_pixels(cameras, view, depths)  # (1, 5, H, W, 2)
    rig = StereoRig.from_config(RIG)
    size = RIG.image_size
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(rig.K).T
    w2c = rig.world_to_cam[view]
    for k, d in enumerate(depths[0].numpy()):
        cam = d * rays
        rig_points = (cam - w2c[:3, 3]) @ w2c[:3, :3]
        expected, _ = rig.project(rig_points, 1 - view)
        np.testing.assert_allclose(landed[0, k].reshape(-1, 2).numpy(), expected, atol=2e-3)


@pytest.fixture(scope="module")
def rendered_pair():
    """A patterned ball and a box, rendered by the dataset's renderer with their depth maps."""
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.45)
    box = trimesh.creation.box(extents=[0.7, 0.5, 0.6])
    pattern = draw_pattern(RenderConfig(pattern="blotches"), np.random.default_rng(0))
    rotation = trimesh.transformations.rotation_matrix(0.6, [0.3, 1.0, 0.2])[:3, :3]
    pairs = []
    with StereoRenderer(RIG, RenderConfig()) as renderer:
        for mesh in (ball, box):
            pairs.append(renderer.render(mesh, rotation, np.random.default_rng(1), pattern))
    to_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    left = to_tensor([p[0] for p in pairs])
    right = to_tensor([p[1] for p in pairs])
    depth = torch.from_numpy(np.stack([np.stack([p[2], p[3]]) for p in pairs]))
    return left, right, depth


def test_the_swept_depth_is_the_rendered_depth(rendered_pair):
    left, right, depth = rendered_pair
    sweeps = plane_sweep(left, right, _cameras(2), 48, 0.75)
    for view, maps in ((LEFT, sweeps[0]), (RIGHT, sweeps[1])):
        truth = depth[:, view]
        on = truth > 0
        error = (maps[:, 0][on] - truth[on]).abs()
        blind = (truth[on] - truth[on].median()).abs()  # the best single depth, knowing nothing of the pair
        assert (error < 0.05).float().mean() > 0.6
        assert (error < 0.05).float().mean() > 1.5 * (blind < 0.05).float().mean()
        # matching costs are lower on the object than the average over the planes
        assert (maps[:, 1][on] < maps[:, 2][on]).float().mean() > 0.9


def test_points_know_which_side_of_the_swept_surface_they_are(rendered_pair):
    """A point on the ray of a matched pixel, in front of its surface, reads negative; behind, positive."""
    left, right, depth = rendered_pair
    cameras = _cameras(2)
    sweeps = plane_sweep(left, right, cameras, 48, 0.75)
    rig = StereoRig.from_config(RIG)
    # left-camera pixels on the ball, lifted to their true depth -0.1 (in front) and +0.1 (behind)
    truth = depth[0, LEFT].numpy()
    rows, cols = np.nonzero(truth > 0)
    pick = np.random.default_rng(0).choice(len(rows), 200, replace=False)
    rows, cols = rows[pick], cols[pick]
    rays = np.stack([cols, rows, np.ones_like(cols)], -1) @ np.linalg.inv(rig.K).T
    w2c = rig.world_to_cam[LEFT]
    for shift, sign in ((-0.1, -1), (0.1, 1)):
        cam = (truth[rows, cols] + shift)[:, None] * rays
        points = torch.from_numpy((cam - w2c[:3, 3]) @ w2c[:3, :3]).float()[None].expand(2, -1, -1)
        behind = sweep_features(points, *sweeps, cameras)[0, :, 0]  # the left view's offset
        assert (torch.sign(behind) == sign).float().mean() > 0.7
        assert behind.abs().max() <= 1.0
        assert (behind * OFFSET_SCALE - shift).abs().median() < 0.05


def test_the_mono_twin_cannot_sweep():
    with pytest.raises(UserError, match="sweep_planes"):
        RigVolumeEncoder(views=1, sweep_planes=32)


def test_the_parabola_finds_the_minimum_between_planes():
    """Costs sampled from a parabola whose vertex lies between two planes: the offset is the vertex's."""
    planes = torch.arange(8, dtype=torch.float32)
    for vertex in (3.0, 3.3, 3.5, 4.8):
        cost = ((planes - vertex) ** 2)[None, :, None, None]  # (1, D, 1, 1)
        _, index = cost.min(1)
        offset = sub_plane_offset(cost, index)
        assert index.item() + offset.item() == pytest.approx(vertex, abs=1e-5)
    # flat costs, a minimum on the first or the last plane, and a sweep of two planes are left where they are
    flat = torch.ones(1, 8, 1, 1)
    assert sub_plane_offset(flat, flat.min(1)[1]).item() == 0.0
    for edge in (planes ** 2, (planes - 7) ** 2):
        edge = edge[None, :, None, None]
        assert sub_plane_offset(edge, edge.min(1)[1]).item() == 0.0
    two = torch.tensor([1.0, 0.0])[None, :, None, None]
    assert sub_plane_offset(two, two.min(1)[1]).item() == 0.0


def test_refining_between_planes_puts_the_surface_closer(rendered_pair):
    """32 planes over the sphere are 0.048 apart, more than a mug's wall: the refined sweep is nearer
    the rendered depth than the plane it refines."""
    left, right, depth = rendered_pair
    on = depth[:, LEFT] > 0
    errors = []
    for refine in (False, True):
        swept, _ = plane_sweep(left, right, _cameras(2), 32, 0.75, refine=refine)
        errors.append((swept[:, 0][on] - depth[:, LEFT][on]).abs())
    assert errors[1].median() < 0.9 * errors[0].median()
    assert (errors[1] < 0.03).float().mean() > (errors[0] < 0.03).float().mean() + 0.01
