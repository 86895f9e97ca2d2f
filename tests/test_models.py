"""Models: shapes, gradient flow, the cost volume's sign convention, weight loading, the registry."""

from __future__ import annotations

import pytest
import torch

from stereo_occ.config import ModelConfig, RigConfig
from stereo_occ.errors import UserError
from stereo_occ.models import MODELS, OccupancyNetwork, build_model, load_torchvision_resnet18
from stereo_occ.models.cost_volume import correlation_volume, groupwise_correlation_volume
from stereo_occ.models.resnet import ResNet18
from stereo_occ.models.stereo import feature_shifts, max_disparity_pixels



def small_cfg(name: str) -> ModelConfig:
    """Narrow decoder so the tests stay fast; encoders keep their real sizes."""
    return ModelConfig(name=name, code_dim=64, hidden_dim=32, n_blocks=2)


def pair(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g)


@pytest.fixture(scope="module", params=["mono", "stereo"])
def model(request) -> OccupancyNetwork:
    torch.manual_seed(0)
    return build_model(small_cfg(request.param), RigConfig())


@pytest.mark.parametrize("size", [64, 128])
def test_output_shapes(model: OccupancyNetwork, size: int) -> None:
    left, right = pair(2, size)
    points = torch.rand(2, 50, 3) - 0.5
    model.train()
    logits = model(left, right, points)
    assert logits.shape == (2, 50)
    code = model.encode(left, right)
    assert code.shape == (2, 64)
    assert model.decode(points, code).shape == (2, 50)
    assert torch.isfinite(logits).all()


def test_every_parameter_gets_gradient(model: OccupancyNetwork) -> None:
    """Every parameter is connected to the loss.

    The decoder's residual branches start with a zero last layer (the paper's initialisation), which
    blocks gradient to the layers before it for exactly one step; so take one optimiser step first,
    then check that a second backward reaches every parameter with a non-zero gradient.
    """
    model.train()
    left, right = pair(2, 64, seed=1)
    points = torch.rand(2, 64, 3) - 0.5
    target = (points.norm(dim=-1) < 0.3).float()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(left, right, points), target)
        loss.backward()
        if _ == 0:
            optimizer.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize("k", [3, -3, 5, -2])
def test_correlation_peaks_at_the_shift(k: int) -> None:
    """right(x) = left(x + k) means disparity d = x_left - x_right = k: slice max_shift + k wins."""
    g = torch.Generator().manual_seed(7)
    texture = torch.randn(1, 3, 24, 60, generator=g)
    left = texture[..., 10:50]
    right = texture[..., 10 + k : 50 + k]
    max_shift = 6
    volume = correlation_volume(left, right, max_shift)
    assert volume.shape == (1, 2 * max_shift + 1, 24, 40)
    interior = volume[0, :, :, max_shift:-max_shift]  # pixels where every shift is in bounds
    # Three raw channels make single pixels ambiguous; the image as a whole is not.
    assert interior.mean((1, 2)).argmax() == max_shift + k
    assert (interior.argmax(0) == max_shift + k).float().mean() > 0.3  # chance: 1 / 13
    # Block matching (5x5 box sums of the volume) makes every interior pixel right.
    boxed = torch.nn.functional.avg_pool2d(interior[None], 5, stride=1)[0]
    assert (boxed.argmax(0) == max_shift + k).all()


def test_correlation_is_zero_out_of_bounds_and_groupwise_consistent() -> None:
    left, right = torch.randn(2, 8, 5, 12), torch.randn(2, 8, 5, 12)
    volume = correlation_volume(left, right, 3)
    # d = +3 compares left(x) with right(x - 3): x < 3 has no partner.
    assert torch.all(volume[:, 6, :, :3] == 0) and torch.all(volume[:, 0, :, -3:] == 0)
    grouped = groupwise_correlation_volume(left, right, 3, groups=4)
    assert grouped.shape == (2, 4, 7, 5, 12)
    torch.testing.assert_close(grouped.mean(1), volume)


def test_stereo_code_depends_on_right_image_mono_does_not() -> None:
    torch.manual_seed(0)
    left, right = pair(2, 64, seed=3)
    _, other_right = pair(2, 64, seed=4)
    codes = {}
    for name in ("mono", "stereo"):
        net = build_model(small_cfg(name), RigConfig()).eval()
        with torch.no_grad():
            codes[name] = (net.encode(left, right), net.encode(left, other_right))
    assert torch.equal(*codes["mono"])
    assert (codes["stereo"][0] - codes["stereo"][1]).abs().max() > 1e-4


def test_disparity_range_covers_the_padded_box() -> None:
    pixels = max_disparity_pixels(RigConfig())
    assert 15.0 < pixels < 18.0  # docs/models.md: 16.3 px for the default rig
    assert feature_shifts(pixels) == 5  # 1/4 resolution
    # Disparity in pixels scales with the image size.
    assert max_disparity_pixels(RigConfig(image_size=64)) == pytest.approx(pixels / 2, rel=0.02)
    stereo = build_model(ModelConfig(name="stereo"), RigConfig())
    assert stereo.encoder.max_shift == 5
    assert build_model(ModelConfig(name="stereo", max_disparity=32), RigConfig()).encoder.max_shift == 8


def test_resnet_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    source = ResNet18(num_classes=1000)
    for p in source.parameters():  # make the values distinguishable from a fresh init
        p.data.normal_()
    state = source.state_dict()
    target = ResNet18(num_classes=1000)
    load_torchvision_resnet18(target, state)
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key
    # A truncated, dilated feature extractor takes the part it has.
    partial = ResNet18(num_classes=None, stages=2, replace_stride_with_dilation=(True, False, False))
    load_torchvision_resnet18(partial, {f"module.{k}": v for k, v in state.items()})
    assert torch.equal(partial.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    # Through the model wrapper, as the trainer does it.
    for name in ("mono", "stereo"):
        build_model(small_cfg(name), RigConfig()).load_resnet18_weights(state)


def test_resnet_loader_rejects_wrong_dicts() -> None:
    good = ResNet18(num_classes=1000).state_dict()
    target = ResNet18(num_classes=1000)
    with pytest.raises(UserError, match="unexpected keys"):
        load_torchvision_resnet18(target, {**good, "classifier.weight": torch.zeros(3)})
    with pytest.raises(UserError, match="lacks"):
        load_torchvision_resnet18(target, {k: v for k, v in good.items() if not k.startswith("layer4")})
    with pytest.raises(UserError, match="shape"):
        load_torchvision_resnet18(target, {**good, "conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(UserError, match="not a tensor"):
        load_torchvision_resnet18(target, {**good, "conv1.weight": [1, 2]})


def test_build_model_unknown_name() -> None:
    assert {"mono", "stereo"} <= set(MODELS)
    with pytest.raises(UserError, match="unknown model 'voxels'.*mono.*stereo"):
        build_model(ModelConfig(name="voxels"), RigConfig())


def test_mismatched_images_are_a_user_error() -> None:
    net = build_model(small_cfg("stereo"), RigConfig())
    with pytest.raises(UserError, match="differ in size"):
        net.encode(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 48))


def test_folded_eval_decoder_equals_the_batch_norm_path():
    """Inference folds every CBN into affine maps; it must give what the BatchNorm layers give."""
    from stereo_occ.models.decoder import OccupancyDecoder

    torch.manual_seed(0)
    decoder = OccupancyDecoder(code_dim=16, hidden_dim=32, n_blocks=3)
    points, code = torch.rand(2, 300, 3) - 0.5, torch.randn(2, 16)
    decoder.train()
    for _ in range(3):  # give the running statistics and the residual branches non-trivial values
        decoder(points * 2, code)
    with torch.no_grad():
        for p in decoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    decoder.eval()
    folded = decoder(points, code)
    decoder.train()  # the BatchNorm path, but with running statistics
    for m in decoder.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.eval()
    reference = decoder(points, code)
    assert torch.allclose(folded, reference, atol=1e-4, rtol=1e-4)
    assert reference.std() > 0.01  # the comparison is not between two constants


def test_only_a_model_with_a_distance_head_gives_distances(model: OccupancyNetwork) -> None:
    left, right = pair(1, 64)
    points = torch.rand(1, 20, 3) - 0.5
    with pytest.raises(UserError, match="distance"):  # the study's models have no head
        model.decode(points, model.encode(left, right), with_distance=True)
    from stereo_occ.data.rig import StereoRig
    from stereo_occ.models.cameras import Cameras

    rig_cfg = RigConfig(image_size=64)
    cameras = Cameras.from_rig(StereoRig.from_config(rig_cfg))
    for head in (False, True):
        net = build_model(ModelConfig(name="rig-stereo", hidden_dim=32, n_blocks=1, distance_head=head), rig_cfg)
        assert net.predicts_distance == head
        cond = net.encode(left, right, cameras)
        if head:
            logits, distance = net.decode(points, cond, with_distance=True)
            assert logits.shape == distance.shape == (1, 20)
            assert torch.equal(logits, net.decode(points, cond))  # the head does not change the occupancy
        else:
            with pytest.raises(UserError, match="distance"):
                net.decode(points, cond, with_distance=True)
