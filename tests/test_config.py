"""Typed configs: files, overrides and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereo_occ.config import Config, DatasetConfig, config_differences, dataset_differences, from_dict, load_config, to_dict
from stereo_occ.errors import UserError


def test_file_then_overrides_and_typed_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  iterations: 7\ndataset:\n  rig:\n    image_size: 96\n")
    cfg = load_config(path, ["train.lr=0.01", "dataset.shapes.mug=3"])
    assert isinstance(cfg, Config)
    assert (cfg.train.iterations, cfg.train.lr) == (7, 0.01)
    assert cfg.dataset.rig.image_size == 96 and cfg.dataset.shapes.count("mug") == 3
    assert load_config().train.iterations == 40_000  # the study's default


def test_round_trip_through_plain_data():
    cfg = load_config(None, ["model.name=mono"])
    assert from_dict(to_dict(cfg)) == cfg
    assert from_dict(to_dict(cfg.dataset), DatasetConfig) == cfg.dataset


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.lrr=1"], "train.lrr"),
        (["train.iterations=many"], "train.iterations"),
        (["iterations"], "key=value"),
        (["dataset.shapes.categories=[mug,cup]"], "unknown category 'cup'"),
        (["dataset.splits.train=0.9"], "add up to 1"),
        (["reconstruct.mise_steps=9"], "reconstruct.mise_steps must be 0 to 5"),
        (["reconstruct.max_faces=-1"], "reconstruct.max_faces"),
        (["model.space_to_depth=0"], "model.space_to_depth must be 1"),
        (["train.iou_estimator=band"], "train.iou_estimator must be uniform or mixture"),
        (["axis.sign_weight=-1"], "axis.sign_weight must be 0 or more"),
        (["dataset.render.pattern=stripes"], "dataset.render.pattern must be one of none, blotches"),
        (["dataset.render.pattern_wavelength=[0.3,0.1]"], "dataset.render.pattern_wavelength"),
        (["dataset.render.pattern_contrast=[0.5,1.5]"], "dataset.render.pattern_contrast"),
        (["model.name=rig-mono", "model.sweep_planes=32"], "rig-mono cannot use it"),
        (["model.sweep_planes=1"], "model.sweep_planes must be 0"),
        (["model.name=rig-stereo", "model.sweep_planes=2", "model.sweep_refine=true"], "needs model.sweep_planes of at least 3"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        load_config(None, overrides)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not a valid YAML"):
        load_config(broken)


def test_a_stored_config_with_a_retired_setting_still_loads():
    """Checkpoints of session 19 stored train.axis_weight (its axis head's loss, since removed)."""
    stored = to_dict(Config())
    stored["train"]["axis_weight"] = 1.0
    assert from_dict(stored) == Config()
    stored["train"]["no_such_setting"] = 1
    with pytest.raises(UserError):
        from_dict(stored)


def test_a_config_with_a_base_gives_only_what_differs(tmp_path):
    (tmp_path / "parent.yaml").write_text("train:\n  lr: 0.002\n  iterations: 7\nexperiment:\n  overrides:\n    mono: [train.iterations=3]\n    stereo: [train.iterations=4]\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain:\n  iterations: 9\nexperiment:\n  overrides:\n    stereo: [train.iterations=5]\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.batch_size=3"])
    assert (cfg.train.lr, cfg.train.iterations, cfg.train.batch_size) == (0.002, 9, 3)
    # one model's list is replaced whole, the others stay the base's
    assert cfg.experiment.overrides == {"mono": ["train.iterations=3"], "stereo": ["train.iterations=5"]}


def test_a_base_chain_that_comes_back_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(UserError, match="comes back to itself"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(UserError, match="config file not found.*named by base: in"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("scale", ["quick", "long"])
def test_a_printed_config_is_its_plain_one_with_prints_and_the_sweep(scale):
    configs = Path(__file__).resolve().parents[1] / "configs"
    quick = to_dict(load_config(configs / f"{scale}.yaml"))
    printed = to_dict(load_config(configs / f"{scale}-printed.yaml"))
    assert printed["dataset"]["render"]["pattern"] == "blotches"
    assert printed["experiment"]["overrides"]["rig-stereo"] == [*quick["experiment"]["overrides"]["rig-stereo"], "model.sweep_planes=32", "model.sweep_refine=true"]
    printed["dataset"]["render"]["pattern"] = quick["dataset"]["render"]["pattern"]
    printed["experiment"]["overrides"]["rig-stereo"] = quick["experiment"]["overrides"]["rig-stereo"]
    assert printed == quick


def test_the_print_settings_matter_only_with_a_print():
    plain = to_dict(DatasetConfig())
    other = to_dict(DatasetConfig())
    other["render"]["pattern_wavelength"] = [0.1, 0.2]
    assert dataset_differences(plain, other, "dataset.") == []
    printed, printed_other = (dict(c, render=dict(c["render"], pattern="blotches")) for c in (plain, other))
    assert dataset_differences(printed, printed_other, "dataset.") == ["dataset.render.pattern_wavelength"]
    assert dataset_differences(plain, printed) == ["render.pattern"]


def test_the_long_config_is_the_quick_study_at_a_larger_scale():
    """configs/long.yaml differs from quick.yaml only in the objects, the twins' budget and the
    evaluation protocol: the same rig, renders, models and settings (their overrides but the budget)."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    quick = to_dict(load_config(configs / "quick.yaml"))
    long = to_dict(load_config(configs / "long.yaml"))
    assert config_differences(quick, long) == [
        "dataset.shapes.bottle", "dataset.shapes.bowl", "dataset.shapes.mug", "dataset.splits.test",
        "dataset.splits.train", "dataset.splits.val", "eval.mise_steps", "eval.n_surface_points",
        "experiment.overrides.rig-mono", "experiment.overrides.rig-stereo",
        "experiment.real_views_per_object", "train.val_views",
    ]
    budget = ("train.iterations=", "train.val_every=", "train.checkpoint_every=", "train.warmup_iterations=")
    for twin in ("rig-mono", "rig-stereo"):
        settings = [[o for o in config["experiment"]["overrides"][twin] if not o.startswith(budget)] for config in (quick, long)]
        assert settings[0] == settings[1]
