"""ShapeNetCore on disk: find the mug, bowl and bottle models without loading them.

Two layouts exist and users have either:
- v1: ``<root>/<synset>/<model_id>/model.obj``
- v2: ``<root>/<synset>/<model_id>/models/model_normalized.obj``
The version is detected from the models themselves (both ship a ``taxonomy.json``, so the root alone
does not tell). Model folders without the mesh file (a few exist in both releases) are skipped with a
warning rather than failing the whole import.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import SHAPENET_SYNSETS
from ..errors import UserError
from .folder import safe_name

log = logging.getLogger(__name__)

MODEL_FILES: dict[str, str] = {"v1": "model.obj", "v2": "models/model_normalized.obj"}
"""Where each ShapeNetCore version keeps a model's mesh, relative to the model folder."""


def detect_version(synset_dir: Path) -> str:
    """``"v1"`` or ``"v2"``: the layout of the first model folder that has a mesh."""
    for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir()):
        for version, relative in MODEL_FILES.items():
            if (model_dir / relative).is_file():
                return version
    raise UserError(
        f"no ShapeNetCore models in {synset_dir} (expected <model_id>/{MODEL_FILES['v1']} for v1 "
        f"or <model_id>/{MODEL_FILES['v2']} for v2)"
    )


def find_shapenet_models(root: Path, categories: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """For each requested category, ``(model_id, mesh path)`` sorted by model id."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for category in categories:
        synset = SHAPENET_SYNSETS[category]
        synset_dir = root / synset
        if not synset_dir.is_dir():
            hint = f" (found {synset}.zip: unzip it first)" if (root / f"{synset}.zip").is_file() else ""
            raise UserError(
                f"ShapeNetCore root {root} has no folder {synset} ({category}){hint}; "
                f"point dataset.shapes.root at the folder holding the synset folders"
            )
        relative = MODEL_FILES[detect_version(synset_dir)]
        models = []
        for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            mesh = model_dir / relative
            if mesh.is_file():
                models.append((safe_name(model_dir.name), mesh))
            else:
                log.warning("skipping ShapeNet model %s: no %s", model_dir, relative)
        found[category] = models
    return found
