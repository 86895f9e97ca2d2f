"""A user's own meshes: ``<root>/<category>/**/*.{obj,ply,stl,off,glb,gltf}``.

Files may be in any unit and with any up axis: loading normalises the size, and every rendered view
uses a uniformly random rotation, so the up axis carries no information the model could learn from.

Sub-folder rules (chosen so a mistake never silently drops shapes):
- a folder named after a category that is not asked for is skipped quietly (the user chose that);
- a folder whose name is close to a category name ("mugs", "Bottle", "bwl") is an error that says
  which category it looks like, since it almost certainly holds shapes the user wants;
- any other folder (``textures``, ``old``) is skipped with a warning, hidden ones (``.git``) quietly;
- a requested category without a folder, or with no mesh files in it, is an error.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path

from ..config import CATEGORIES
from ..errors import UserError
from .mesh_ops import MESH_SUFFIXES

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-system-safe name: runs of anything but letters, digits, ``._-`` become ``_``."""
    name = _UNSAFE.sub("_", text).strip("._")
    return name or "mesh"


def looks_like_category(folder_name: str) -> str | None:
    """The category a mistyped folder name most likely meant ("mugs" -> "mug"), else None."""
    lowered = folder_name.lower()
    if lowered in CATEGORIES:
        return lowered
    match = difflib.get_close_matches(lowered, CATEGORIES, n=1, cutoff=0.75)
    return match[0] if match else None


def find_folder_meshes(root: Path, categories: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """For each requested category, ``(name, path)`` of its mesh files, sorted by relative path.

    Names are the file's path under the category folder without its suffix, made file-system safe
    (``brand/Blue Mug.obj`` -> ``brand_Blue_Mug``); the rare clashes (``a.obj`` and ``a.ply``) get
    ``-2``, ``-3``... in sorted order, so names are stable across runs.
    """
    _check_subfolders(root, categories)
    found: dict[str, list[tuple[str, Path]]] = {}
    for category in categories:
        folder = root / category
        if not folder.is_dir():
            raise UserError(
                f"no folder {folder} for category {category!r} "
                f"(add it, or list only the categories you have in dataset.shapes.categories)"
            )
        files = sorted(
            (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES and not _hidden(p, folder)),
            key=lambda p: p.relative_to(folder).as_posix(),
        )
        if not files:
            raise UserError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) in {folder}")
        found[category] = _unique_names(files, folder)
    return found


def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def _check_subfolders(root: Path, categories: list[str]) -> None:
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name in CATEGORIES or sub.name.startswith("."):
            continue
        meant = looks_like_category(sub.name)
        if meant is not None:
            raise UserError(f"folder {sub} looks like category {meant!r}: rename it to {root / meant}")
        log.warning("ignoring folder %s: not a category (%s)", sub, ", ".join(CATEGORIES))


def _unique_names(files: list[Path], folder: Path) -> list[tuple[str, Path]]:
    used: set[str] = set()
    named = []
    for path in files:
        base = safe_name(path.relative_to(folder).with_suffix("").as_posix().replace("/", "_"))
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        named.append((name, path))
    return named
