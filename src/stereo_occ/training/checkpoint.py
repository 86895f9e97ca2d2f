"""Checkpoint files: written atomically, read without running code, and enough to rebuild the model.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format_version": 1, "model_name": "stereo", "config": to_dict(cfg), "model": state_dict,
     "optimizer": ..., "iteration": n, "rng": {...}, "best_val_iou": x | None, ...}

Its ``config`` holds the whole training config with the *dataset's own* config (from the dataset's
``meta.json``) in its ``dataset`` section, so a checkpoint alone tells reconstruction the image size
and the cameras. Loading always uses ``torch.load(weights_only=True)``: a checkpoint from a stranger
can hold tensors and plain data but can never run code, which is also why the RNG states below are
stored as tensors and ints rather than as numpy objects.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, from_dict
from ..errors import UserError

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely (``weights_only``); UserError naming the file when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one loses its directory
        raise UserError(f"{path}: not a readable checkpoint (truncated, or not a file written by torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged archives and unsafe pickles fail in many ways
        text = str(exc)
        if "unsupported global" in text.lower():
            reason = "it holds objects other than tensors and plain data; refused, loading them could run code"
        else:
            reason = f"damaged: {type(exc).__name__}"
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or "format_version" not in state or "model_name" not in state:
        raise UserError(f"{path}: not a stereo-occ checkpoint (no format_version/model_name)")
    if state["format_version"] != FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {state['format_version']!r} is not supported (this version reads "
            f"{FORMAT_VERSION})"
        )
    return state


def checkpoint_config(state: dict, path: str | Path = "checkpoint") -> Config:
    """The typed config stored in a checkpoint."""
    try:
        return from_dict(state["config"])
    except (UserError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: its stored config cannot be read ({exc})") from None


def load_weights(model: torch.nn.Module, state_dict: dict, path: str | Path, model_name: str) -> None:
    """``load_state_dict`` that explains a mismatch (usually a checkpoint of another model) in one line."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
        raise UserError(
            f"{path}: its weights do not fit the {model_name!r} model (a checkpoint of another model, "
            f"size or stereo-occ version?): {detail[:160]}"
        ) from None


def saved_config(path: str | Path, state: dict | None = None) -> Config:
    """The config a checkpoint was trained with, its eval threshold the one chosen on validation."""
    from ..evaluation.threshold import resolved

    state = load_checkpoint(path) if state is None else state
    cfg = checkpoint_config(state, path)
    cfg.eval = resolved(cfg.eval, state.get("threshold"))
    return cfg


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """Rebuild the trained model from the checkpoint alone (model config + the dataset's rig), in eval
    mode, with its eval section's ``axis_copies``."""
    from ..models import build_model

    state = load_checkpoint(path)
    cfg = saved_config(path, state)
    if cfg.model.name != state["model_name"]:
        raise UserError(
            f"{path}: model_name {state['model_name']!r} disagrees with its config's model.name "
            f"{cfg.model.name!r}"
        )
    if not isinstance(state.get("model"), dict):
        raise UserError(f"{path}: checkpoint holds no model weights")
    model = build_model(cfg.model, cfg.dataset.rig)
    load_weights(model, state["model"], path, cfg.model.name)
    model.set_axis_copies(cfg.eval.axis_copies)  # as it validated (evaluate and reconstruct may set another)
    model.to(device).eval()
    return model, cfg


# --- RNG state as weights_only-safe data --------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain values."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
