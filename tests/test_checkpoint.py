"""Checkpoints: atomic writes, safe loading, clear errors, and a model rebuilt from the file alone."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_occ.config import Config, load_config, to_dict
from stereo_occ.errors import UserError
from stereo_occ.training.checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    load_checkpoint,
    load_model,
    restore_rng_state,
    save_checkpoint,
)

SMALL_MODEL = ["model.code_dim=32", "model.hidden_dim=32", "model.n_blocks=1", "dataset.rig.image_size=64"]


def small_config(name: str) -> Config:
    return load_config(None, SMALL_MODEL + [f"model.name={name}"])


def checkpoint_of(cfg: Config, state_dict: dict, model_name: str | None = None) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model_name": model_name or cfg.model.name,
        "config": to_dict(cfg),
        "model": state_dict,
        "iteration": 0,
    }


class _RunsCode:
    """Unpickling this would create a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_save_is_atomic_and_roundtrips(tmp_path):
    path = tmp_path / "run" / "ckpt.pt"
    state = {"format_version": FORMAT_VERSION, "model_name": "mono", "w": torch.arange(5.0), "best": None}
    save_checkpoint(path, state)
    assert not path.with_name(path.name + ".tmp").exists()
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["best"] is None


def test_code_in_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    cfg = small_config("mono")
    evil = checkpoint_of(cfg, {"weight": torch.zeros(1)})
    evil["payload"] = _RunsCode(marker)
    path = tmp_path / "evil.pt"
    torch.save(evil, path)  # torch.save pickles anything; loading must refuse it
    with pytest.raises(UserError, match="evil.pt.*could run code"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="evil.pt"):
        load_model(path)
    assert not marker.exists()


def test_truncated_garbage_and_missing_files_are_user_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"format_version": FORMAT_VERSION, "model_name": "mono", "w": torch.randn(1000)})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    for path in (truncated, garbage, tmp_path / "missing.pt"):
        with pytest.raises(UserError, match=path.name):
            load_checkpoint(path)


def test_foreign_file_without_our_keys_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(UserError, match="not a stereo-occ checkpoint"):
        load_checkpoint(path)
    torch.save({"format_version": 99, "model_name": "mono"}, path)
    with pytest.raises(UserError, match="format"):
        load_checkpoint(path)


def test_load_model_rebuilds_from_the_checkpoint_alone(tmp_path):
    from stereo_occ.models import build_model

    cfg = small_config("mono")
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    path = tmp_path / "mono.pt"
    save_checkpoint(path, checkpoint_of(cfg, model.state_dict()))
    loaded, loaded_cfg = load_model(path)
    assert loaded_cfg.model.name == "mono" and loaded_cfg.dataset.rig.image_size == 64
    assert not loaded.training
    images = torch.rand(1, 3, 64, 64)
    points = torch.rand(1, 10, 3) - 0.5
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(images, images, points), loaded(images, images, points))


def test_weights_of_another_model_are_a_user_error(tmp_path):
    from stereo_occ.models import build_model

    mono_cfg, stereo_cfg = small_config("mono"), small_config("stereo")
    mono_weights = build_model(mono_cfg.model, mono_cfg.dataset.rig).state_dict()
    path = tmp_path / "mislabelled.pt"
    save_checkpoint(path, checkpoint_of(stereo_cfg, mono_weights))  # says stereo, holds mono weights
    with pytest.raises(UserError, match="mislabelled.pt.*do not fit the 'stereo' model"):
        load_model(path)
    save_checkpoint(path, checkpoint_of(stereo_cfg, mono_weights, model_name="mono"))
    with pytest.raises(UserError, match="disagrees"):
        load_model(path)


def test_rng_state_survives_a_weights_only_roundtrip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in the legacy numpy state
    state = capture_rng_state()
    path = tmp_path / "rng.pt"
    save_checkpoint(path, {"format_version": FORMAT_VERSION, "model_name": "mono", "rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
