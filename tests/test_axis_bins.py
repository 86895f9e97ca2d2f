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


def test_estimators_written_before_the_normalised_head_load_as_they_were_trained():
    """A state dict without ``head_norm`` (files and checkpoints before session 27) loads into an
    estimator built with today's default and answers as the old, unnormalised head did; a new one
    keeps its normalised head through a file and through a model's checkpoint."""
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64)
    old = AxisEstimator(width=8, head_norm=False).eval()
    state = {k: v for k, v in old.state_dict().items() if k != "head_norm"}
    loaded = AxisEstimator(width=8).eval()
    loaded.load_state_dict(state)
    new = AxisEstimator(width=8).eval()
    with torch.no_grad():
        assert not bool(loaded.head_norm) and torch.allclose(loaded.raw(images), old.raw(images), atol=1e-6)
        plain = AxisEstimator(width=8).eval()  # the new weights read without the norm: other answers
        plain.load_state_dict({k: v for k, v in new.state_dict().items() if k != "head_norm"})
        assert not bool(plain.head_norm) and not torch.allclose(plain.raw(images), new.raw(images), atol=1e-3)
        again = AxisEstimator(width=8, head_norm=False).eval()
        again.load_state_dict(new.state_dict())
        assert bool(again.head_norm) and torch.allclose(again.raw(images), new.raw(images), atol=1e-6)


def test_bad_bin_settings_are_refused():
    with pytest.raises(UserError, match="axis.bins"):
        load_config(None, ["axis.bins=5"])
    with pytest.raises(UserError, match="axis.kappa"):
        load_config(None, ["axis.kappa=0"])
    with pytest.raises(ValueError, match="20 or more"):
        AxisEstimator(bins=3)
    assert math.isclose(load_config(None, []).axis.bins, 1000)


def test_an_estimator_that_has_not_learnt_is_reported_with_what_to_do():
    """An estimator at random on val (every category over 60 degrees): the console line says so and
    what to check; a learnt estimator gets no warning."""
    from stereo_occ.training.axis import describe

    learnt = {"val_median_degrees": {"mug": 24.0, "bowl": 4.0, "bottle": 8.0}, "bins": 1000, "handle_axis": ""}
    assert "WARNING" not in describe(learnt)
    stuck = {"val_median_degrees": {"mug": 99.0, "bowl": 112.0, "bottle": 83.0}, "bins": 1000, "handle_axis": ""}
    text = describe(stuck)
    assert "WARNING: the axis estimator has not learnt" in text and "data.up_axis" in text and "axis.steps" in text
    assert "no val split" in describe({})


@pytest.mark.parametrize("head_norm", [True, False])
def test_the_classifiers_hidden_units_stay_alive_without_a_handle_head(tiny_dataset, head_norm):
    """The session 26 bug (docs/training.md, "Session 27"): a 1,000-direction classifier trained as
    `train-axis` trains it (rolled and mirrored views, batch 64, Adam 2e-3) but without a handle head
    switched off every unit of its hidden layer within 50 steps, and then could not learn at all.
    With the hidden layer normalised before its ReLU about half the units stay active for every
    image; the old head (``head_norm=False``) is kept here to show that this test sees the bug. The
    trunk is the GroupNorm one the bug was found with (with BatchNorm the old head dies more slowly)."""
    from stereo_occ.data.dataset import StereoOccupancyDataset
    from stereo_occ.training.axis import AxisSamples, roll_and_mirror

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    samples = AxisSamples.from_dataset(StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=1), "z")
    estimator = AxisEstimator(image_size=int(samples.images.shape[-1]), head_norm=head_norm, norm="group")
    optimiser = torch.optim.Adam(estimator.parameters(), lr=2e-3)
    active: list[torch.Tensor] = []
    estimator.head[2].register_forward_hook(lambda module, args, out: active.append((out > 0).any(0).float().mean()))
    for _ in range(50):
        pick = torch.randint(len(samples.axes), (64,), generator=generator)
        images, answers = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
        loss = bin_loss(estimator.raw(images), answers, estimator.directions, 40.0, 1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    alive = float(torch.stack(active[-5:]).mean())
    if head_norm:
        assert alive > 0.3
    else:
        assert alive < 0.1


def test_the_estimators_features_stay_apart_with_batchnorm_or_a_warm_up(tiny_dataset, tmp_path):
    """Session 27: with GroupNorm and the full learning rate from the first step, a few Adam steps
    made the estimator's convolutions answer the same for every image (their spread across images
    fell to a thousandth of their spread overall within 10 steps), and a probe of a mug's end on them
    stayed at chance. A warm-up (``axis.warmup_steps``) keeps them apart, and so does BatchNorm (the
    default since session 28) without one; GroupNorm without a warm-up collapses in the same 12
    steps, which shows this test sees it."""
    from stereo_occ.data.dataset import StereoOccupancyDataset
    from stereo_occ.training.axis import AxisSamples, train_axis_estimator

    images = AxisSamples.from_dataset(StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=1), "z").images
    spread = {}
    # 50 steps for BatchNorm: in eval mode it reads running statistics, which take some steps to settle
    for norm, warmup, steps in (("group", 300, 12), ("group", 0, 12), ("batch", 0, 50)):
        out = tmp_path / f"axis-{norm}-{warmup}.pt"
        cfg = load_config(None, [f"axis.steps={steps}", "axis.batch_size=32", f"axis.warmup_steps={warmup}", "axis.precision=fp32",
                                 f"axis.norm={norm}"])
        train_axis_estimator(cfg, tiny_dataset, out, show_progress=False)
        estimator = estimator_from_record(load_axis_estimator(out))
        assert estimator.norm == norm and not estimator.training
        with torch.no_grad():
            features = estimator.features(images.float() / 255.0).flatten(1)
        spread[norm, warmup] = float(features.std(0).mean() / features.std())
    assert spread["group", 300] > 0.05 > 0.01 > spread["group", 0]
    assert spread["batch", 0] > 0.2
    with pytest.raises(UserError, match="axis.warmup_steps"):
        load_config(None, ["axis.warmup_steps=-1"])


def test_the_estimator_learns_from_more_datasets_than_the_main_one(tiny_dataset, tmp_path):
    """``axis.extra_datasets``: their training objects join the main dataset's (twice the images
    here, the same folder given again); a folder that is no dataset is a clear error."""
    from stereo_occ.training.axis import train_axis_estimator

    def images_with(*extra: str) -> int:
        cfg = load_config(None, ["axis.steps=2", "axis.batch_size=8", f"axis.extra_datasets=[{','.join(extra)}]"])
        return train_axis_estimator(cfg, tiny_dataset, tmp_path / "axis.pt", show_progress=False)["train_images"]

    assert images_with(str(tiny_dataset)) == 2 * images_with()
    with pytest.raises(UserError):
        images_with(str(tmp_path / "nothing-here"))


def test_groupnorm_estimators_still_load_and_a_rig_model_keeps_its_estimator_in_eval_mode():
    """Estimator files and checkpoints written before session 28 have a GroupNorm trunk: they load
    as such (same answers as the network that wrote them). Inside a rig model the frozen estimator
    evaluates while the model trains: its BatchNorm reads the statistics it was trained with, and a
    training step of the rig model leaves them as they were."""
    from stereo_occ.models.rig_volume import RigVolumeEncoder

    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64)
    old = AxisEstimator(width=8, norm="group").eval()
    loaded = AxisEstimator(width=8)
    loaded.load_state_dict(old.state_dict())
    assert loaded.norm == "group" and isinstance(loaded.features[1], torch.nn.GroupNorm)
    with torch.no_grad():
        assert torch.equal(old.eval().raw(images), loaded.eval().raw(images))
    with pytest.raises(ValueError, match="normalised"):
        AxisEstimator(norm="layer")
    with pytest.raises(UserError, match="axis.norm"):
        load_config(None, ["axis.norm=layer"])

    from stereo_occ.models.cameras import Cameras
    from stereo_occ.data.rig import StereoRig

    model = build_model(ModelConfig(name="rig-stereo", align_axis=True, volume_resolution=4), RigConfig(image_size=64)).train()
    estimator = model.encoder.axis_estimator
    assert model.training and not estimator.training
    estimator.features[1].running_mean.fill_(0.25)  # as a trained one's: not the batch's
    model.encoder(images, images.flip(-1), Cameras.from_rig(StereoRig.from_config(RigConfig(image_size=64))))
    assert torch.all(estimator.features[1].running_mean == 0.25)
    model.eval().train()
    assert not estimator.training


def test_precise_batch_norm_measures_the_statistics_of_the_final_weights(tiny_dataset):
    """After training, the estimator's BatchNorm statistics are measured afresh with its final
    weights (the running averages kept while training lag behind them: session 28's estimator
    answered 78-100 degrees off with them, 3-4 with these): each layer's running mean is then the mean
    of its input over the rolled and mirrored batches, in eval mode, with the layer's momentum kept."""
    from stereo_occ.data.dataset import StereoOccupancyDataset
    from stereo_occ.training.axis import AxisSamples, precise_batch_norm, roll_and_mirror

    torch.manual_seed(0)
    samples = AxisSamples.from_dataset(StereoOccupancyDataset(tiny_dataset, "train", points_per_sample=1), "z")
    estimator = AxisEstimator(width=8)
    estimator.features[1].running_mean.fill_(5.0)  # stale, as after training
    precise_batch_norm(estimator, samples, torch.Generator().manual_seed(3), torch.device("cpu"), batches=3, batch_size=16)
    assert not estimator.training and estimator.features[1].momentum == 0.1
    generator = torch.Generator().manual_seed(3)
    seen = []
    with torch.no_grad():
        for _ in range(3):
            pick = torch.randint(len(samples.axes), (16,), generator=generator)
            images, _ = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
            seen.append(estimator.features[0](images).mean((0, 2, 3)))
    assert torch.allclose(estimator.features[1].running_mean, torch.stack(seen).mean(0), atol=1e-5)
    kept = AxisEstimator(width=8).train()
    kept.features[1].running_mean.fill_(5.0)
    precise_batch_norm(kept, samples, torch.Generator(), torch.device("cpu"), batches=0)  # axis.precise_bn_batches=0
    assert not kept.training and torch.all(kept.features[1].running_mean == 5.0)
    with pytest.raises(UserError, match="axis.precise_bn_batches"):
        load_config(None, ["axis.precise_bn_batches=-1"])
    group = AxisEstimator(width=8, norm="group")
    before = {k: v.clone() for k, v in group.state_dict().items()}
    precise_batch_norm(group, samples, torch.Generator(), torch.device("cpu"), batches=1)
    assert all(torch.equal(before[k], v) for k, v in group.state_dict().items())


def test_the_estimators_learning_rate_warms_up_then_stays_or_decays_on_a_cosine():
    from stereo_occ.training.axis import axis_lr_factor

    constant = load_config(None, ["axis.steps=100", "axis.warmup_steps=10"]).axis
    assert axis_lr_factor(constant, 0) == pytest.approx(0.1) and axis_lr_factor(constant, 9) == 1.0
    assert axis_lr_factor(constant, 99) == 1.0
    cosine = load_config(None, ["axis.steps=100", "axis.lr_schedule=cosine"]).axis
    assert axis_lr_factor(cosine, 0) == 1.0 and axis_lr_factor(cosine, 50) == pytest.approx(0.5)
    assert axis_lr_factor(cosine, 99) < 0.01 and axis_lr_factor(cosine, 100) == 0.0
    with pytest.raises(UserError, match="axis.lr_schedule"):
        load_config(None, ["axis.lr_schedule=step"])
