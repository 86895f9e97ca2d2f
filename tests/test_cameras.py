"""The rig inside the network: projection, feature sampling and the rig-frame volume agree with data/rig.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stereo_occ.config import ModelConfig, RigConfig
from stereo_occ.data.rig import StereoRig
from stereo_occ.errors import UserError
from stereo_occ.models import build_model
from stereo_occ.models.cameras import LEFT, RIGHT, Cameras
from stereo_occ.models.rig_volume import RigVolumeEncoder, point_features

RIG = StereoRig.from_config(RigConfig(image_size=64))


def rig_cameras(batch: int = 1) -> Cameras:
    return Cameras.from_rig(RIG).expand(batch)


def unproject(pixel: tuple[float, float], depth: float, view: int) -> np.ndarray:
    """The rig-frame point that camera ``view`` sees at ``pixel`` (u = column, v = row) and ``depth``."""
    u, v = pixel
    cam = depth * np.linalg.inv(RIG.K) @ np.array([u, v, 1.0])
    w2c = RIG.world_to_cam[view]
    return w2c[:3, :3].T @ (cam - w2c[:3, 3])


def test_projection_matches_the_dataset_rig():
    points = np.random.default_rng(0).uniform(-0.6, 0.6, size=(500, 3))
    cameras = rig_cameras()
    for view in (LEFT, RIGHT):
        pixels, depth = cameras.project(torch.from_numpy(points).float()[None], view)
        expected_pixels, expected_depth = RIG.project(points, view)
        assert np.allclose(pixels[0].numpy(), expected_pixels, atol=1e-3)
        assert np.allclose(depth[0].numpy(), expected_depth, atol=1e-5)


@pytest.mark.parametrize("view", [LEFT, RIGHT])
@pytest.mark.parametrize("cell", [(5, 21), (20, 3)])  # (row, column) of a feature cell, not symmetric
def test_a_point_seen_at_a_pixel_samples_that_pixels_feature(view, cell):
    """Features at half resolution: cell (i, j) covers image pixels 2i..2i+1, 2j..2j+1."""
    row, col = cell
    h = w = RIG.image_size // 2
    features = torch.arange(2 * h * w, dtype=torch.float32).reshape(1, 2, h, w)  # every cell its own value
    features[:, 1] *= -1
    stride = RIG.image_size / w
    centre = ((col + 0.5) * stride - 0.5, (row + 0.5) * stride - 0.5)  # (u, v) pixel of the cell's centre
    point = torch.from_numpy(unproject(centre, depth=1.9, view=view)).float()[None, None]
    sampled = rig_cameras().sample(features, point, view)
    assert sampled.shape == (1, 1, 2)
    assert torch.allclose(sampled[0, 0], features[0, :, row, col], atol=1e-3)
    # and the other camera sees the same point somewhere else
    other = rig_cameras().sample(features, point, 1 - view)
    assert not torch.allclose(other[0, 0], features[0, :, row, col], atol=0.5)


def test_points_outside_the_image_sample_zeros():
    features = torch.ones(1, 4, 32, 32)
    behind_the_edge = torch.from_numpy(unproject((-20.0, 30.0), 2.0, LEFT)).float()[None, None]
    assert torch.all(rig_cameras().sample(features, behind_the_edge, LEFT) == 0)


def test_the_volume_spans_the_sphere_the_rig_holds_its_objects_in():
    for radius in (0.75, math.sqrt(3) / 2):
        rig = RigConfig(image_size=64, fov_deg=46.0 if radius < 0.8 else 60.0, object_radius=radius)
        model = build_model(ModelConfig(name="rig-stereo", volume_resolution=4), rig)
        assert model.encoder.extent == pytest.approx(radius)
        assert model.encoder.voxel_centers.abs().max().item() == pytest.approx(radius)
        assert model.decoder.extent == pytest.approx(radius)


def test_voxel_centres_land_where_the_rig_says_and_are_read_back_in_place():
    encoder = RigVolumeEncoder(views=2, feature_channels=4, volume_channels=4, volume_resolution=8)
    g = encoder.resolution
    centers = encoder.voxel_centers  # (G^3, 3), memory order (z, y, x)
    assert torch.allclose(centers.min(0).values, torch.full((3,), -encoder.extent))
    assert torch.allclose(centers.max(0).values, torch.full((3,), encoder.extent))
    # voxel (k, j, i) of the volume is the point (x_i, y_j, z_k)
    axis = torch.linspace(-encoder.extent, encoder.extent, g)
    volume = centers.T.reshape(1, 3, g, g, g)
    assert torch.allclose(volume[0, :, 2, 5, 7], torch.stack([axis[7], axis[5], axis[2]]))
    # the decoder's trilinear read at a voxel centre returns that voxel (same convention as the write)
    grid = (centers / encoder.extent)[None, :, None, None, :]
    read = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)[0, :, :, 0, 0].T
    assert torch.allclose(read, centers, atol=1e-5)
    # the features a voxel is filled with are those at its projections in both images
    left_map = torch.randn(1, 3, 32, 32)
    right_map = torch.randn(1, 3, 32, 32)
    cameras = rig_cameras()
    per_voxel = point_features(centers[None], left_map, right_map, cameras)
    pixels_left, _ = RIG.project(centers.double().numpy(), LEFT)
    i = 123
    col, row = (pixels_left[i] + 0.5) / 2 - 0.5  # image pixel -> feature-map coordinate
    c0, r0 = int(np.floor(col)), int(np.floor(row))
    fc, fr = col - c0, row - r0
    patch = left_map[0, :, r0 : r0 + 2, c0 : c0 + 2]
    bilinear = (patch[:, 0, 0] * (1 - fr) * (1 - fc) + patch[:, 0, 1] * (1 - fr) * fc
                + patch[:, 1, 0] * fr * (1 - fc) + patch[:, 1, 1] * fr * fc)
    a = cameras.sample(left_map, centers[None, i : i + 1], LEFT)[0, 0]
    assert torch.allclose(a, bilinear, atol=1e-4)
    b = cameras.sample(right_map, centers[None, i : i + 1], RIGHT)[0, 0]
    assert torch.allclose(per_voxel[0, i], torch.cat([0.5 * (a + b), (a - b) ** 2, a * b]), atol=1e-5)


def test_the_volume_is_filled_with_both_views_compared_at_each_voxel_centre():
    """The 3D U-Net's input at voxel (k, j, i) is the comparison of the two views' (narrow) features
    at that voxel centre's projections: left and right not swapped, voxels not reordered."""
    torch.manual_seed(0)
    encoder = RigVolumeEncoder(views=2, feature_channels=4, volume_channels=4, volume_resolution=6).eval()
    left, right = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    seen = {}
    encoder.lift.register_forward_hook(lambda module, args, out: seen.update(volume=args[0]))
    with torch.no_grad():
        encoder(left, right, rig_cameras(2))
        left_map, _ = encoder.features(left)
        right_map, _ = encoder.features(right)
        expected = point_features(encoder.voxel_centers[None].expand(2, -1, -1), encoder.volume_features(left_map),
                                  encoder.volume_features(right_map), rig_cameras(2))
    g = encoder.resolution
    volume = seen["volume"]  # (B, C, G, G, G), axes (z, y, x)
    assert volume.shape == (2, 12, g, g, g)
    k, j, i = 4, 1, 3
    assert torch.allclose(volume[1, :, k, j, i], expected[1, (k * g + j) * g + i], atol=1e-5)
    swapped = point_features(encoder.voxel_centers[None, (k * g + j) * g + i][None], encoder.volume_features(right_map)[1:],
                             encoder.volume_features(left_map)[1:], rig_cameras())
    assert not torch.allclose(volume[1, :, k, j, i], swapped[0, 0], atol=1e-3)


def test_the_mono_twin_volume_holds_the_left_feature_and_the_depth_behind_the_object_centre():
    encoder = RigVolumeEncoder(views=1, feature_channels=4, volume_channels=4, volume_resolution=6).eval()
    seen = {}
    encoder.lift.register_forward_hook(lambda module, args, out: seen.update(volume=args[0]))
    left = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        encoder(left, left, rig_cameras())
        left_map, _ = encoder.features(left)
        feature = rig_cameras().sample(encoder.volume_features(left_map), encoder.voxel_centers[None], LEFT)
    g = encoder.resolution
    volume = seen["volume"]
    assert volume.shape == (1, 5, g, g, g)  # volume_channels + 1
    k, j, i = 2, 5, 1
    index = (k * g + j) * g + i
    assert torch.allclose(volume[0, :4, k, j, i], feature[0, index], atol=1e-5)
    _, depth = RIG.project(encoder.voxel_centers[index : index + 1].double().numpy(), LEFT)
    centre_depth = RIG.world_to_cam[LEFT][2, 3]
    assert volume[0, 4, k, j, i].item() == pytest.approx(float(depth[0]) - centre_depth, abs=1e-4)


def test_space_to_depth_keeps_each_pixel_under_its_cell_and_the_maps_of_the_smaller_image():
    """A 128 px image folded 2x2 gives the 64 px model's map sizes, and a pixel lands in the cell
    that covers it, so :class:`Cameras` still samples a point's feature where it projects."""
    encoder = RigVolumeEncoder(views=2, feature_channels=4, volume_channels=4, volume_resolution=6, space_to_depth=2)
    image = torch.zeros(1, 3, 128, 128)
    row, col = 37, 90  # not symmetric
    image[0, :, row, col] = 1.0
    folded = encoder.features.space_to_depth(image)
    assert folded.shape == (1, 12, 64, 64)
    assert torch.nonzero(folded.abs().sum(1)[0]).tolist() == [[row // 2, col // 2]]
    with torch.no_grad():
        maps, _ = encoder.features(torch.rand(1, 3, 128, 128))
    assert maps.shape[-2:] == (32, 32)
    with pytest.raises(UserError, match="not a multiple"):
        encoder.features(torch.rand(1, 3, 127, 127))
    # pooled twice more after folding: the rig's image size must be a multiple of 4k
    with pytest.raises(UserError, match="multiple of 8"):
        build_model(ModelConfig(name="rig-stereo", space_to_depth=2), RigConfig(image_size=100))


@pytest.mark.parametrize("space_to_depth", [1, 2])
def test_channels_last_maps_change_no_feature_and_no_logit(space_to_depth: int):
    """The feature network runs in channels-last for speed; the layout must not move a feature off
    its pixel (pooling, folding and sampling all index by position) or change the prediction."""
    torch.manual_seed(0)
    size = 64 * space_to_depth
    model = build_model(
        ModelConfig(name="rig-stereo", space_to_depth=space_to_depth, fine_channels=4), RigConfig(image_size=size)
    ).eval()
    features = model.encoder.features
    assert features.memory_format == torch.channels_last
    left, right = torch.rand(2, 3, size, size), torch.rand(2, 3, size, size)
    points = torch.rand(2, 300, 3) - 0.5
    cameras = Cameras.from_rig(StereoRig.from_config(RigConfig(image_size=size))).expand(2)
    outputs = {}
    for layout in (torch.channels_last, torch.contiguous_format):
        features.memory_format = layout
        with torch.no_grad():
            maps, fine = features(left)
            outputs[layout] = (maps, fine, model(left, right, points, cameras))
    assert outputs[torch.channels_last][0].is_contiguous(memory_format=torch.channels_last)
    for fast, plain in zip(outputs[torch.channels_last], outputs[torch.contiguous_format]):
        assert torch.allclose(fast, plain, atol=1e-5)


def test_camera_aware_models_answer_to_the_cameras_and_the_study_models_do_not():
    torch.manual_seed(0)
    left, right = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    points = torch.rand(1, 200, 3) - 0.5
    moved = RIG.world_to_cam.copy()
    moved[:, 0, 3] += 0.3  # the cameras shifted sideways
    other = Cameras.from_arrays(np.stack([RIG.K, RIG.K]), moved, 64)
    small = dict(hidden_dim=32, n_blocks=1, image_channels=8, volume_channels=8, volume_resolution=8,
                 code_dim=32, feature_dim=8)
    for name, responds in (("rig-stereo", True), ("rig-mono", True), ("stereo", False), ("mono", False)):
        model = build_model(ModelConfig(name=name, **small), RigConfig(image_size=64)).eval()
        with torch.no_grad():
            a = model(left, right, points, rig_cameras())
            b = model(left, right, points, other)
        assert (not torch.allclose(a, b)) == responds, name


def test_camera_records_are_checked():
    with pytest.raises(UserError, match="K must be"):
        Cameras(torch.eye(3), torch.eye(4)[None, None], (64, 64))
    with pytest.raises(UserError, match="cannot serve"):
        rig_cameras(2).expand(3)
    with pytest.raises(UserError, match="uses the cameras"):
        RigVolumeEncoder(volume_resolution=4)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), None)


def test_positional_frequencies_set_the_decoder_input_and_zero_leaves_the_coordinates_only():
    """``model.positional_frequencies`` octaves of sines and cosines per coordinate reach the decoder;
    with 0 it sees the point itself and the features, and a negative count is a clear error."""
    small = dict(hidden_dim=32, n_blocks=1, image_channels=8, volume_channels=8, volume_resolution=8)
    widths = {}
    for octaves in (0, 3, 6):
        model = build_model(ModelConfig(name="rig-stereo", positional_frequencies=octaves, **small), RigConfig(image_size=64))
        widths[octaves] = model.decoder.fc_in.in_features
        with torch.no_grad():
            logits = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 50, 3) - 0.5, rig_cameras())
        assert logits.shape == (1, 50) and torch.isfinite(logits).all()
    assert widths[3] - widths[0] == 18 and widths[6] - widths[0] == 36
    with pytest.raises(UserError, match="positional_frequencies"):
        build_model(ModelConfig(name="rig-mono", positional_frequencies=-1, **small), RigConfig(image_size=64))


def test_an_axis_frame_is_a_rotation_whose_third_row_is_the_axis():
    from stereo_occ.models.rig_volume import axis_frame

    axes = F.normalize(torch.cat([torch.randn(64, 3), torch.tensor([[1.0, 0, 0], [-0.95, 0.3, 0.1], [0, 0, -1.0]])]), dim=-1)
    frames = axis_frame(axes)
    eye = torch.eye(3).expand(len(axes), -1, -1)
    assert torch.allclose(frames @ frames.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(frames), torch.ones(len(axes)), atol=1e-5)
    assert torch.allclose(frames[:, 2], axes, atol=1e-6)


def test_an_axis_frame_turns_its_first_row_towards_the_handle():
    """Given a second direction, the frame's first row is that direction made orthogonal to the axis
    (a mug's handle, whichever way the object is turned about its axis); where it lies along the axis
    it cannot say how the frame turns, and the rig's x axis does, as without it."""
    from stereo_occ.models.rig_volume import axis_frame

    torch.manual_seed(0)
    axes = F.normalize(torch.randn(32, 3), dim=-1)
    across = F.normalize(torch.cross(axes, torch.randn(32, 3), dim=-1), dim=-1)
    towards = F.normalize(across + torch.linspace(-2.0, 2.0, 32)[:, None] * axes, dim=-1)  # up to 63 degrees from across
    towards[-1] = axes[-1]  # along the axis: no turn to take from it
    frames = axis_frame(axes, towards)
    eye = torch.eye(3).expand(len(axes), -1, -1)
    assert torch.allclose(frames @ frames.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(frames), torch.ones(len(axes)), atol=1e-5)
    assert torch.allclose(frames[:, 2], axes, atol=1e-6)
    assert torch.allclose(frames[:-1, 0], across[:-1], atol=1e-5)
    assert torch.allclose(frames[-1], axis_frame(axes[-1:])[0], atol=1e-6)
    # turning the object about its axis turns the handle, and the frame with it: a point on the
    # handle's side keeps its coordinates in the frame
    turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    axis, handle = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    point = torch.tensor([0.4, 0.1, 0.2])
    before = axis_frame(axis, handle)[0] @ point
    after = axis_frame(axis, handle @ turn.T)[0] @ (turn @ point)
    assert torch.allclose(before, after, atol=1e-6)


def test_views_average_the_handle_as_it_is_and_the_axis_by_its_line():
    """With a handle head the estimator answers two directions per image; in the rig frame the axes
    are averaged by their line (the right view's flipped answer still counts) and the handles as they
    are, so the frame of a model with ``align_handle`` turns towards their mean."""
    from stereo_occ.models.axis_estimator import AxisEstimator, rig_directions

    axis = F.normalize(torch.tensor([[0.3, -0.5, 0.8]]), dim=-1)
    handle = F.normalize(torch.cross(axis, torch.tensor([[1.0, 0.0, 0.0]]), dim=-1), dim=-1)
    left, right = torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64)
    in_camera = [torch.stack([axis, handle], 1) @ torch.from_numpy(RIG.world_to_cam[v][:3, :3]).float().T for v in (LEFT, RIGHT)]
    in_camera[1] = in_camera[1] * torch.tensor([[-1.0], [1.0]])  # the right view has the top the other way
    estimator = AxisEstimator(width=8, handle=True)
    assert estimator(left).shape == (1, 2, 3) and estimator.finds_handle
    estimator.forward = lambda image: in_camera[0] if torch.equal(image, left) else in_camera[1]
    both = rig_directions(estimator, [left, right], rig_cameras(1))
    assert torch.allclose(both[:, 0], axis, atol=1e-5) and torch.allclose(both[:, 1], handle, atol=1e-5)
    encoder = RigVolumeEncoder(views=2, feature_channels=4, volume_channels=4, volume_resolution=6,
                               align_axis=True, align_handle=True).eval()
    encoder.axis_estimator.forward = estimator.forward
    with torch.no_grad():
        cond = encoder(left, right, rig_cameras(1))
    assert torch.allclose(cond.frame[:, 0], handle, atol=1e-5) and torch.allclose(cond.frame[:, 2], axis, atol=1e-5)


def test_a_handle_estimator_loads_into_models_with_or_without_align_handle():
    """A model along the axis alone takes the axis of an estimator that also finds the handle; a model
    with ``align_handle`` refuses an estimator that does not."""
    from stereo_occ.models.axis_estimator import AxisEstimator

    small = dict(name="rig-stereo", hidden_dim=16, n_blocks=1, image_channels=4, volume_channels=4, volume_resolution=6,
                 align_axis=True)
    with_handle, without = AxisEstimator(image_size=64, handle=True), AxisEstimator(image_size=64)
    axis_only = build_model(ModelConfig(**small), RigConfig(image_size=64))
    axis_only.load_axis_estimator(with_handle.state_dict())
    assert torch.equal(axis_only.encoder.axis_estimator.head[-1].weight, with_handle.head[-1].weight)
    turned = build_model(ModelConfig(**small, align_handle=True), RigConfig(image_size=64))
    with pytest.raises(UserError, match="data.handle_axis"):
        turned.load_axis_estimator(without.state_dict())
    turned.load_axis_estimator(with_handle.state_dict())
    assert torch.equal(turned.encoder.axis_estimator.handle_head.weight, with_handle.handle_head.weight)


@pytest.mark.parametrize("views", [2, 1])
def test_an_axis_aligned_volume_is_laid_out_along_the_estimated_axis(views):
    """With ``align_axis`` the voxel centres are the grid turned into the axis frame: voxel (k, j, i)
    holds the views' features at ``frame^T (x_i, y_j, z_k)``, and the decoder reads a rig-frame point
    back at ``frame p``: the axis the estimator finds (in each camera's frame, turned into the rig's and
    averaged over the views) is the volume's z axis."""
    from stereo_occ.models.rig_volume import axis_frame

    torch.manual_seed(0)
    encoder = RigVolumeEncoder(views=views, feature_channels=4, volume_channels=4, volume_resolution=6, align_axis=True).eval()
    true_axis = F.normalize(torch.tensor([[0.3, -0.5, 0.8], [-0.9, 0.1, 0.2]]), dim=-1)  # rig frame
    left, right = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    # what the estimator answers for each view, R_v a, slightly off on the right so the average shows
    answers = [true_axis @ torch.from_numpy(RIG.world_to_cam[v][:3, :3]).float().T for v in (LEFT, RIGHT)]
    answers[1] = F.normalize(answers[1] + torch.tensor([0.0, 0.2, 0.0]), dim=-1)
    encoder.axis_estimator.forward = lambda image: (answers[0] if torch.equal(image, left) else answers[1])[:, None]
    rig_answers = [answers[v] @ torch.from_numpy(RIG.world_to_cam[v][:3, :3]).float() for v in range(views)]
    expected_axis = F.normalize(sum(rig_answers), dim=-1)
    seen = {}
    encoder.lift.register_forward_hook(lambda module, args, out: seen.update(volume=args[0]))
    with torch.no_grad():
        cond = encoder(left, right, rig_cameras(2))
        left_map, _ = encoder.features(left)
        right_map, _ = encoder.features(right)
        narrow = [encoder.volume_features(m) for m in (left_map, right_map)][:views]
    assert torch.allclose(cond.axis, expected_axis, atol=1e-5)
    if views == 1:
        assert torch.allclose(cond.axis, true_axis, atol=1e-5)
    else:  # off by a little: the right view's answer counts
        assert 0.99 < float((cond.axis * true_axis).sum(-1).min()) < 0.99999
    true_axis = expected_axis
    frame = axis_frame(true_axis)
    assert torch.allclose(cond.frame, frame, atol=1e-5)
    g = encoder.resolution
    k, j, i = 4, 1, 3
    q = encoder.voxel_centers[(k * g + j) * g + i]  # (x_i, y_j, z_k) in the axis frame
    p = torch.einsum("bji,j->bi", frame, q)[:, None]  # frame^T q, in the rig frame
    expected = point_features(p, narrow[0], narrow[1] if views == 2 else None, rig_cameras(2))
    assert torch.allclose(seen["volume"][:, :, k, j, i], expected[:, 0], atol=1e-5)
    assert torch.allclose(cond.to_volume_frame(p), q.expand(2, 1, 3), atol=1e-5)
    # a point along the axis is on the volume's z axis
    on_axis = cond.to_volume_frame(0.4 * true_axis[:, None])
    assert torch.allclose(on_axis[..., :2], torch.zeros(2, 1, 2), atol=1e-6) and torch.allclose(on_axis[..., 2], torch.full((2, 1), 0.4))


def test_views_that_disagree_on_the_axis_sign_still_average_to_its_line():
    """A mug seen from the side: the left view says the top is one way, the right view the other. The
    average keeps the line they agree on, turned the left view's way, instead of cancelling it."""
    from stereo_occ.models.axis_estimator import AxisEstimator, rig_directions

    true_axis = F.normalize(torch.tensor([[0.3, -0.5, 0.8]]), dim=-1)
    left, right = torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64)
    answers = [true_axis @ torch.from_numpy(RIG.world_to_cam[v][:3, :3]).float().T for v in (LEFT, RIGHT)]
    answers[1] = -F.normalize(answers[1] + torch.tensor([0.0, 0.1, 0.0]), dim=-1)  # flipped, a little off
    estimator = AxisEstimator(width=8)
    estimator.forward = lambda image: (answers[0] if torch.equal(image, left) else answers[1])[:, None]
    cameras = rig_cameras(1)
    averaged = rig_directions(estimator, [left, right], cameras)[:, 0]
    assert float((averaged * true_axis).sum()) > 0.99
    swapped = Cameras(cameras.K.flip(1), cameras.world_to_cam.flip(1), cameras.image_size)
    right_first = rig_directions(estimator, [right, left], swapped)[:, 0]
    assert float((right_first * true_axis).sum()) < -0.99  # the first view decides which way


def test_an_axis_estimator_loads_only_into_an_axis_aligned_model_and_stays_frozen():
    from stereo_occ.models.axis_estimator import AxisEstimator

    cfg = ModelConfig(name="rig-stereo", hidden_dim=16, n_blocks=1, image_channels=4, volume_channels=4, volume_resolution=6)
    trained = AxisEstimator(image_size=64)
    with pytest.raises(UserError, match="model.align_axis"):
        build_model(cfg, RigConfig(image_size=64)).load_axis_estimator(trained.state_dict())
    cfg.align_axis = True
    aligned = build_model(cfg, RigConfig(image_size=64))
    aligned.load_axis_estimator(trained.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(aligned.encoder.axis_estimator.state_dict().values(), trained.state_dict().values()))
    assert not any(p.requires_grad for p in aligned.encoder.axis_estimator.parameters())
    images, points = torch.rand(1, 3, 64, 64), torch.rand(1, 10, 3) - 0.5
    aligned(images, images, points, rig_cameras()).sum().backward()
    assert all(p.grad is None for p in aligned.encoder.axis_estimator.parameters())
    assert aligned.encoder.lift.weight.grad is not None
    with pytest.raises(ValueError, match="64 px"):
        trained(torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("rig_positions", [False, True])
def test_rig_positions_tell_the_decoder_where_a_point_is_relative_to_the_cameras(rig_positions):
    """Along the object's axis the decoder encodes a point in the axis frame, which turns with the
    object. Two points at the same place in their objects' frames, one in front of the other as the
    cameras see them, then look alike to it (given alike features); with ``model.rig_positions`` it
    also reads where each is in the rig, and tells them apart."""
    from stereo_occ.models.rig_volume import PointDecoder, RigConditioning, axis_frame

    torch.manual_seed(0)
    decoder = PointDecoder(point_dim=3 * 4, volume_channels=4, extent=0.75, hidden=16, blocks=1, rig_positions=rig_positions)
    for block in decoder.blocks:  # the residual branches start at zero; give them a say
        torch.nn.init.normal_(block.fc_1.weight, std=0.3)
    axes = F.normalize(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.6, -0.8]]), dim=-1)  # two objects, two poses
    frames = axis_frame(axes)
    q = torch.tensor([0.1, -0.2, 0.3])  # the same place in each object's own frame
    points = torch.einsum("bji,j->bi", frames, q)[:, None]  # frame^T q: different places in the rig
    assert not torch.allclose(points[0], points[1])
    flat = torch.ones(2, 4, 8, 8)  # features alike wherever a point projects
    cond = RigConditioning(flat, flat, torch.ones(2, 4, 3, 3, 3), rig_cameras(2), axis=axes, frame=frames)
    logits = decoder(points, cond)
    assert decoder.fc_in.in_features == 3 * 4 + 4 + (2 if rig_positions else 1) * (3 + 6 * 6)
    assert torch.allclose(logits[0], logits[1], atol=1e-6) != rig_positions


def test_rig_positions_need_the_axis_frame():
    with pytest.raises(UserError, match="model.align_axis"):
        build_model(ModelConfig(name="rig-stereo", rig_positions=True), RigConfig(image_size=64))


@pytest.mark.parametrize("stereo_depth", [False, True])
def test_stereo_depth_tells_the_volume_which_side_of_a_surface_faces_the_cameras(stereo_depth):
    """The comparison of the two views is the same for two voxels whose projections see alike
    features, one in front of the other along the left camera's ray. With ``model.stereo_depth`` each
    voxel (and query point) also carries its depth before the left camera relative to the object's
    centre, exactly the mono twin's, and the two differ."""
    cfg = ModelConfig(name="rig-stereo", image_channels=4, volume_channels=4, volume_resolution=6,
                      hidden_dim=16, n_blocks=1, stereo_depth=stereo_depth)
    model = build_model(cfg, RigConfig(image_size=64))
    encoder = model.encoder
    assert encoder.lift.in_channels == 3 * 4 + int(stereo_depth)
    assert model.decoder.fc_in.in_features == 3 * encoder.feature_dim + 4 + 3 + 6 * 6 + int(stereo_depth)
    flat = torch.ones(1, 4, 8, 8)  # alike features wherever a point projects
    near, far = unproject((30.0, 33.0), 1.7, LEFT), unproject((30.0, 33.0), 2.2, LEFT)
    points = torch.from_numpy(np.stack([near, far])).float()[None]
    features = point_features(points, flat, flat, rig_cameras(), depth=stereo_depth)
    assert features.shape == (1, 2, 3 * 4 + int(stereo_depth))
    assert torch.equal(features[0, 0, :12], features[0, 1, :12])
    if stereo_depth:  # the mono twin's depth channel, to the last bit
        mono = point_features(points, flat, None, rig_cameras())
        assert torch.equal(features[..., -1], mono[..., -1])
        centre_depth = float(RIG.world_to_cam[LEFT][2, 3])
        assert torch.allclose(features[0, :, -1], torch.tensor([1.7, 2.2]) - centre_depth, atol=1e-5)
    # the whole model trains with it
    images = torch.rand(2, 3, 64, 64)
    model(images, images.flip(-1), torch.rand(2, 50, 3) - 0.5, rig_cameras(2)).sum().backward()
    assert encoder.lift.weight.grad is not None
