"""The axis estimator as a classifier over directions on the sphere (models/axis_estimator.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stereo_occ.config import ModelConfig, RigConfig, load_config
from stereo_occ.errors import UserError
from stereo_occ.models import build_model
from stereo_occ.models.axis_estimator import NEIGHBOURHOOD_DEGREES, AxisEstimator, sphere_bins
from stereo_occ.training.axis import bin_loss, estimator_from_record, save_axis_estimator, load_axis_estimator


def degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos((F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1).clamp(-1, 1)))


def test_the_bins_cover_the_sphere_evenly():
    """Unit vectors whose nearest neighbours lie 5-8 degrees apart for 1,000 bins: no direction is
    farther than a few degrees from a bin, and none is crowded."""
    bins = sphere_bins(1000)
    assert bins.shape == (1000, 3) and torch.allclose(bins.norm(dim=-1), torch.ones(1000), atol=1e-6)
    angles = degrees(bins[:, None], bins[None])
    angles.fill_diagonal_(180.0)
    nearest = angles.min(1).values
    assert 5.0 < float(nearest.min()) and float(nearest.max()) < 8.0
    probe = F.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert float(degrees(probe[:, None], bins[None]).min(1).values.max()) < 5.0
    assert float(bins.mean(0).norm()) < 0.01


def test_an_answer_between_bins_decodes_to_it_not_to_the_nearest_bin():
    """Logits shaped like the soft labels of a direction that is no bin decode to within a degree of
    it (the mode alone would be up to 4 degrees off); two peaks decode to the stronger one."""
    estimator = AxisEstimator(width=8)
    bins = estimator.directions
    target = F.normalize(torch.tensor([[0.31, -0.52, 0.79], [-0.9, 0.05, 0.2]]), dim=-1)
    assert float(degrees(target[:, None], bins[None]).min(1).values.max()) > 1.0  # not on a bin
    logits = 40.0 * (target @ bins.T)
    decoded = estimator.decode(logits[:, None])[:, 0]
    assert float(degrees(decoded, target).max()) < 1.0
    two_peaks = torch.logsumexp(torch.stack([40.0 * (target[:1] @ bins.T), 40.0 * (-target[:1] @ bins.T) - 1.0]), 0)
    assert float(degrees(estimator.decode(two_peaks[:, None])[0, 0], target[0])) < 1.0
    assert NEIGHBOURHOOD_DEGREES < 90  # the neighbourhood never reaches the other end


def test_the_bin_loss_is_least_at_the_answer_and_weighs_the_handle():
    bins = sphere_bins(500)
    target = F.normalize(torch.tensor([[[0.2, -0.4, 0.9], [1.0, 0.0, 0.0]]]), dim=-1)  # axis, handle
    at_the_answer = 40.0 * (target @ bins.T)
    turned = 40.0 * (torch.stack([target[:, 0], -target[:, 1]], 1) @ bins.T)  # the handle the wrong way
    flipped = 40.0 * (-target @ bins.T)
    loss = lambda logits, w=1.0: float(bin_loss(logits, target, bins, 40.0, w))  # noqa: E731
    assert loss(at_the_answer) < loss(turned) < loss(flipped)
    assert loss(turned, 0.0) == pytest.approx(loss(at_the_answer, 0.0))  # weight 0: the handle does not count
    assert loss(turned, 2.0) - loss(at_the_answer, 2.0) == pytest.approx(2.0 * (loss(turned) - loss(at_the_answer)), rel=1e-4)


def test_estimator_files_carry_their_kind_and_models_load_either(tmp_path):
    """A classifier's file rebuilds a classifier; a regression's (bins=0, files before session 25) a
    regression, and a model built with the default estimator loads either, frozen, with the answers
    of the estimator that was saved."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    cfg = ModelConfig(name="rig-stereo", hidden_dim=16, n_blocks=1, image_channels=4, volume_channels=4,
                      volume_resolution=6, align_axis=True, align_handle=True)
    for bins in (0, 300):
        trained = AxisEstimator(width=32, handle=True, bins=bins).eval()
        path = tmp_path / f"axis-{bins}.pt"
        save_axis_estimator(trained, path, {"up_axis": "z"})
        again = estimator_from_record(load_axis_estimator(path)).eval()
        assert again.bins == bins
        with torch.no_grad():
            assert torch.allclose(again(images), trained(images), atol=1e-6)
        model = build_model(cfg, RigConfig(image_size=64)).eval()
        model.load_axis_estimator(trained.state_dict())
        loaded = model.encoder.axis_estimator
        assert loaded.bins == bins and not any(p.requires_grad for p in loaded.parameters())
        with torch.no_grad():
            assert torch.allclose(loaded(images), trained(images), atol=1e-6)
        # and a whole model's state (a checkpoint) into a model built with the default
        fresh = build_model(cfg, RigConfig(image_size=64))
        fresh.load_state_dict(model.state_dict())
        assert fresh.encoder.axis_estimator.bins == bins


def test_bad_bin_settings_are_refused():
    with pytest.raises(UserError, match="axis.bins"):
        load_config(None, ["axis.bins=5"])
    with pytest.raises(UserError, match="axis.kappa"):
        load_config(None, ["axis.kappa=0"])
    with pytest.raises(ValueError, match="20 or more"):
        AxisEstimator(bins=3)
    assert math.isclose(load_config(None, []).axis.bins, 1000)


class _Answering(AxisEstimator):
    """A classifier whose answer per image is given: the logits of soft labels (kappa 40, as trained)
    around one or two directions in that image's camera frame, with a weight each (keyed by the
    image's first pixel value)."""

    def __init__(self, answers: dict[int, list[tuple[torch.Tensor, float]]]) -> None:
        super().__init__(width=8)
        self.answers = answers

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        peaks = self.answers[int(images[0, 0, 0, 0])]
        logits = torch.logsumexp(torch.stack([40.0 * (d @ self.directions.T) + math.log(w) for d, w in peaks]), 0)
        return logits[None, None]


def _rig():
    from stereo_occ.data.rig import StereoRig
    from stereo_occ.models.cameras import Cameras

    rig = StereoRig.from_config(RigConfig(image_size=64))
    return rig, Cameras.from_rig(rig).expand(1)


def _in_camera(rig, rig_direction: torch.Tensor, view: int) -> torch.Tensor:
    return torch.from_numpy(rig.world_to_cam[view][:3, :3]).float() @ rig_direction


def test_the_end_share_is_the_probability_near_one_end_of_the_axis_against_the_other():
    from stereo_occ.models.axis_estimator import end_share

    rig, _ = _rig()
    axis = F.normalize(torch.tensor([0.3, -0.5, 0.8]), dim=0)
    estimator = _Answering({0: [(axis, 0.8), (-axis, 0.2)]})
    raw = estimator.raw(torch.zeros(1, 3, 64, 64))[:, 0]
    assert float(end_share(estimator, raw, axis[None])) == pytest.approx(0.8, abs=0.02)
    assert float(end_share(estimator, raw, -axis[None])) == pytest.approx(0.2, abs=0.02)


def test_the_cameras_are_where_the_rig_puts_them():
    from stereo_occ.models.axis_estimator import towards_the_cameras

    rig, cameras = _rig()
    expected = F.normalize(torch.from_numpy(rig.camera_centers().mean(0)).float(), dim=0)
    assert torch.allclose(towards_the_cameras(cameras, 2)[0], expected, atol=1e-6)
    left = F.normalize(torch.from_numpy(rig.camera_centers()[0]).float(), dim=0)
    assert torch.allclose(towards_the_cameras(cameras, 1)[0], left, atol=1e-6)


@pytest.mark.parametrize("views", [1, 2])
def test_an_unsure_sign_turns_the_axis_towards_the_cameras_and_a_sure_one_stays(views):
    """model.axis_sign_confidence: both views lean 55/45 towards the end that faces away from the
    cameras; under a confidence of 0.7 the axis is turned to face them, at 0 it is not; a sure answer
    (95/5) keeps its end either way. The handle's answer is untouched."""
    from stereo_occ.models.axis_estimator import rig_directions, towards_the_cameras

    rig, cameras = _rig()
    images = [torch.full((1, 3, 64, 64), float(v)) for v in range(views)]
    towards = towards_the_cameras(cameras, views)[0]
    away = F.normalize(-towards + torch.tensor([0.5, 0.3, 0.0]), dim=0)  # faces away from the cameras
    for lean, expected_end in ((0.55, -1.0), (0.95, 1.0)):
        estimator = _Answering({v: [(_in_camera(rig, away, v), lean), (_in_camera(rig, -away, v), 1.0 - lean)]
                                for v in range(views)})
        plain = rig_directions(estimator, images, cameras)[0, 0]
        assert float(degrees(plain, away)) < 1.5
        gated = rig_directions(estimator, images, cameras, sign_confidence=0.7)[0, 0]
        assert float(degrees(gated, expected_end * away)) < 1.5
        if lean < 0.7:
            assert float(gated @ towards) > 0  # turned to face the cameras


def test_a_sign_confidence_needs_the_axis_and_a_classifier():
    with pytest.raises(UserError, match="axis_sign_confidence"):
        load_config(None, ["model.axis_sign_confidence=1.0"])
    with pytest.raises(UserError, match="model.align_axis"):
        load_config(None, ["model.axis_sign_confidence=0.5"])
    cfg = ModelConfig(name="rig-stereo", hidden_dim=16, n_blocks=1, image_channels=4, volume_channels=4,
                      volume_resolution=6, align_axis=True, axis_sign_confidence=0.7)
    model = build_model(cfg, RigConfig(image_size=64))
    with pytest.raises(UserError, match="classifier"):
        model.load_axis_estimator(AxisEstimator(bins=0).state_dict())
    model.load_axis_estimator(AxisEstimator().state_dict())
    assert model.encoder.sign_confidence == 0.7
