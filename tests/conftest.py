"""Shared fixtures. Rendering is headless (EGL); torch uses few threads so parallel tests stay fair."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import torch  # noqa: E402

from stereo_occ.config import Config, load_config  # noqa: E402

# One thread: results (and the bit-exact resume test) do not depend on the machine's core count,
# and the many small ops of these tests run no faster with more threads.
torch.set_num_threads(1)

REAL_MESHES = Path(__file__).resolve().parents[2] / "shared" / "real-meshes"

TINY_OVERRIDES = [
    "dataset.shapes.mug=4",
    "dataset.shapes.bowl=4",
    "dataset.shapes.bottle=4",
    "dataset.render.views_per_object=4",
    "dataset.rig.image_size=64",
    "dataset.occupancy.n_uniform=20000",
    "dataset.occupancy.n_surface=10000",
    "dataset.splits.train=0.5",
    "dataset.splits.val=0.25",
    "dataset.splits.test=0.25",
    "data.points_per_sample=512",
    "data.num_workers=0",
]


def tiny_config(*extra: str) -> Config:
    """A dataset of 12 procedural objects, 4 views each, 64x64: builds in seconds."""
    return load_config(None, TINY_OVERRIDES + list(extra))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A built tiny dataset folder, shared by the whole test session (read-only for tests)."""
    from stereo_occ.data.build import build_dataset

    out = tmp_path_factory.mktemp("tiny") / "dataset"
    summary = build_dataset(tiny_config(), out, workers=1)
    assert not summary.failed
    return out


@pytest.fixture(scope="session")
def real_meshes() -> Path:
    if not REAL_MESHES.is_dir():
        pytest.skip(f"{REAL_MESHES} not found")
    return REAL_MESHES
