"""The study as one command: every stage runs once, results.json has the contract's schema, and a
second run skips what is finished."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from conftest import tiny_config
from stereo_occ.config import CATEGORIES
from stereo_occ.errors import UserError
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
METRICS = ("iou", "mesh_iou", "chamfer_l1", "normal_consistency", "fscore")



def test_bad_model_lists_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        run_experiment(tiny_config("experiment.models=[mono,transformer]"), tmp_path / "x")
    with pytest.raises(UserError, match="twice"):
        run_experiment(tiny_config("experiment.models=[mono,mono]"), tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-made


def test_a_run_counts_as_finished_only_with_its_iterations_and_best_checkpoint(tmp_path):
    assert not training_finished(tmp_path, 10)
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 8}))
    (tmp_path / "model_best.pt").write_bytes(b"x")
    assert not training_finished(tmp_path, 10)
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 10}))
    assert training_finished(tmp_path, 10)


@pytest.mark.slow
def test_experiment_end_to_end_then_resumes(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "experiment"
    # Start from the session's tiny dataset (same config): the dataset stage then checks and resumes it.
    shutil.copytree(tiny_dataset, out / "dataset")
    cfg = tiny_config(*FAST)
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
    data = results["dataset"]
    assert data["source"] == "procedural" and data["views_per_object"] == 4 and data["image_size"] == 64
    assert sum(data["counts"][s]["total"] for s in ("train", "val", "test")) == 12
    assert results["machine"]["cores"] >= 1 and results["machine"]["torch"] == torch.__version__

    report = (out / "report.html").read_text()
    assert "0.1896" in report and "0.1153" in report
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
    assert log.count("skipped") == 2 + 2 + 1  # two trainings, two evaluations, the figure
