"""Fewer faces for reconstructed meshes: quadric edge-collapse decimation that keeps them closed.

Marching cubes spends the same number of triangles on every grid cell the surface crosses, so a
mesh at the evaluation resolution has hundreds of thousands of faces, most of them on parts that are
nearly flat. Quadric decimation (Garland and Heckbert; here ``fast-simplification``, the library behind
``trimesh.Trimesh.simplify_quadric_decimation``) collapses the edges whose removal moves the surface
least first: flat regions lose most of their faces, curved ones keep theirs.

Edge collapses can pinch two sheets of a thin part together along an edge, which leaves an edge with
four faces, or collapse a wall to zero thickness, which leaves two coincident triangles facing
opposite ways: no longer a closed (watertight) mesh. Reconstructed mugs and bowls, whose walls are a
cell or two thick, hit this at almost every budget. :func:`repair_pinches` undoes both without moving a
vertex: a pair of coincident opposite triangles encloses no volume and is removed; at an edge shared by
four (or more) faces the faces are paired around the edge (the pairs that bound solid, or else those
that bound empty space, whichever separates the edge's ends) and every vertex gets one copy per
connected fan of its faces, so the two sheets touch there instead of sharing an edge. The result is
closed and encloses the same volume.

:func:`simplify_mesh` checks the repaired result and, when a closed mesh still came out open,
decimates again with gentler settings (the library's ``agg``: lower is more careful and slower); if no
setting reaches the face budget while keeping the mesh closed, it returns the smallest closed mesh it
found and says so (:class:`SimplifyWarning`).
"""

from __future__ import annotations

import warnings

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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


def _drop_coincident_pairs(faces: np.ndarray) -> np.ndarray:
    """``faces`` without the pairs of triangles on the same three vertices facing opposite ways (a
    flattened wall); any other repeated triangle is kept (and :func:`_closed` judges it)."""
    key = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    # The orientation of a triangle relative to its sorted vertices: the parity of its inversions.
    a, b, c = faces.T
    parity = ((a > b).astype(int) + (a > c) + (b > c)) % 2
    paired = counts[inverse] == 2
    opposite = np.zeros(len(counts), dtype=int)
    np.add.at(opposite, inverse[paired], parity[paired])
    return faces[~(paired & (opposite[inverse] == 1))]


def _pair_around_edge(
    vertices: np.ndarray, faces: np.ndarray, members: np.ndarray, a: int, b: int, solid: bool
) -> list[tuple[int, int]] | None:
    """Pairs of the faces ``members`` around edge ``a``-``b`` that bound solid (``solid``) or empty
    wedges; None if they cannot be paired.

    The faces are sorted by the angle of their third vertex around the edge. Walking around the edge,
    solid and empty wedges alternate; a face and its successor bound solid when the face's outward
    normal points away from the successor, that is against the direction of the walk.
    """
    axis = vertices[b] - vertices[a]
    axis = axis / np.linalg.norm(axis)
    v1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(axis, v1)
    tri = faces[members]
    third = tri[(tri != a) & (tri != b)]
    if len(third) != len(members):
        return None  # a degenerate face repeats a vertex
    spoke = vertices[third] - vertices[a]
    order = np.argsort(np.arctan2(spoke @ v2, spoke @ v1))
    members, spoke = members[order], spoke[order]
    corners = vertices[faces[members]]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    tangent = np.cross(axis, spoke)  # the direction of increasing angle at each face
    against = np.einsum("ij,ij->i", normals, tangent) < 0  # the face and its successor bound solid
    starts = np.flatnonzero(against if solid else ~against)
    n = len(members)
    if len(starts) != n // 2 or np.any(np.diff(starts) != 2):
        return None
    return [(int(members[i]), int(members[(i + 1) % n])) for i in starts]


def repair_pinches(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` with flattened walls removed and pinched edges and vertices separated (see the module doc).

    Returns the mesh unchanged (the same object) when every edge already has two faces. A mesh that
    cannot be repaired this way (an edge with an odd number of faces, inconsistent winding, pinches of
    both kinds) is returned with only the coincident pairs removed; :func:`_closed` then rejects it.
    """
    faces = _drop_coincident_pairs(np.asarray(mesh.faces))
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)  # face f's edges are rows 3f .. 3f + 2
    undirected = np.sort(directed, axis=1)
    _, edge_id, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    edge_id = edge_id.ravel()
    if len(faces) == len(mesh.faces) and np.all(counts == 2):
        return mesh
    rebuilt = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if len(faces) == 0 or np.any(counts % 2):
        return rebuilt
    for solid in (True, False):
        out = _separate(vertices, faces, undirected, edge_id, counts, solid)
        if out is not None and out.is_watertight:
            return out
    return rebuilt


def _separate(
    vertices: np.ndarray, faces: np.ndarray, undirected: np.ndarray, edge_id: np.ndarray, counts: np.ndarray, solid: bool
) -> trimesh.Trimesh | None:
    """The mesh with the faces around each pinched edge paired (:func:`_pair_around_edge`) and every
    vertex given one copy per connected fan of its faces; None if an edge's faces cannot be paired.

    Two solids that touch along an edge are separated by pairing the faces that bound solid; a wall
    pressed flat along one edge (its two sheets meet there, but not at the edge's ends) by pairing the
    faces that bound empty space. Either way the edge's ends split and each sheet keeps its own edge.
    """
    # Twin faces across each edge: the two faces of an ordinary edge, pairs around a pinched one.
    order = np.argsort(edge_id, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    ordinary = starts[:-1][counts == 2]
    twins = [np.column_stack([order[ordinary] // 3, order[ordinary + 1] // 3, undirected[order[ordinary]]])]
    for start, count in zip(starts[:-1][counts > 2], counts[counts > 2]):
        rows = order[start : start + count]
        a, b = undirected[rows[0]]
        pairs = _pair_around_edge(vertices, faces, rows // 3, a, b, solid)
        if pairs is None:
            return None
        twins.append(np.array([(f, g, a, b) for f, g in pairs], dtype=np.int64))
    twin = np.concatenate(twins)
    # Corner (f, k) is node 3f + k. Twins share the corners at the edge's two vertices; each connected
    # set of corners of one vertex becomes one vertex of the repaired mesh.
    where = lambda f, v: 3 * f + np.argmax(faces[f] == v[:, None], axis=1)  # noqa: E731
    left = np.concatenate([where(twin[:, 0], twin[:, 2]), where(twin[:, 0], twin[:, 3])])
    right = np.concatenate([where(twin[:, 1], twin[:, 2]), where(twin[:, 1], twin[:, 3])])
    n = 3 * len(faces)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.zeros(label.max() + 1, dtype=np.int64)
    first[label] = faces.ravel()  # any corner of a set names its original vertex
    return trimesh.Trimesh(vertices=vertices[first], faces=label.reshape(-1, 3), process=False)


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
        candidate = repair_pinches(_decimate(current, max_faces, aggression))
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
