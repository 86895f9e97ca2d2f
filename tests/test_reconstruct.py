"""Reconstruction from a user's stereo pair: input checks, calibration checks, mesh files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import trimesh
import yaml
from PIL import Image

from stereo_occ.config import ConfigChanges, ReconstructConfig, load_config, to_dict
from stereo_occ.data.rig import StereoRig
from stereo_occ.errors import UserError
from stereo_occ.evaluation.calibration import Calibration, differences_from_rig, load_calibration
from stereo_occ.evaluation.reconstruct import InputWarning, Reconstructor, reconstruct_files
from stereo_occ.models import build_model
from stereo_occ.training.checkpoint import save_checkpoint, saved_config

SIZE = 32
SMALL = [
    f"dataset.rig.image_size={SIZE}",
    "dataset.render.background=[0.0,0.5,1.0]",
    "model.name=stereo",
    "model.code_dim=32",
    "model.hidden_dim=32",
    "model.n_blocks=1",
    "model.feature_dim=8",
    "model.max_disparity=4",
    "eval.mise_resolution=8",
    "eval.mise_steps=1",
    "reconstruct.mise_steps=1",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained small stereo model saved as a real checkpoint."""
    cfg = load_config(None, SMALL)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    state = {"format_version": 1, "model_name": cfg.model.name, "config": to_dict(cfg), "model": model.state_dict()}
    save_checkpoint(path, state)
    return path


@pytest.fixture(scope="module")
def reconstructor(checkpoint):
    return Reconstructor.from_checkpoint(checkpoint, device="cpu")


def rgb(size=SIZE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_rgb_pair_at_training_size_passes_unchanged(reconstructor):
    left, right = rgb(seed=1), rgb(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = reconstructor.prepare(left, right)
    assert np.array_equal(a, left) and np.array_equal(b, right)


def test_images_of_different_sizes_are_refused(reconstructor):
    with pytest.raises(UserError, match="differ in size: 32x32 vs 40x40"):
        reconstructor.prepare(rgb(), rgb(40))


def test_grey_image_is_converted_with_a_warning(reconstructor):
    grey = np.full((SIZE, SIZE), 77, dtype=np.uint8)
    with pytest.warns(InputWarning, match="left image is greyscale"):
        left, _ = reconstructor.prepare(grey, rgb())
    assert left.shape == (SIZE, SIZE, 3) and np.all(left == 77)


def test_rgba_is_composited_on_the_training_background(reconstructor):
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    rgba[:16, :, :3] = 200
    rgba[:16, :, 3] = 255  # top half opaque grey, bottom half fully transparent
    with pytest.warns(InputWarning, match="right image has transparency"):
        _, right = reconstructor.prepare(rgb(), rgba)
    assert np.all(right[:16] == 200)
    assert np.all(right[16:] == [0, 128, 255])  # dataset.render.background from the checkpoint


def test_square_image_of_other_size_is_resized_with_a_warning(reconstructor):
    big = np.kron(rgb(), np.ones((4, 4, 1), dtype=np.uint8))  # 128x128 blocks of the 32x32 image
    with pytest.warns(InputWarning, match="resized to the training resolution 32x32"):
        left, right = reconstructor.prepare(big, big)
    assert left.shape == (SIZE, SIZE, 3)
    assert np.array_equal(left, rgb())  # shrinking averages each 4x4 block
    with pytest.warns(InputWarning, match="16x16; resized"):
        small, _ = reconstructor.prepare(rgb(16), rgb(16))
    assert small.shape == (SIZE, SIZE, 3)


def test_other_aspect_ratio_is_refused(reconstructor):
    wide = np.zeros((SIZE, 2 * SIZE, 3), dtype=np.uint8)
    with pytest.raises(UserError, match="64x32 .* square 32x32"):
        reconstructor.prepare(wide, wide)


def test_bad_arrays_and_missing_files(reconstructor, tmp_path):
    with pytest.raises(UserError, match="uint8"):
        reconstructor.prepare(rgb().astype(np.float32), rgb())
    with pytest.raises(UserError, match="left image not found"):
        reconstructor.prepare(tmp_path / "nope.png", rgb())
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(UserError, match="junk.png: not a readable image"):
        reconstructor.prepare(rgb(), junk)


def test_mesh_is_inside_the_object_sphere_and_watertight(reconstructor):
    mesh = reconstructor.reconstruct(rgb(seed=3), rgb(seed=4))
    assert len(mesh.faces) > 0 and mesh.is_watertight
    # Vertices lie on grid edges with one end inside the sphere: at most one cell beyond it.
    cell = 2 * reconstructor.box / (reconstructor.resolution * 2**reconstructor.mise_steps)
    assert np.linalg.norm(mesh.vertices, axis=1).max() <= reconstructor.object_radius + cell


def test_meshes_are_extracted_in_the_sphere_the_training_rig_held_its_objects_in(reconstructor):
    padding = reconstructor.cfg.dataset.occupancy.padding
    assert reconstructor.object_radius == pytest.approx(math.sqrt(3) / 2 + padding / 2)
    cfg = load_config(None, SMALL + ["dataset.rig.fov_deg=46", "dataset.rig.object_radius=0.75"])
    narrow = Reconstructor(reconstructor.model, cfg)
    assert narrow.object_radius == pytest.approx(0.75 + padding / 2) and narrow.box == narrow.object_radius


def test_reconstruct_refines_by_its_own_section_not_by_the_evaluation_one(checkpoint):
    """A checkpoint that evaluated on a coarse grid (eval.mise_steps=1) still gives fine meshes."""
    coarse = Reconstructor.from_checkpoint(checkpoint, device="cpu")  # reconstruct.mise_steps=1
    fine = Reconstructor.from_checkpoint(checkpoint, device="cpu", reconstruct_cfg=ReconstructConfig(mise_steps=2))
    assert fine.eval_cfg.mise_steps == coarse.eval_cfg.mise_steps == 1
    left, right = rgb(seed=3), rgb(seed=4)
    assert len(fine.raw_mesh(left, right).faces) > 2 * len(coarse.raw_mesh(left, right).faces)
    with pytest.raises(UserError, match="reconstruct.mise_steps"):
        Reconstructor.from_checkpoint(checkpoint, device="cpu", reconstruct_cfg=ReconstructConfig(mise_steps=-1))


def test_config_changes_apply_on_top_of_the_checkpoints_own_settings(tmp_path):
    """``reconstruct CKPT ... reconstruct.mise_steps=2`` keeps the checkpoint's threshold (chosen on
    validation) and its evaluation grid; it changes only what it names."""
    cfg = load_config(None, SMALL)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"format_version": 1, "model_name": cfg.model.name, "config": to_dict(cfg),
                           "model": model.state_dict(), "threshold": 0.3})
    changed = Reconstructor.from_checkpoint(path, device="cpu", changes=ConfigChanges(overrides=("reconstruct.mise_steps=2",)))
    assert (changed.eval_cfg.threshold, changed.resolution, changed.mise_steps) == (0.3, 8, 2)
    fixed = Reconstructor.from_checkpoint(path, device="cpu", changes=ConfigChanges(overrides=("eval.threshold=0.6",)))
    assert (fixed.eval_cfg.threshold, fixed.resolution, fixed.mise_steps) == (0.6, 8, 1)
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text("reconstruct:\n  max_faces: 500\n")
    from_file = Reconstructor.from_checkpoint(path, device="cpu", changes=ConfigChanges(yaml_file))
    assert (from_file.eval_cfg.threshold, from_file.resolution, from_file.max_faces) == (0.3, 8, 500)
    with pytest.raises(UserError, match="reconstruct.mise_stepz"):
        Reconstructor.from_checkpoint(path, device="cpu", changes=ConfigChanges(overrides=("reconstruct.mise_stepz=2",)))
    # what `stereo-occ evaluate CKPT ... key=value` evaluates with: the checkpoint's eval section, changed
    evaluated = ConfigChanges(overrides=("eval.n_surface_points=1000",)).apply(saved_config(path)).eval
    assert (evaluated.threshold, evaluated.mise_resolution, evaluated.n_surface_points) == (0.3, 8, 1000)


def write_calibration(path, rig: StereoRig, size=SIZE, **change):
    data = {
        "image_size": [size, size],
        "left": {"K": rig.K.tolist(), "world_to_cam": rig.world_to_cam[0].tolist()},
        "right": {"K": rig.K.tolist(), "world_to_cam": rig.world_to_cam[1].tolist()},
    }
    data.update(change)
    path.write_text(yaml.safe_dump(data))
    return path


def test_calibration_of_the_training_rig_matches_also_at_another_resolution(tmp_path):
    cfg = load_config(None, SMALL)
    rig = StereoRig.from_config(cfg.dataset.rig)
    assert differences_from_rig(load_calibration(write_calibration(tmp_path / "a.yaml", rig)), rig) == []
    big = Calibration.from_rig(rig).resized(4 * SIZE, 4 * SIZE)
    assert differences_from_rig(big, rig) == []
    assert big.K[0, 0, 0] == pytest.approx(4 * rig.K[0, 0])


def test_calibration_differences_are_named(tmp_path):
    cfg = load_config(None, SMALL + ["dataset.rig.fov_deg=70", f"dataset.rig.half_angle={math.pi / 8}"])
    other = StereoRig.from_config(cfg.dataset.rig)
    rig = StereoRig.from_config(load_config(None, SMALL).dataset.rig)
    found = " ".join(differences_from_rig(Calibration.from_rig(other), rig))
    assert "left fx" in found and "right orientation differs" in found and "left position" in found


@pytest.mark.parametrize(
    "change, message",
    [
        ({"left": {"K": [[1, 0], [0, 1]]}}, "left.world_to_cam|left.K"),
        (
            {"right": {"K": [[30, 0, 16], [0, 30, 16], [0, 0, 1]], "world_to_cam": np.diag([1, 1, -1, 1]).tolist()}},
            "reflection",
        ),
        ({"image_size": [32]}, "image_size"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_bad_calibration_files(tmp_path, change, message):
    rig = StereoRig.from_config(load_config(None, SMALL).dataset.rig)
    with pytest.raises(UserError, match=message):
        load_calibration(write_calibration(tmp_path / "c.yaml", rig, **change))


def test_reconstruct_files_writes_meshes_and_warns_about_calibration(checkpoint, tmp_path):
    for name, seed in (("left.png", 5), ("right.png", 6)):
        Image.fromarray(rgb(seed=seed)).save(tmp_path / name)
    rig = StereoRig.from_config(load_config(None, SMALL + ["dataset.rig.fov_deg=75"]).dataset.rig)
    calibration = write_calibration(tmp_path / "cal.yaml", rig)
    with pytest.warns(InputWarning, match="differs from the rig the model was trained on"):
        out = reconstruct_files(
            checkpoint, tmp_path / "left.png", tmp_path / "right.png", tmp_path / "m.glb", calibration
        )
    assert len(trimesh.load(out, force="mesh").faces) > 0
    with pytest.raises(UserError, match="m.stl: unsupported mesh format"):
        reconstruct_files(checkpoint, tmp_path / "left.png", tmp_path / "right.png", tmp_path / "m.stl")
    with pytest.raises(UserError, match="calibration is for 64x64"):
        reconstruct_files(
            checkpoint, tmp_path / "left.png", tmp_path / "right.png", tmp_path / "m.ply",
            write_calibration(tmp_path / "c64.yaml", rig, size=64),
        )
    assert not (tmp_path / "m.ply").exists() and not (tmp_path / "m.stl").exists()
