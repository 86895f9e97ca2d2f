"""Printed surface patterns: something on an object's surface for a stereo pair to match.

The default renders colour each object in one material, so the two views can only be matched where
the shading changes or at the silhouette: on a plain wall the pair shows the same grey at every
disparity. Real mugs and bottles often carry prints and labels, and a stereo rig measures depth
where it can match them. With ``dataset.render.pattern: blotches`` every object gets a pattern of
its own, fixed to its surface (in the object frame, so both views and every view of it agree): a
smooth random field of a few dozen plane waves, squashed into soft-edged light and dark blotches
that darken the material by up to ``pattern_contrast``. Its wavelengths
(``pattern_wavelength``, object units) are a few pixels at the rig's resolution, so the pattern
survives 64 px images.

The geometry does not change: the mesh is only subdivided (every edge at most ``MAX_EDGE`` long) so
that per-vertex colours can carry the pattern, and the depth maps and labels are those of the plain
object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from ..config import RenderConfig

MAX_EDGE = 0.015
"""Longest edge (object units) of the subdivided mesh that carries the pattern's vertex colours:
about half a pixel at 64 px in the quick rig, well under the shortest wavelength."""

WAVES = 24
"""Plane waves summed into one object's field: enough for blotches without a visible period."""


@dataclass(frozen=True)
class SurfacePattern:
    """One object's pattern: ``shade(points)`` is the factor (in ``[1 - contrast, 1]``) the
    material's colour is multiplied by at object-frame ``points``."""

    wavevectors: np.ndarray  # (WAVES, 3), radians per object unit
    phases: np.ndarray  # (WAVES,)
    contrast: float

    def shade(self, points: np.ndarray) -> np.ndarray:
        field = np.sin(np.asarray(points, dtype=np.float64) @ self.wavevectors.T + self.phases).sum(-1)
        field /= np.sqrt(len(self.phases) / 2.0)  # unit variance for random phases
        dark = 1.0 / (1.0 + np.exp(-4.0 * field))  # soft-edged blotches, about half of the surface dark
        return 1.0 - self.contrast * dark


def draw_pattern(cfg: RenderConfig, rng: np.random.Generator) -> SurfacePattern | None:
    """The pattern ``cfg.pattern`` asks for, drawn from ``rng`` (one per object); ``None`` for ``none``.
    ``cfg`` is a validated config's (``config.validate`` checks the names and ranges)."""
    if cfg.pattern == "none":
        return None
    lo, hi = (float(v) for v in cfg.pattern_wavelength)
    directions = rng.normal(size=(WAVES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # wavelengths log-uniform in [lo, hi]: as many fine waves as coarse ones
    wavelengths = np.exp(rng.uniform(np.log(lo), np.log(hi), size=WAVES))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=WAVES)
    c_lo, c_hi = (float(v) for v in cfg.pattern_contrast)
    contrast = float(rng.uniform(c_lo, c_hi)) if c_hi > c_lo else c_lo
    return SurfacePattern(directions * (2.0 * np.pi / wavelengths[:, None]), phases, contrast)


def patterned_mesh(mesh: trimesh.Trimesh, pattern: SurfacePattern) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``mesh`` subdivided to carry ``pattern``: vertices, faces, vertex normals and each vertex's shade.

    The subdivision is exact (new vertices on the old faces), and the normals are those of the
    smooth-shaded original, so a patterned object shades like a plain one where the pattern is light.
    """
    shaded = mesh.smooth_shaded  # split at sharp creases, as the plain render does
    vertices, faces, index = trimesh.remesh.subdivide_to_size(
        shaded.vertices, shaded.faces, max_edge=MAX_EDGE, max_iter=20, return_index=True
    )
    # each new vertex takes the normal of the face it was made on, interpolated at its position
    source = shaded.faces[index]  # (F', 3) the original triangle of each new face
    normals = np.zeros_like(vertices)
    corner_normals = shaded.vertex_normals[source]  # (F', 3, 3)
    corner_points = shaded.vertices[source]
    for k in range(3):
        p = vertices[faces[:, k]]
        bary = trimesh.triangles.points_to_barycentric(corner_points, p)
        normals[faces[:, k]] = np.einsum("fi,fij->fj", bary, corner_normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return vertices, faces, normals, pattern.shade(vertices)
