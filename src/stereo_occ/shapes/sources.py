"""The list of shapes a dataset is built from, whatever their source.

:func:`list_shapes` only looks at names on disk, so a build can list thousands of models instantly,
hand each :class:`ShapeSource` to a worker process (it is a small frozen, picklable record) and
report the few files that fail to load instead of stopping at the first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import trimesh

from ..config import CATEGORIES, ShapesConfig
from ..errors import UserError
from .folder import find_folder_meshes
from .mesh_ops import DEFAULT_RESOLUTION, DEFAULT_SIMPLIFY_TOLERANCE, make_watertight, normalize, read_mesh
from .shapenet import find_shapenet_models

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("procedural", "shapenet", "folder")


@dataclass(frozen=True)
class ShapeSource:
    """One shape to import: where it comes from and how to turn it into a normalised solid."""

    object_id: str  # "<category>/<name>", unique and file-system safe
    category: str  # one of config.CATEGORIES
    source: str  # "procedural" | "shapenet" | "folder"
    origin: str  # the mesh file, or "procedural:<category>:seed=<s>:index=<i>"
    index: int = 0  # procedural: which shape of the category
    seed: int = 0  # procedural generator seed; also seeds the (otherwise random) mesh repair
    watertight_resolution: int = DEFAULT_RESOLUTION
    simplify_tolerance: float = DEFAULT_SIMPLIFY_TOLERANCE

    def load(self) -> trimesh.Trimesh:
        """The shape as a watertight solid, bounding box centred at 0 with longest side 1.

        Raises UserError naming the file when it is corrupt, empty or cannot be made watertight.
        """
        if self.source == "procedural":
            from .procedural import generate  # another module; imported only when needed

            raw = generate(self.category, self.index, self.seed)
        else:
            raw = read_mesh(self.origin)
        try:
            solid = make_watertight(
                normalize(raw),  # repair settings are relative to a unit-size shape
                resolution=self.watertight_resolution,
                simplify_tolerance=self.simplify_tolerance,
                seed=self.seed,
                name=self.origin,
            )
            return normalize(solid)
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(self.origin) else f"{self.origin}: {message}") from None


def list_shapes(cfg: ShapesConfig) -> list[ShapeSource]:
    """Every shape the config asks for, in a fixed order (category order of config.CATEGORIES, then
    name), at most ``cfg.count(category)`` per category (0 = all, for importers). No mesh is read."""
    categories = _requested_categories(cfg)
    if cfg.source == "procedural":
        if cfg.root:
            raise UserError(
                f"dataset.shapes.root is set ({cfg.root}) but dataset.shapes.source is 'procedural'; "
                f"set source to 'shapenet' or 'folder' to import meshes, or unset root"
            )
        return [_procedural(cfg, category, i) for category in categories for i in range(cfg.count(category))]
    if cfg.source not in SOURCES:
        raise UserError(f"unknown shape source {cfg.source!r} (known: {', '.join(SOURCES)})")
    if not cfg.root:
        raise UserError(f"dataset.shapes.source is {cfg.source!r}: set dataset.shapes.root to the folder to import")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise UserError(f"shapes folder not found: {root}")
    if cfg.source == "shapenet":
        found = find_shapenet_models(root, categories)
    else:
        found = find_folder_meshes(root, categories)
    shapes = []
    for category in categories:
        count = cfg.count(category)
        files = found[category] if count == 0 else found[category][:count]
        if 0 < len(files) < count:
            log.warning("%s: asked for %d %s shapes, found %d", root, count, category, len(files))
        shapes += [
            ShapeSource(
                object_id=f"{category}/{name}",
                category=category,
                source=cfg.source,
                origin=str(path),
                seed=cfg.seed,
                watertight_resolution=cfg.watertight_resolution,
                simplify_tolerance=cfg.simplify_tolerance,
            )
            for name, path in files
        ]
    return shapes


def _requested_categories(cfg: ShapesConfig) -> list[str]:
    """The categories asked for, in canonical order, after checking the counts and repair settings."""
    for category in cfg.categories:
        if category not in CATEGORIES:
            raise UserError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        if cfg.count(category) < 0:
            raise UserError(f"dataset.shapes.{category} must be >= 0 (got {cfg.count(category)})")
    if cfg.watertight_resolution < 1:
        raise UserError(f"dataset.shapes.watertight_resolution must be >= 1 (got {cfg.watertight_resolution})")
    if cfg.simplify_tolerance < 0:
        raise UserError(f"dataset.shapes.simplify_tolerance must be >= 0 (got {cfg.simplify_tolerance})")
    return [c for c in CATEGORIES if c in cfg.categories]


def _procedural(cfg: ShapesConfig, category: str, index: int) -> ShapeSource:
    return ShapeSource(
        object_id=f"{category}/proc-{index:04d}",
        category=category,
        source="procedural",
        origin=f"procedural:{category}:seed={cfg.seed}:index={index}",
        index=index,
        seed=cfg.seed,
        watertight_resolution=cfg.watertight_resolution,
        simplify_tolerance=cfg.simplify_tolerance,
    )
