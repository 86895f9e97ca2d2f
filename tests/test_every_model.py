"""Every registered model goes through the same code paths: train, resume exactly, evaluate, reconstruct."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from stereo_occ.config import EvalConfig, load_config, to_dict
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.data.rig import StereoRig
from stereo_occ.evaluation.calibration import load_calibration
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair, evaluate_checkpoint
from stereo_occ.evaluation.reconstruct import InputWarning, Reconstructor
from stereo_occ.models import MODELS, build_model
from stereo_occ.training.checkpoint import load_checkpoint, save_checkpoint
from stereo_occ.training.trainer import train

SMALL = [
    "dataset.rig.image_size=64",
    "model.code_dim=32",
    "model.hidden_dim=32",
    "model.n_blocks=1",
    "model.feature_dim=16",
    "model.image_channels=8",
    "model.volume_channels=8",
    "model.volume_resolution=8",
    "data.points_per_sample=256",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.lr=1e-3",
    "train.warmup_iterations=2",
    "train.log_every=1",
    "train.val_points=512",
    "train.val_every=2",
    "train.checkpoint_every=2",
]
FAST_EVAL = EvalConfig(n_iou_points=4000, n_surface_points=2000, mise_resolution=16, mise_steps=1)


@pytest.mark.slow
@pytest.mark.parametrize("name, extra", [(name, ()) for name in sorted(MODELS)] + [
    # the volume along the axis of an estimator trained first (model.align_axis), positions in both
    # frames, the stereo features with the point's depth
    ("rig-stereo", ("model.align_axis=true", "model.rig_positions=true", "model.stereo_depth=true", "axis.steps=4",
                    "axis.batch_size=8")),
    # the classical plane sweep of the pair read per point, refined and cached (model.sweep_planes,
    # model.sweep_refine, models/plane_sweep.py, models/pair_cache.py): exact resume holds with the cache
    ("rig-stereo", ("model.sweep_planes=8", "model.sweep_refine=true")),
])
def test_every_model_trains_resumes_exactly_evaluates_and_reconstructs(name, extra, tiny_dataset, tmp_path):
    cfg = lambda iterations: load_config(None, [*SMALL, f"model.name={name}", f"train.iterations={iterations}", *extra])  # noqa: E731
    train(cfg(5), tiny_dataset, tmp_path / "full")
    # "Killed" after its checkpoint at iteration 2: a run of 2 iterations of the same schedule (the
    # warm-up depends only on the step; a cosine schedule also on train.iterations, see test_training).
    train(cfg(2), tiny_dataset, tmp_path / "killed")
    train(cfg(5), tiny_dataset, tmp_path / "killed", resume=True)
    a = load_checkpoint(tmp_path / "full" / "model_last.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "model_last.pt")["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    checkpoint = tmp_path / "full" / "model_best.pt"
    results = evaluate_checkpoint(checkpoint, tiny_dataset, split="test", out=tmp_path / "eval", eval_cfg=FAST_EVAL)
    assert results["model"] == name and 0.0 <= results["iou"]["mean"] <= 1.0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["per_object"]

    item = StereoOccupancyDataset(tiny_dataset, "test", points_per_sample=1, views="first")[0]
    to_uint8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    reconstructor = Reconstructor.from_checkpoint(checkpoint, eval_cfg=FAST_EVAL, device="cpu")
    mesh = reconstructor.raw_mesh(to_uint8(item["left"]), to_uint8(item["right"]))
    assert len(mesh.faces) == 0 or mesh.is_watertight


def _calibration_file(path, rig: StereoRig) -> str:
    data = {"image_size": [rig.image_size, rig.image_size]}
    for camera, w2c in zip(("left", "right"), rig.world_to_cam):
        data[camera] = {"K": rig.K.tolist(), "world_to_cam": w2c.tolist()}
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("name, projects", [("rig-stereo", True), ("rig-mono", True), ("stereo", False)])
def test_reconstruct_with_the_calibration_of_another_rig_changes_the_projection(name, projects, tmp_path):
    cfg = load_config(None, [*SMALL, f"model.name={name}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"format_version": 1, "model_name": name, "config": to_dict(cfg), "model": model.state_dict()})
    reconstructor = Reconstructor.from_checkpoint(path, device="cpu")
    wide = StereoRig.from_config(load_config(None, [*SMALL, "dataset.rig.fov_deg=75", "dataset.rig.half_angle=0.3"]).dataset.rig)
    calibration = load_calibration(_calibration_file(tmp_path / "cal.yaml", wide))

    own, other = reconstructor.cameras(), reconstructor.cameras(calibration)
    point = torch.tensor([[[0.2, -0.1, 0.15]]])
    assert not torch.allclose(own.project(point, 1)[0], other.project(point, 1)[0], atol=0.5)
    assert np.allclose(other.project(point, 1)[0][0].numpy(), wide.project(point[0].double().numpy(), 1)[0], atol=1e-3)

    rng = np.random.default_rng(0)
    left, right = (torch.from_numpy(rng.random((3, 64, 64), dtype=np.float32)) for _ in range(2))
    points = rng.uniform(-0.5, 0.5, (500, 3))
    with_rig = decode_probs(model.eval(), encode_pair(model, left, right, own), points, 4096)
    with_calibration = decode_probs(model, encode_pair(model, left, right, other), points, 4096)
    assert (not np.allclose(with_rig, with_calibration, atol=1e-6)) == projects
    with pytest.warns(InputWarning, match="projects with the given cameras" if projects else "takes no camera input"):
        reconstructor.check_calibration(calibration, 64, 64)
