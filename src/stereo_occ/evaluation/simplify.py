"""Fewer faces for reconstructed meshes: quadric edge-collapse decimation that keeps them closed.

Marching cubes spends the same number of triangles on every grid cell the surface crosses, so a
mesh at the evaluation resolution has hundreds of thousands of faces, most of them on parts that are
nearly flat. Quadric decimation (Garland and Heckbert; here ``fast-simplification``, the library behind
``trimesh.Trimesh.simplify_quadric_decimation``) collapses the edges whose removal moves the surface
least first: flat regions lose most of their faces, curved ones keep theirs.

Edge collapses can pinch two sheets of a thin part together along an edge, which leaves an edge with
four faces: no longer a closed (watertight) mesh. :func:`simplify_mesh` checks the result and, when a
closed mesh came out open, decimates again with gentler settings (the library's ``agg``: lower is
more careful and slower); if no setting reaches the face budget while keeping the mesh closed, it
returns the smallest closed mesh it found and says so (:class:`SimplifyWarning`).
"""

from __future__ import annotations

import warnings

import numpy as np
import trimesh

from ..errors import UserError

AGGRESSION = (7, 5, 3, 1)
"""``fast_simplification`` aggressiveness tried in turn (its default first, then more careful)."""


class SimplifyWarning(UserWarning):
    """A mesh could not be brought down to the face budget without opening it."""


def _decimate(mesh: trimesh.Trimesh, max_faces: int, aggression: int) -> trimesh.Trimesh:
    from fast_simplification import simplify  # imported here: only needed when a mesh is over budget

    vertices, faces = simplify(
        np.asarray(mesh.vertices, dtype=np.float64),
        np.asarray(mesh.faces, dtype=np.int64),
        target_count=max_faces,
        agg=aggression,
    )
    # process=False: judge the topology the decimation produced, without merging anything.
    out = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    out.remove_unreferenced_vertices()
    return out


def _closed(mesh: trimesh.Trimesh) -> bool:
    return len(mesh.faces) > 0 and mesh.is_watertight and mesh.is_winding_consistent


def simplify_mesh(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """``mesh`` with at most ``max_faces`` faces (0 = unchanged), closed if it was closed.

    Meshes already within the budget are returned as they are (the same object).
    """
    if max_faces < 0:
        raise UserError(f"max_faces must be 0 (no simplification) or positive (got {max_faces})")
    n_faces = len(mesh.faces)
    if max_faces == 0 or n_faces <= max_faces:
        return mesh
    keep_closed = _closed(mesh)
    current = mesh
    for aggression in AGGRESSION:
        candidate = _decimate(current, max_faces, aggression)
        if keep_closed and not _closed(candidate):
            continue  # pinched somewhere: try again, more carefully
        if len(candidate.faces) <= max_faces:
            return candidate
        if len(candidate.faces) < len(current.faces):
            current = candidate  # closed but short of the budget: go on from here
    if current is mesh:
        warnings.warn(
            f"could not simplify the mesh ({n_faces:,} faces) to {max_faces:,} faces without opening it; "
            "kept it as it was",
            SimplifyWarning,
            stacklevel=2,
        )
    else:
        warnings.warn(
            f"simplified the mesh from {n_faces:,} to {len(current.faces):,} faces, not the {max_faces:,} "
            "asked for: going further would have opened it",
            SimplifyWarning,
            stacklevel=2,
        )
    return current
