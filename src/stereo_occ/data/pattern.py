"""Printed surface patterns: something on an object's surface for a stereo pair to match.

The default renders colour each object in one material, so the two views can only be matched where
the shading changes or at the silhouette: on a plain wall the pair shows the same grey at every
disparity. Real mugs and bottles often carry prints and labels, and a stereo rig measures depth
where it can match them. With ``dataset.render.pattern: blotches`` every object gets a pattern of
its own, fixed to its surface (in the object frame, so both views and every view of it agree): a
smooth random field of a few dozen plane waves, squashed into soft-edged light and dark blotches
that darken the material by up to ``pattern_contrast``. Its wavelengths (``pattern_wavelength``,
object units) are a few pixels at the rig's resolution, so the pattern survives 64 px images.

The pattern is printed on the rendered image, pixel by pixel (:func:`print_on`): each object pixel's
depth (exact, from the same render) lifts it back onto the object's surface, where the pattern is
evaluated, and darkens the material there. Nothing about the geometry, the depth maps or the labels
changes, and it costs next to nothing beside the render.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RenderConfig
from .rig import unproject

WAVES = 24
"""Plane waves summed into one object's field: enough for blotches without a visible period."""

GAMMA = 2.2
"""The renderer's output encoding (pyrender writes ``linear ** (1 / 2.2)``): darkening the
material by a factor ``s`` darkens its ambient and diffuse light by ``s ** (1 / GAMMA)`` in the
image. Specular highlights, which the material's colour does not scale, are darkened alike: a
small departure that changes nothing for matching."""


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


def print_on(image: np.ndarray, depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, rotation: np.ndarray,
             pattern: SurfacePattern) -> np.ndarray:
    """``image`` (uint8 HxWx3) of an object at ``rotation`` with ``pattern`` printed on it.

    Every pixel with a depth is lifted to its surface point (OpenCV ``K``, ``world_to_cam`` of the
    camera that rendered it), taken back to the object frame (``p_obj = rotation^T p_rig``) and
    darkened by the pattern's shade there; background pixels (depth 0) are left as they are. (The
    renderer's 4x multisampling mixes object and background at the silhouette, and its depth is one
    sample's, so a one-pixel rim is printed or not by that sample.)
    """
    rows, cols = np.nonzero(depth > 0)
    rig_points = unproject(np.stack([cols, rows], -1).astype(np.float64), depth[rows, cols], K, world_to_cam)
    shade = pattern.shade(rig_points @ rotation)  # p_obj = R^T p_rig, as row vectors
    printed = image.astype(np.float64)
    printed[rows, cols] *= shade[:, None] ** (1.0 / GAMMA)
    return np.clip(np.rint(printed), 0, 255).astype(np.uint8)
