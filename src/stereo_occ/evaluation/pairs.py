"""Finding the stereo pairs a user wants reconstructed (``stereo-occ reconstruct --pairs SRC``).

``SRC`` is either

* a **folder** with ``<name>_left.<ext>`` and ``<name>_right.<ext>`` images side by side (``ext`` one of
  :data:`IMAGE_SUFFIXES`, in any case; hidden files and other files are ignored), or
* a **text file** with one pair per line, ``LEFT RIGHT``: paths relative to the text file's folder (or
  absolute), quoted when they contain spaces; blank lines and ``#`` comments are skipped. A pair's
  name is its left image's stem without a trailing ``_left``, ``-left`` or ``left`` (the folder's
  name when nothing is left, e.g. ``scene1/left.png``).

Each pair's mesh is written as ``<name>.<format>``, so names must be unique (ignoring case, which
some file systems ignore too). Every mistake is a :class:`UserError` naming the file (and line).
Nothing here imports torch: finding pairs is instant and is done before the model is loaded.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image files a pairs folder is searched for (compared without case)."""

_SIDES = ("left", "right")


@dataclass(frozen=True)
class Pair:
    """One stereo pair: the name its mesh is written under, and its two image files."""

    name: str
    left: Path
    right: Path


def find_pairs(src: str | Path) -> list[Pair]:
    """The stereo pairs in a folder (sorted by name) or a list file (in file order); see the module doc."""
    src = Path(src).expanduser()
    if src.is_dir():
        found = _pairs_in_folder(src)
    elif src.is_file():
        if src.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(
                f"--pairs {src}: this is an image; give a folder of <name>_left/<name>_right images or a "
                "text file with one 'LEFT RIGHT' pair per line (or use --left and --right for one pair)"
            )
        found = _pairs_in_list(src)
    else:
        raise UserError(f"--pairs {src}: no such folder or file")
    seen: dict[str, str] = {}  # name ignoring case -> where the first pair of that name came from
    for pair, where in found:
        key = pair.name.casefold()
        if key in seen:
            raise UserError(
                f"{src}: two pairs are named {pair.name!r} ({seen[key]} and {where}); their meshes would "
                f"overwrite each other as {pair.name}.<format>: rename one"
            )
        seen[key] = where
    return [pair for pair, _ in found]


def pair_name(left: str | Path) -> str:
    """The name of a pair from its left image: the stem without a trailing ``_left``/``-left``/``left``."""
    left = Path(left)
    stem = left.stem
    lower = stem.lower()
    if lower.endswith(("_left", "-left")):
        stem = stem[: -len("_left")]
    elif lower.endswith("left"):
        stem = stem[: -len("left")].rstrip(" ._-")
    return stem or left.parent.name or left.stem


def _side_of(path: Path) -> tuple[str, str] | None:
    """``(name, "left"|"right")`` for ``<name>_left.<ext>`` / ``<name>_right.<ext>`` images, else None."""
    if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    stem = path.stem
    for side in _SIDES:
        tail = "_" + side
        if stem.lower().endswith(tail) and len(stem) > len(tail):
            return stem[: -len(tail)], side
    return None


def _pairs_in_folder(folder: Path) -> list[tuple[Pair, str]]:
    """The pairs of a folder, each with where it came from (its left image's name)."""
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        named = _side_of(path)
        if named is None:
            continue
        name, side = named
        sides = found.setdefault(name, {})
        if side in sides:
            raise UserError(
                f"{folder}: two {side} images for {name!r}: {sides[side].name} and {path.name}; keep one"
            )
        sides[side] = path
    if not found:
        raise UserError(
            f"{folder}: no stereo pairs found; expected <name>_left.<ext> and <name>_right.<ext> images "
            f"({', '.join(s[1:] for s in IMAGE_SUFFIXES)})"
        )
    pairs = []
    for name in sorted(found):
        sides = found[name]
        for side, other in (("left", "right"), ("right", "left")):
            if other not in sides:
                raise UserError(
                    f"{folder}: {sides[side].name} has no {other} image (expected {name}_{other}.<ext>)"
                )
        pairs.append((Pair(name, sides["left"], sides["right"]), sides["left"].name))
    return pairs


def _split_line(line: str) -> list[str]:
    """Whitespace-separated fields; quotes group, ``#`` starts a comment, backslashes are kept."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    lexer.escape = ""  # Windows paths keep their backslashes
    return list(lexer)


def _pairs_in_list(path: Path) -> list[tuple[Pair, str]]:
    """The pairs of a list file, each with where it came from (its line number)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--pairs {path}: not a text file (expected one 'LEFT RIGHT' pair per line)") from None
    base = path.parent
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path} line {number}"
        try:
            fields = _split_line(line)
        except ValueError as exc:  # an unclosed quote
            raise UserError(f"{where}: {exc}") from None
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(
                f"{where}: expected two paths, LEFT RIGHT (got {len(fields)}); quote paths that contain spaces"
            )
        images = []
        for side, field in zip(_SIDES, fields):
            image = Path(field).expanduser()
            image = image if image.is_absolute() else base / image
            if not image.is_file():
                raise UserError(f"{where}: {side} image not found: {image}")
            images.append(image)
        pairs.append((Pair(pair_name(images[0]), images[0], images[1]), f"line {number}"))
    if not pairs:
        raise UserError(f"--pairs {path}: no pairs in the file (expected one 'LEFT RIGHT' pair per line)")
    return pairs
