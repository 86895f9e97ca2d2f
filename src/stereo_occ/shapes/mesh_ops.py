"""Turning a mesh file into the solid that occupancy labels need: read, clean, repair, normalise.

Occupancy labels ("is this point inside?") only mean something for a closed, consistently oriented
surface. Scans and procedural shapes usually are one already once texture seams are merged, and must
then pass through untouched (resampling would blur them for no reason). ShapeNet models often are not:
double-sided faces, holes, loose inner parts. Those are rebuilt with the Manifold algorithm of Huang et
al. 2018 ("Robust Watertight Manifold Surface Generation Method for ShapeNet Models", through
point-cloud-utils), which floods the space outside the surface on an octree and keeps the boundary of
what the flood cannot reach, so it copes with holes, flipped and duplicated faces where winding-number
methods cancel out. See docs/shapes.md for the choice and its cost (a thin offset of about one octree
cell).
"""

from __future__ import annotations

import io
from pathlib import Path

import manifold3d
import numpy as np
import point_cloud_utils as pcu
import trimesh

from ..errors import UserError

MESH_SUFFIXES: tuple[str, ...] = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
"""File types the importers read (geometry only)."""

DEFAULT_RESOLUTION = 20_000
"""Octree leaves for the Manifold repair: ~1 s and a ~1% offset on a unit-size object."""

DEFAULT_SIMPLIFY_TOLERANCE = 1e-3
"""How far (object units) simplification may move the repaired surface: cuts ~10x the triangles."""


def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """The triangles of a mesh file, geometry only (no textures, materials, UVs or normals).

    A scene (several geometries, e.g. an OBJ with groups or a GLB) is flattened with its node
    transforms applied. Vertices that only differed by texture coordinates are merged, which is what
    makes most scans watertight again. Raises UserError naming the file when it is missing, empty,
    unreadable or holds no triangles.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"mesh file not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            loaded = _load_obj(path)
        else:
            loaded = trimesh.load(path, file_type=suffix.lstrip("."), skip_materials=True, process=False)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - each format's parser fails in its own way
        raise UserError(f"{path}: not a readable {suffix} mesh ({_reason(exc)})") from None
    vertices, faces = _triangles_of(loaded)
    if len(faces) == 0:
        raise UserError(f"{path}: contains no triangles")
    return clean(trimesh.Trimesh(vertices, faces, process=False))


def _load_obj(path: Path) -> trimesh.Scene | trimesh.Trimesh:
    """OBJ is text; stray bytes in comments or names must not stop us reading the numbers."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise UserError(f"{path}: binary data, not a text OBJ file")
    text = data.decode("utf-8", errors="replace")
    return trimesh.load(io.BytesIO(text.encode("utf-8")), file_type="obj", skip_materials=True, process=False)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ModuleNotFoundError):  # trimesh guessing a text encoding for binary junk
        return "the contents do not match the file type"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _triangles_of(loaded: object) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a Trimesh, or of every Trimesh in a Scene (transforms applied)."""
    if isinstance(loaded, trimesh.Trimesh):
        return np.asarray(loaded.vertices, float), np.asarray(loaded.faces, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if isinstance(loaded, trimesh.Scene):
        for node in loaded.graph.nodes_geometry:
            transform, geometry_name = loaded.graph[node]
            geometry = loaded.geometry.get(geometry_name)
            if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
                vertices = trimesh.transform_points(np.asarray(geometry.vertices, float), transform)
                parts.append((vertices, np.asarray(geometry.faces, np.int64)))
    if not parts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    vertices = np.concatenate([v for v, _ in parts])
    faces = np.concatenate([f + o for (_, f), o in zip(parts, offsets)])
    return vertices, faces


def clean(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Geometry-only copy with duplicate vertices merged and non-finite or unreferenced vertices
    dropped: changes neither the shape nor whether it is closed."""
    vertices = np.asarray(mesh.vertices, float)
    faces = np.asarray(mesh.faces, np.int64)
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        faces = faces[finite[faces].all(axis=1)]
    out = trimesh.Trimesh(vertices, faces, process=True)  # merges vertices by position
    out.remove_unreferenced_vertices()
    return out


def drop_bad_faces(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Copy without zero-area faces and without repeated faces (the second side of a double-sided
    face counts as a repeat). Only for meshes that are open anyway: in a closed mesh a sliver face
    is harmless, and removing it would open a hole."""
    out = mesh.copy()
    out.update_faces(out.nondegenerate_faces())
    out.update_faces(out.unique_faces())
    out.remove_unreferenced_vertices()
    return out


def normalize(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy centred on its bounding box, scaled so the box's longest side is 1.

    The Occupancy Networks convention: object units are then the same for a mug in millimetres and a
    bottle in metres, and every object fits the padded box [-0.55, 0.55]^3 in any rotation's frame.
    """
    if len(mesh.vertices) == 0:
        raise UserError("cannot normalise an empty mesh")
    lo, hi = mesh.bounds
    size = float(np.max(hi - lo))
    if not np.isfinite(size) or size <= 0.0:
        raise UserError("cannot normalise a mesh of zero size")
    out = mesh.copy()
    out.apply_translation(-(lo + hi) / 2.0)
    out.apply_scale(1.0 / size)
    return out


def is_solid(mesh: trimesh.Trimesh) -> bool:
    """Closed, every edge shared by exactly two faces, oriented outwards: inside is well defined."""
    return bool(len(mesh.faces) and mesh.is_watertight and mesh.is_volume)


def make_watertight(
    mesh: trimesh.Trimesh,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    simplify_tolerance: float = DEFAULT_SIMPLIFY_TOLERANCE,
    seed: int = 0,
    name: str = "mesh",
) -> trimesh.Trimesh:
    """A closed, outward-oriented, non-self-overlapping version of ``mesh``.

    - Already closed and oriented as one body: returned as is (geometry only, seams merged).
    - Closed but inside-out or inconsistently wound: faces are re-oriented, nothing moves.
    - Several closed bodies (a handle pushed into a cup, a loose part inside): merged with a boolean
      union (manifold3d), because overlapping shells make ray-parity "inside" tests wrong; an
      inside-out body nested in another is a cavity and is subtracted.
    - Closed once zero-area and repeated faces are dropped (a double-sided closed surface) and
      missing single triangles or quads are patched: that, with no resampling.
    - Anything else (holes, double-sided or non-manifold faces): rebuilt by the Manifold algorithm at
      ``resolution`` octree leaves (deterministic for a fixed ``seed``), then simplified by at most
      ``simplify_tolerance`` with manifold3d, which keeps the result manifold.

    ``resolution`` and ``simplify_tolerance`` are relative to the mesh's size (it is scaled to unit
    size for the repair and back). Raises UserError mentioning ``name`` if the result is still not a
    closed volume.
    """
    cleaned = clean(mesh)
    if cleaned.is_watertight:
        oriented = _oriented(cleaned)
        if oriented is not None:
            return oriented
    cleaned = drop_bad_faces(cleaned)
    if len(cleaned.faces) == 0:
        raise UserError(f"{name}: contains no triangles")
    if not cleaned.is_watertight:  # a missing triangle or quad: patch it, keeping the geometry exact
        patched = cleaned.copy()
        trimesh.repair.fill_holes(patched)
        if patched.is_watertight:
            cleaned = patched
    if cleaned.is_watertight:  # e.g. double-sided faces once the second sides are gone
        oriented = _oriented(cleaned)
        if oriented is not None:
            return oriented
    repaired = _rebuild(cleaned, resolution, simplify_tolerance, seed)
    solid = _oriented(repaired) if repaired.is_watertight else None
    if solid is None:
        raise UserError(f"{name}: cannot be made watertight")
    return solid


def _oriented(mesh: trimesh.Trimesh) -> trimesh.Trimesh | None:
    """The closed mesh as one outward-oriented, non-overlapping solid, or None if that fails."""
    if not mesh.is_winding_consistent or mesh.volume <= 0:
        mesh = mesh.copy()
        trimesh.repair.fix_winding(mesh)
        if mesh.volume < 0:
            mesh.invert()
    if not is_solid(mesh):
        return None
    bodies = mesh.split(only_watertight=False)
    if len(bodies) <= 1:
        return mesh
    return _union_of_bodies(bodies)


def _union_of_bodies(bodies: list[trimesh.Trimesh]) -> trimesh.Trimesh | None:
    """One solid from closed bodies: union of the outward ones, minus inside-out ones nested in them
    (cavities). An inside-out body that is not nested is just wound the wrong way and is flipped."""
    outward, inward = [], []
    for body in bodies:
        if not body.is_watertight or not body.is_winding_consistent:
            return None
        if body.volume > 0:
            outward.append(body)
        elif body.volume < 0:
            flipped = body.copy()
            flipped.invert()
            inward.append(flipped)
    cavities = []
    for body in inward:
        probe = body.vertices[:: max(1, len(body.vertices) // 8)]
        if any(outer.contains(probe).all() for outer in outward):
            cavities.append(_to_manifold(body))
        else:
            outward.append(body)
    if not outward:
        return None
    merged = manifold3d.Manifold.batch_boolean([_to_manifold(b) for b in outward], manifold3d.OpType.Add)
    if cavities:
        merged = merged - manifold3d.Manifold.batch_boolean(cavities, manifold3d.OpType.Add)
    result = from_manifold(merged)
    return result if is_solid(result) else None


def _rebuild(mesh: trimesh.Trimesh, resolution: int, simplify_tolerance: float, seed: int) -> trimesh.Trimesh:
    """Huang et al.'s Manifold repair on the unit-size mesh, simplified, in the input's frame."""
    lo, hi = mesh.bounds
    centre, size = (lo + hi) / 2.0, float(np.max(hi - lo))
    if size <= 0:
        return mesh
    unit = (np.asarray(mesh.vertices) - centre) / size
    vertices, faces = pcu.make_mesh_watertight(unit, np.asarray(mesh.faces, np.int32), resolution=resolution, seed=seed)
    rebuilt = trimesh.Trimesh(np.asarray(vertices, float), np.asarray(faces, np.int64), process=False)
    rebuilt.remove_unreferenced_vertices()  # closed as produced; merging could glue touching sheets
    if simplify_tolerance > 0 and rebuilt.is_watertight and rebuilt.is_winding_consistent:
        solid = _to_manifold(rebuilt)
        if solid.status() == manifold3d.Error.NoError:
            simplified = from_manifold(solid.simplify(simplify_tolerance))
            if is_solid(simplified):  # else keep the dense but valid surface
                rebuilt = simplified
    rebuilt.apply_scale(size)
    rebuilt.apply_translation(centre)
    return rebuilt


def _to_manifold(mesh: trimesh.Trimesh) -> manifold3d.Manifold:
    return manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=np.asarray(mesh.vertices, np.float32),
            tri_verts=np.asarray(mesh.faces, np.uint32),
        )
    )


def from_manifold(solid: manifold3d.Manifold) -> trimesh.Trimesh:
    """A manifold3d solid as a trimesh (used by the procedural generators and the repair).

    Manifold's own vertex indexing is kept: merging by position could glue two sheets that touch
    (a thin shell after simplification) into a non-manifold edge."""
    out = solid.to_mesh()
    mesh = trimesh.Trimesh(np.asarray(out.vert_properties, float)[:, :3], np.asarray(out.tri_verts, np.int64), process=False)
    mesh.remove_unreferenced_vertices()
    return mesh
