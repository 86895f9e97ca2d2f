"""evaluate_checkpoint on the tiny dataset: frames are right (an oracle scores perfectly), outputs complete."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from stereo_occ.config import CATEGORIES, EvalConfig, to_dict
from stereo_occ.data.dataset import StereoOccupancyDataset, dataset_config
from stereo_occ.data.occupancy import box_half_side, inside
from stereo_occ.evaluation.evaluate import (
    SUMMARY_METRICS,
    ObjectTruth,
    evaluate_checkpoint,
    evaluate_item,
    inference_dtype,
    select_objects,
)
from stereo_occ.errors import UserError
from stereo_occ.models import build_model
from stereo_occ.training.checkpoint import save_checkpoint
from stereo_occ.training.distributed import cpu_computes_bf16

from conftest import tiny_config

FAST_EVAL = EvalConfig(n_surface_points=5000, mise_resolution=16, mise_steps=2)


class OracleModel(torch.nn.Module):
    """Answers with the true occupancy of one object in one view: decodes rig-frame points by
    rotating them back into the object frame and testing containment in the ground-truth mesh."""

    def __init__(self, mesh: trimesh.Trimesh, rotation: np.ndarray):
        super().__init__()
        self.mesh = mesh
        self.rotation = rotation
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def encode(self, left, right, cameras):
        return torch.zeros(left.shape[0], 1)

    def decode(self, points, code):
        p_obj = points[0].double().numpy() @ self.rotation  # p_rig = R p_obj
        occupied = inside(self.mesh, p_obj)
        return torch.from_numpy(np.where(occupied, 20.0, -20.0))[None].float()


def test_select_objects_takes_categories_in_turn():
    cats = ["mug"] * 5 + ["bowl"] * 3 + ["bottle"] * 2
    assert select_objects(cats, 0) == list(range(10))
    assert [cats[i] for i in select_objects(cats, 4)] == ["mug", "mug", "bowl", "bottle"]


@pytest.mark.slow
def test_oracle_scores_perfectly_in_the_rig_frame(tiny_dataset):
    data = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=0, uniform_only=True, views=2, load_depth=True)
    box = box_half_side(dataset_config(tiny_dataset).occupancy)
    item = data[1]  # object 0, view 1: a rotation that is not the identity
    rotation = item["rotation"].numpy().astype(np.float64)
    assert not np.allclose(rotation, np.eye(3), atol=0.1)
    gt = data.objects[0].mesh()
    truth = ObjectTruth.from_object(data.objects[0], EvalConfig())
    result, mesh = evaluate_item(
        OracleModel(gt, rotation), item, truth, EvalConfig(), box,
        object_id=data.object_ids[0], category=data.categories[0],
    )
    assert result.iou > 0.999
    assert result.iou_given_depth > 0.999 and result.iou_lost_seen == 0.0  # nothing it predicts is seen empty
    assert result.mesh_iou > 0.9
    print(result)
    # What 128^3 marching cubes of a binary function can reach (vertices within half a cell)
    assert result.chamfer_l1 < 0.008
    assert result.normal_consistency > 0.9
    assert result.fscore > 0.9
    # The predicted mesh is in the rig frame: it contains the view's occupied (rig-frame) points.
    occupied = item["points"].numpy()[item["occupancies"].numpy() > 0.5]
    assert inside(mesh, occupied).mean() > 0.95


def test_evaluation_runs_the_network_in_the_precision_it_trained_in(tiny_dataset):
    """eval.precision=auto is training's auto: bf16 for the camera-aware models on a CPU with native
    bf16, fp32 for the study's; evaluate_item decodes in it, and bf16 moves the numbers only a little."""
    rig_cfg = tiny_config("model.name=rig-stereo", "model.hidden_dim=16", "model.n_blocks=1", "model.image_channels=8",
                          "model.volume_channels=8", "model.volume_resolution=8")
    mono_cfg = tiny_config("model.name=mono", "model.code_dim=16", "model.hidden_dim=16", "model.n_blocks=1")
    rig_cfg.dataset = mono_cfg.dataset = dataset_config(tiny_dataset)
    torch.manual_seed(0)
    rig, mono = build_model(rig_cfg.model, rig_cfg.dataset.rig), build_model(mono_cfg.model, mono_cfg.dataset.rig)
    assert inference_dtype(mono, "auto") is None
    assert inference_dtype(rig, "auto") == (torch.bfloat16 if cpu_computes_bf16() else None)
    assert inference_dtype(rig, "fp32") is None and inference_dtype(mono, "bf16") == torch.bfloat16

    data = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=0, uniform_only=True, views=1,
                                  load_depth=True)
    truth = ObjectTruth.from_object(data.objects[0], FAST_EVAL)
    box = box_half_side(dataset_config(tiny_dataset).occupancy)
    decoder_dtypes: list[torch.dtype] = []
    last_linear = [m for m in rig.modules() if isinstance(m, torch.nn.Linear)][-1]
    last_linear.register_forward_hook(lambda module, args, out: decoder_dtypes.append(out.dtype))
    results = {}
    for precision in ("fp32", "bf16"):
        decoder_dtypes.clear()
        eval_cfg = replace(FAST_EVAL, precision=precision, threshold=0.5)
        results[precision], _ = evaluate_item(rig.eval(), data[0], truth, eval_cfg, box,
                                              object_id=data.object_ids[0], category=data.categories[0])
        expected = torch.float32 if precision == "fp32" else torch.bfloat16
        assert decoder_dtypes and set(decoder_dtypes) == {expected}, precision
    assert results["bf16"].iou == pytest.approx(results["fp32"].iou, abs=0.05)
    with pytest.raises(UserError, match="eval.precision"):
        tiny_config("eval.precision=half")


@pytest.mark.slow
def test_evaluate_untrained_checkpoint_writes_every_metric(tiny_dataset, tmp_path):
    cfg = tiny_config("model.name=mono", "model.code_dim=16", "model.hidden_dim=16", "model.n_blocks=1")
    cfg.dataset = dataset_config(tiny_dataset)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    checkpoint = tmp_path / "model.pt"
    state = {"format_version": 1, "model_name": "mono", "config": to_dict(cfg), "model": model.state_dict()}
    save_checkpoint(checkpoint, state)

    out = tmp_path / "eval"
    results = evaluate_checkpoint(checkpoint, tiny_dataset, split="test", out=out, eval_cfg=FAST_EVAL)

    n_test = len((tiny_dataset / "splits" / "test.txt").read_text().split())
    for metric in SUMMARY_METRICS:
        assert set(results[metric]) == set(CATEGORIES) | {"mean"}
        values = [v for v in results[metric].values() if v is not None]
        assert values and all(np.isfinite(values))
    assert 0.0 <= results["iou"]["mean"] <= 1.0
    assert len(results["per_object"]) == n_test
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["iou"] == pytest.approx(results["iou"])
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["object_id"] for r in rows] == [o["object_id"] for o in results["per_object"]]
    for row in rows:
        assert (out / "meshes" / f"{row['object_id']}.ply").is_file()

    # max_objects keeps a category-balanced subset
    few = evaluate_checkpoint(checkpoint, tiny_dataset, split="test", eval_cfg=replace(FAST_EVAL, max_objects=1))
    assert len(few["per_object"]) == 1


class EmptyModel(OracleModel):
    """Predicts that nothing is occupied anywhere."""

    def decode(self, points, code):
        return torch.full(points.shape[:2], -20.0)


@pytest.mark.slow
def test_empty_prediction_gets_the_worst_values(tiny_dataset):
    data = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=0, uniform_only=True, views="first",
                                  load_depth=True)
    item = data[0]
    gt = data.objects[0].mesh()
    truth = ObjectTruth.from_object(data.objects[0], FAST_EVAL)
    result, mesh = evaluate_item(
        EmptyModel(gt, np.eye(3)), item, truth, FAST_EVAL, 0.55, object_id=data.object_ids[0], category=data.categories[0]
    )
    assert len(mesh.faces) == 0 and result.n_faces == 0
    assert result.iou == 0.0 and result.mesh_iou == 0.0
    assert result.chamfer_l1 == pytest.approx(np.sqrt(3)) and result.fscore == 0.0 and result.normal_consistency == 0.0
    # every occupied point is missed, and (margin aside) the views' depth never shows one empty
    assert result.iou_lost_seen < 0.01
    assert result.iou_lost_surface + result.iou_lost_hidden + result.iou_lost_outside > 0.99
    with pytest.raises(UserError, match="depth maps"):
        evaluate_item(EmptyModel(gt, np.eye(3)), {k: v for k, v in item.items() if k != "depth"}, truth, FAST_EVAL,
                      0.55, object_id=data.object_ids[0], category=data.categories[0])


class FullModel(OracleModel):
    """Predicts that the whole box is occupied."""

    def decode(self, points, code):
        return torch.full(points.shape[:2], 20.0)


@pytest.mark.slow
def test_what_the_views_show_empty_is_what_a_full_box_loses(tiny_dataset):
    data = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=0, uniform_only=True, views="first",
                                  load_depth=True)
    truth = ObjectTruth.from_object(data.objects[0], FAST_EVAL)
    result, _ = evaluate_item(FullModel(data.objects[0].mesh(), np.eye(3)), data[0], truth, FAST_EVAL, 0.55,
                              object_id=data.object_ids[0], category=data.categories[0])
    lost = result.iou_lost_seen + result.iou_lost_surface + result.iou_lost_hidden + result.iou_lost_outside
    assert result.iou + lost == pytest.approx(1.0)
    assert result.iou_lost_seen > 0.5 > result.iou_lost_hidden  # most of the box is in view and empty
    assert result.iou_given_depth > result.iou + 0.2


@pytest.mark.slow
def test_two_worker_processes_give_the_same_numbers(tiny_dataset, tmp_path):
    cfg = tiny_config("model.name=rig-stereo", "model.hidden_dim=16", "model.n_blocks=1", "model.image_channels=8",
                      "model.volume_channels=8", "model.volume_resolution=8")
    cfg.dataset = dataset_config(tiny_dataset)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, {"format_version": 1, "model_name": "rig-stereo", "config": to_dict(cfg),
                                 "model": model.state_dict()})
    one = evaluate_checkpoint(checkpoint, tiny_dataset, out=tmp_path / "one", eval_cfg=FAST_EVAL)
    two = evaluate_checkpoint(checkpoint, tiny_dataset, out=tmp_path / "two", eval_cfg=FAST_EVAL, workers=2)
    assert len(one["per_object"]) == len(two["per_object"]) > 1
    for a, b in zip(one["per_object"], two["per_object"]):
        assert (a["object_id"], a["view"], a["n_faces"], a["mise_queries"]) == (b["object_id"], b["view"], b["n_faces"], b["mise_queries"])
        for key in ("iou", "mesh_iou", "chamfer_l1", "normal_consistency", "fscore"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert sorted(p.name for p in (tmp_path / "two" / "meshes").rglob("*.ply")) == sorted(
        p.name for p in (tmp_path / "one" / "meshes").rglob("*.ply"))
    with pytest.raises(UserError, match="workers"):
        evaluate_checkpoint(checkpoint, tiny_dataset, eval_cfg=FAST_EVAL, workers=0)
