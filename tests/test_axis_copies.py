"""The axis estimator averaged over turned and mirrored copies of an image (eval.axis_copies)."""

from __future__ import annotations

import pytest
import torch

from stereo_occ.config import ModelConfig, RigConfig, load_config
from stereo_occ.errors import UserError
from stereo_occ.models import build_model
from stereo_occ.models.axis_estimator import AxisEstimator, image_copies
from stereo_occ.data.rig import StereoRig
from stereo_occ.models.cameras import Cameras

SIZE = 32
FOCAL = 40.0  # pixels; the principal point is the image centre, as the rig's


def marker_image(u: float, v: float) -> torch.Tensor:
    """A white image with one dark pixel at column ``u``, row ``v`` (OpenCV pixel centres)."""
    image = torch.ones(1, 3, SIZE, SIZE)
    image[0, :, int(v), int(u)] = 0.0
    return image


def marker_direction(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` camera-frame unit directions through each image's darkest pixel."""
    flat = images.mean(1).flatten(1).argmin(1)
    rows, cols = (flat // SIZE).float(), (flat % SIZE).float()
    c = (SIZE - 1) / 2.0
    return torch.nn.functional.normalize(torch.stack([(cols - c) / FOCAL, (rows - c) / FOCAL, torch.ones_like(rows)], -1), dim=-1)


def towards_marker(d: torch.Tensor) -> torch.Tensor:
    """A second camera-frame answer: the direction through the marker tipped back towards the camera
    (any turn or mirror of the image moves it as it moves the marker's: both fix the optical axis)."""
    return torch.nn.functional.normalize(3.0 * d - torch.tensor([0.0, 0.0, 1.0]), dim=-1)


class MarkerEstimator(AxisEstimator):
    """An estimator whose answers are the direction through the dark pixel (axis) and
    :func:`towards_marker` of it (handle): camera-frame answers, as a trained estimator's are."""

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        d = marker_direction(images)
        return torch.stack([60.0 * d @ self.directions.T, 60.0 * towards_marker(d) @ self.directions.T], 1)


def degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos((a * b).sum(-1).clamp(-1, 1)))


def test_each_copy_shows_a_direction_where_its_map_says():
    image = marker_image(u=22, v=9)
    shown, transforms = image_copies(image, 8)
    assert shown.shape == (8, 3, SIZE, SIZE) and transforms.shape == (8, 3, 3)
    assert torch.equal(shown[0], image[0]) and torch.equal(transforms[0], torch.eye(3))
    seen = marker_direction(shown)
    expected = torch.nn.functional.normalize(transforms @ marker_direction(image)[0], dim=-1)
    assert torch.allclose(seen, expected, atol=1e-6)  # whole pixels: exact
    assert len({tuple(t.flatten().tolist()) for t in transforms}) == 8  # eight different views
    for copies in (1, 2, 4):
        assert image_copies(image, copies)[0].shape[0] == copies
    with pytest.raises(ValueError, match="1, 2, 4, 8"):
        image_copies(image, 3)
    with pytest.raises(ValueError, match="square"):
        image_copies(torch.ones(1, 3, SIZE, SIZE + 2), 4)


@pytest.mark.parametrize("copies", [1, 2, 4, 8])
def test_the_copies_answers_are_brought_back_to_the_images_frame(copies):
    estimator = MarkerEstimator(image_size=SIZE, handle=True).eval()
    images = torch.cat([marker_image(22, 9), marker_image(4, 27), marker_image(15, 16)])
    truth = marker_direction(images)
    answers = estimator(images, copies)
    assert answers.shape == (3, 2, 3)
    # within the bins' quantisation (about 6 degrees apart; the decoded answer is a local mean)
    assert degrees(answers[:, 0], truth).max() < 3.0
    assert degrees(answers[:, 1], towards_marker(truth)).max() < 3.0


def test_a_rig_model_shows_its_estimator_the_copies_only_when_it_evaluates(monkeypatch):
    cfg = ModelConfig(name="rig-stereo", align_axis=True, align_handle=True, hidden_dim=32, image_channels=8,
                      volume_channels=4, volume_resolution=4)
    model = build_model(cfg, RigConfig(image_size=SIZE))
    shown: list[int] = []
    forward = AxisEstimator.forward
    monkeypatch.setattr(AxisEstimator, "forward", lambda self, images, copies=1: shown.append(copies) or forward(self, images, copies))
    stereo = StereoRig.from_config(RigConfig(image_size=SIZE))
    cameras = Cameras.from_arrays(stereo.K[None].repeat(2, 0), stereo.world_to_cam, SIZE)
    images = torch.rand(2, 3, SIZE, SIZE)
    model.set_axis_copies(8)
    model.train()
    model.encode(images, images, cameras)
    assert shown == [1, 1]  # training: one copy of each view, as the estimator was trained
    shown.clear()
    model.eval()
    with torch.no_grad():
        model.encode(images, images, cameras)
    assert shown == [8, 8]


def test_eval_axis_copies_is_checked_and_may_be_a_models_own():
    from stereo_occ.config import model_config

    assert load_config(None).eval.axis_copies == 8
    with pytest.raises(UserError, match="eval.axis_copies"):
        load_config(None, ["eval.axis_copies=3"])
    cfg = load_config(None, ["experiment.overrides={rig-mono: [eval.axis_copies=1]}"])
    assert model_config(cfg, "rig-mono").eval.axis_copies == 1 and model_config(cfg, "rig-stereo").eval.axis_copies == 8
