"""The study as one command: every stage runs once, results.json has the contract's schema, and a
second run skips what is finished."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from stereo_occ.config import CATEGORIES, to_dict
from stereo_occ.errors import UserError
from stereo_occ.evaluation.metrics import SUMMARY_METRICS
from stereo_occ.experiment import run_experiment, training_finished

FAST = [
    "model.code_dim=32",
    "model.hidden_dim=32",
    "model.n_blocks=1",
    "model.feature_dim=8",
    "train.iterations=4",
    "train.batch_size=4",
    "train.val_every=2",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.val_points=1024",
    "eval.n_iou_points=4000",
    "eval.n_surface_points=2000",
    "eval.mise_resolution=16",
    "eval.mise_steps=1",
]
METRICS = SUMMARY_METRICS  # every metric, the split of what the pair can see included


def two_mesh_folder(root):
    """A user's folder of two real-looking meshes: a bottle-like cylinder and a bowl-like cup."""
    import trimesh

    (root / "bottle").mkdir(parents=True)
    (root / "bowl").mkdir()
    trimesh.creation.cylinder(radius=0.03, height=0.2, sections=32).export(root / "bottle" / "tall.obj")
    outer = trimesh.creation.cylinder(radius=0.08, height=0.05, sections=48)
    inner = trimesh.creation.cylinder(radius=0.07, height=0.05, sections=48)
    inner.apply_translation([0, 0, 0.01])
    outer.difference(inner).export(root / "bowl" / "dish.obj")
    return root



def test_bad_model_lists_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        run_experiment(tiny_config("experiment.models=[mono,transformer]"), tmp_path / "x")
    with pytest.raises(UserError, match="twice"):
        run_experiment(tiny_config("experiment.models=[mono,mono]"), tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-made


def test_a_run_counts_as_finished_only_with_its_iterations_and_best_checkpoint(tmp_path):
    cfg = tiny_config("train.iterations=10")
    assert not training_finished(tmp_path, cfg)
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 8}))
    (tmp_path / "model_best.pt").write_bytes(b"x")
    assert not training_finished(tmp_path, cfg)
    trained = {key: to_dict(getattr(cfg, key)) for key in ("model", "train", "data")}
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 10, "config": trained}))
    assert training_finished(tmp_path, cfg)
    assert not training_finished(tmp_path, tiny_config("train.iterations=20"))  # longer: resumes
    with pytest.raises(UserError, match="train.lr"):  # another learning rate is another run
        training_finished(tmp_path, tiny_config("train.iterations=10", "train.lr=0.01"))
    # A run from before a setting existed had the behaviour its default keeps: still this run.
    del trained["model"]["fine_channels"]
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 10, "config": trained}))
    assert training_finished(tmp_path, cfg)
    with pytest.raises(UserError, match="model.fine_channels"):
        training_finished(tmp_path, tiny_config("train.iterations=10", "model.fine_channels=8"))


def test_a_shared_axis_estimator_trained_with_other_settings_is_stale(tmp_path):
    from stereo_occ.experiment import stale_estimator_settings, train_stage
    from stereo_occ.models.axis_estimator import AxisEstimator
    from stereo_occ.training.axis import save_axis_estimator

    cfg = tiny_config("axis.steps=40")
    path = tmp_path / "runs" / "axis_estimator.pt"
    save_axis_estimator(AxisEstimator(width=8), path, {"up_axis": "z", "axis": to_dict(cfg.axis)})
    assert stale_estimator_settings(path, cfg) == []
    assert stale_estimator_settings(path, tiny_config("axis.steps=80", "axis.sign_weight=1")) == ["axis.steps", "axis.sign_weight"]
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "data.up_axis=y")) == ["data.up_axis"]
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "data.handle_axis=x")) == ["data.handle_axis"]
    # an estimator from before the summary held every setting: compared on the ones it has
    save_axis_estimator(AxisEstimator(width=8), path, {"up_axis": "z", "steps": 40, "lr": cfg.axis.lr, "precision": "bf16"})
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "axis.views_per_object=2")) == []
    assert stale_estimator_settings(path, tiny_config("axis.steps=50")) == ["axis.steps"]
    # a regression estimator (files before session 25) is stale for a config that asks for a classifier
    save_axis_estimator(AxisEstimator(width=8, bins=0), path, {"up_axis": "z", "steps": 40})
    assert stale_estimator_settings(path, tiny_config("axis.steps=40")) == ["axis.bins"]
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "axis.bins=0")) == []
    # estimators from before session 28 have GroupNorm convolutions: stale for today's BatchNorm default
    record = torch.load(path, weights_only=True)
    del record["norm"]
    torch.save(record, path)
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "axis.bins=0")) == ["axis.norm"]
    assert stale_estimator_settings(path, tiny_config("axis.steps=40", "axis.bins=0", "axis.norm=group")) == []
    # an experiment folder moved or copied elsewhere keeps its estimator; another dataset does not
    moved = tiny_config("axis.steps=40", "axis.extra_datasets=[new/axis-dataset]")
    save_axis_estimator(AxisEstimator(width=8), path, {"up_axis": "z", "axis": to_dict(
        tiny_config("axis.steps=40", "axis.extra_datasets=[old/axis-dataset]").axis)})
    assert stale_estimator_settings(path, moved, own_dataset=Path("new/axis-dataset")) == []
    assert stale_estimator_settings(path, moved) == ["axis.extra_datasets"]
    other = tiny_config("axis.steps=40", "axis.extra_datasets=[mine,new/axis-dataset]")
    assert stale_estimator_settings(path, other, own_dataset=Path("new/axis-dataset")) == ["axis.extra_datasets"]
    # the experiment says so before it trains anything along it
    aligned = tiny_config("axis.steps=50", "experiment.models=[rig-mono]", "model.align_axis=true")
    with pytest.raises(UserError, match=r"axis.steps.*delete it and the runs"):
        train_stage(aligned, tmp_path / "dataset", tmp_path / "runs")


def test_the_estimators_own_objects_are_other_procedural_objects_all_for_training(tmp_path):
    """``experiment.axis_objects``: more procedural mugs for the axis estimator alone, built with the
    study's rig and rendering but the next shape seed (none is one of the study's test objects),
    every one in the training split, with ``axis_views`` views; nothing where no model uses the axis."""
    from stereo_occ.data.build import build_dataset
    from stereo_occ.data.dataset import StereoOccupancyDataset, read_split
    from stereo_occ.data.storage import ObjectReader
    from stereo_occ.experiment import axis_objects_config
    from stereo_occ.training.axis import AxisSamples

    cfg = tiny_config("experiment.models=[mono,rig-mono]", "experiment.overrides={rig-mono: [model.align_axis=true]}",
                      "experiment.axis_objects={mug: 2}", "experiment.axis_views=2")
    extra = axis_objects_config(cfg)
    shapes = extra.dataset.shapes
    assert shapes.categories == ["mug"] and shapes.mug == 2 and shapes.bowl == shapes.bottle == 0
    assert shapes.seed == cfg.dataset.shapes.seed + 1 and extra.dataset.rig == cfg.dataset.rig
    assert extra.dataset.render.views_per_object == 2 and extra.dataset.render.hue == cfg.dataset.render.hue
    build_dataset(extra, tmp_path / "axis-dataset")
    assert len(read_split(tmp_path / "axis-dataset", "train")) == 2 and not read_split(tmp_path / "axis-dataset", "test")
    samples = AxisSamples.from_dataset(StereoOccupancyDataset(tmp_path / "axis-dataset", "train", points_per_sample=1), "z")
    assert len(samples.axes) == 2 * 2 * 2 and (samples.categories == CATEGORIES.index("mug")).all()
    # a study's mug and the estimator's first mug are different shapes
    study = build_dataset(tiny_config("dataset.shapes.categories=[mug]", "dataset.shapes.mug=1", "dataset.render.views_per_object=1",
                                      "dataset.splits.train=1", "dataset.splits.val=0", "dataset.splits.test=0"), tmp_path / "study")
    assert study.built == 1
    def first_mug(root):
        return ObjectReader(root / sorted(read_split(root, "train"))[0]).mesh()

    assert abs(first_mug(tmp_path / "study").volume - first_mug(tmp_path / "axis-dataset").volume) > 1e-6
    assert axis_objects_config(tiny_config("experiment.models=[mono,rig-mono]", "experiment.axis_objects={mug: 2}")) is None
    with pytest.raises(UserError, match="experiment.axis_objects"):
        tiny_config("experiment.axis_objects={cup: 2}")


def test_per_model_overrides_change_only_how_a_model_is_trained():
    from stereo_occ.config import model_config

    cfg = tiny_config("experiment.models=[mono,stereo]", "experiment.overrides={stereo: [train.iterations=7]}")
    assert model_config(cfg, "stereo").train.iterations == 7 and model_config(cfg, "stereo").model.name == "stereo"
    assert model_config(cfg, "mono").train.iterations == cfg.train.iterations
    for bad in ("eval.threshold=0.5", "eval.n_iou_points=1000", "dataset.rig.image_size=32", "model.name=mono"):
        with pytest.raises(UserError, match="cannot differ between models"):
            model_config(tiny_config(f"experiment.overrides={{stereo: [{bad}]}}"), "stereo")
    # how a model's network runs in evaluation may be its own (not what is measured)
    own = tiny_config("experiment.overrides={stereo: [eval.precision=bf16, eval.batch_points=1024]}")
    assert model_config(own, "stereo").eval.precision == "bf16" and model_config(own, "stereo").eval.batch_points == 1024
    assert model_config(own, "mono").eval.precision == own.eval.precision


def test_a_real_mesh_the_rig_cannot_hold_stops_the_experiment_before_training(tmp_path):
    import trimesh

    real = two_mesh_folder(tmp_path / "meshes")
    trimesh.creation.box(extents=(0.2, 0.2, 0.2)).export(real / "bottle" / "cube.obj")  # reaches 0.866
    cfg = tiny_config(*FAST, "dataset.shapes.mug=1", "dataset.shapes.bowl=1", "dataset.shapes.bottle=1",
                      "dataset.render.views_per_object=2", "dataset.rig.image_size=32", "dataset.occupancy.n_uniform=2000",
                      "dataset.occupancy.n_surface=1000", "dataset.rig.fov_deg=46", "dataset.rig.object_radius=0.75",
                      f"experiment.real_meshes={real}")
    out = tmp_path / "experiment"
    with pytest.raises(UserError, match="bottle/cube.*rig.object_radius"):
        run_experiment(cfg, out)
    assert (out / "dataset" / "meta.json").is_file() and not (out / "runs").exists()


@pytest.mark.slow
def test_experiment_end_to_end_then_resumes(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "experiment"
    # Start from the session's tiny dataset (same config): the dataset stage then checks and resumes it.
    shutil.copytree(tiny_dataset, out / "dataset")
    real = two_mesh_folder(tmp_path / "my meshes")
    cfg = tiny_config(*FAST, f"experiment.real_meshes={real}", "experiment.real_views_per_object=2")
    returned = run_experiment(cfg, out)

    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(returned))
    assert set(results) >= {"models", "dataset", "machine", "date"}
    assert set(results["models"]) == {"mono", "stereo"}
    for entry in results["models"].values():
        for metric in METRICS:
            assert set(entry[metric]) == {*CATEGORIES, "mean"}
            assert all(isinstance(v, float) and math.isfinite(v) for v in entry[metric].values()), entry[metric]
        assert 0.0 <= entry["iou"]["mean"] <= 1.0 and entry["chamfer_l1"]["mean"] > 0
        assert entry["iterations"] == 4 and entry["train_seconds"] > 0
        assert entry["train_precision"] == "fp32"  # the study's models: fp32 on the CPU (docs/training.md, "Precision")
        # one test object per category: no interval can be drawn from a single object
        for metric in METRICS:
            assert set(entry[f"{metric}_ci"]) == {*CATEGORIES, "mean"} and entry[f"{metric}_ci"]["mean"] is None
        # every model on the real meshes: 2 objects x 2 views, categories without a mesh are None
        assert entry["real"]["n_objects"] == 2 and entry["real"]["views_per_object"] == 2
        assert entry["real"]["source"] == str(real)
        assert entry["real"]["iou"]["mug"] is None and 0.0 <= entry["real"]["iou"]["mean"] <= 1.0
    assert set(results["differences"]) == {"stereo-mono"} == set(results["real_differences"])
    diff = results["differences"]["stereo-mono"]["iou"]
    assert diff["ci"] is None and diff["significant"] is False
    expected = results["models"]["stereo"]["iou"]["mean"] - results["models"]["mono"]["iou"]["mean"]
    assert diff["mean"] == pytest.approx(expected, abs=1e-9)
    assert len((out / "real" / "dataset" / "splits" / "test.txt").read_text().split()) == 2
    data = results["dataset"]
    assert data["source"] == "procedural" and data["views_per_object"] == 4 and data["image_size"] == 64
    assert data["fov_deg"] == 60.0 and data["object_radius"] == pytest.approx(math.sqrt(3) / 2)
    assert sum(data["counts"][s]["total"] for s in ("train", "val", "test")) == 12
    assert results["machine"]["cores"] >= 1 and results["machine"]["torch"] == torch.__version__
    # where the time went: every stage that ran, up to the results
    stages = results["timings"]["stages"]
    assert list(stages)[:2] == ["dataset", "dataset of the real meshes"]
    assert {"train mono", "train stereo", "evaluate mono", "evaluate stereo on the real meshes", "figure"} <= set(stages)
    assert all(s >= 0 for s in stages.values()) and stages["train stereo"] > 0.1
    assert results["timings"]["invocations"] == 1

    report = (out / "report.html").read_text()
    assert "0.1896" in report and "0.1153" in report
    assert "field of view" in report and "60 degrees" in report  # part of what the numbers mean
    assert "<h2>What the pair can see</h2>" in report
    assert f"{results['models']['stereo']['iou']['mean']:.4f}" in report
    figure = json.loads((out / "figure" / "figure.json").read_text())
    assert figure["columns"] == ["left input", "ground truth", "mono", "stereo"]
    assert {row["category"] for row in figure["rows"]} == set(CATEGORIES)
    assert report.count("data:image/png;base64,") == 1 + 4 * len(figure["rows"])  # curves + figure cells
    for href in re.findall(r'href="([^"]+)"', report):
        assert (out / href).is_file(), href
    assert (out / "figure" / "figure.png").stat().st_size > 1000

    # A second run finds every stage complete: nothing is trained, evaluated or rendered again.
    watched = [
        out / "runs" / "stereo" / "model_best.pt",
        out / "eval" / "mono" / "metrics.json",
        out / "figure" / "figure.png",
    ]
    before = {p: p.stat().st_mtime_ns for p in watched}
    capsys.readouterr()
    run_experiment(cfg, out)
    log = capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert log.count("skipped") == 2 + 2 + 2 + 1  # two trainings, two evaluations, two on real meshes, the figure
    again = json.loads((out / "timings.json").read_text())
    assert again["invocations"] == 2 and again["stages"]["train stereo"] == pytest.approx(stages["train stereo"], abs=0.5)

    # Metrics written by an earlier version, without a metric this one reports: evaluated again.
    metrics_path = out / "eval" / "mono" / "metrics.json"
    old = json.loads(metrics_path.read_text())
    del old["volume_recall"]
    metrics_path.write_text(json.dumps(old))
    run_experiment(cfg, out)
    log = capsys.readouterr().out
    assert "evaluate mono on the test split ->" in log and "evaluate stereo on the test split: up to date" in log
    assert "volume_recall" in json.loads(metrics_path.read_text())


def test_the_figure_shows_objects_at_evenly_spaced_ranks_of_the_last_models_iou():
    from stereo_occ.experiment import _figure_objects

    per_object = [{"object_id": f"{c}/{i}", "category": c, "view": v, "iou": float((7 * i) % 9) / 10}
                  for c in CATEGORIES for i in range(9) for v in (0, 1)]
    metrics = {"per_object": per_object}
    median = _figure_objects(metrics, 1)
    assert [o["category"] for o in median] == list(CATEGORIES)
    assert all(o["view"] == 0 and o["iou"] == 0.4 for o in median)  # the middle of 0.0 .. 0.8
    thirds = _figure_objects(metrics, 3)
    assert [o["iou"] for o in thirds] == [0.1, 0.4, 0.7] * len(CATEGORIES)
    few = _figure_objects({"per_object": [o for o in per_object if o["object_id"].endswith("/0")]}, 3)
    assert len(few) == len(CATEGORIES)  # one object of each: shown once
