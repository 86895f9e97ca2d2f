"""Procedural mugs, bowls and bottles, watertight and manifold by construction.

Why procedural shapes: they need no download, cost milliseconds each, and their parameters are
known, so tests can check geometry against closed-form answers. Every object is built with
manifold3d: a 2D profile in the (radius, height) half-plane is revolved about the axis, cavities are
boolean differences, a mug's handle is a chain of convex hulls swept along a curve and unioned with the
body, and a bottle's rounded-square section is a warp of the revolved solid. Booleans, hulls and warps
of valid manifolds give valid manifolds, so no repair step is needed afterwards.

Conventions: the up axis is **+z**, the base of every object stands on z = 0 and its axis is the z
axis. A mug's handle points along +x. Units are "body radii" (about 1 for every object); the shapes
pipeline normalises meshes later (bounding box centred, longest side 1).

Variety: each object gets a *style* from its index (styles cycle, so every style appears in any run of
a few consecutive indices) and continuous parameters from a random generator seeded with
``(seed, category, index)``, so the same triple always gives the identical mesh.
``docs/shapes-procedural.md`` lists the parameters and their ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import trimesh
from manifold3d import CrossSection, Manifold, OpType

from ..config import CATEGORIES
from ..errors import UserError
from .mesh_ops import from_manifold

SEGMENTS = 64
"""Segments around the axis: chord error about 0.1% of the radius, meshes of 5k-30k faces."""

MUG_BODIES = ("straight", "tapered", "barrel", "waisted")
MUG_HANDLES = ("round", "d", "square", "ear")
BOWL_STYLES = ("hemispherical", "conical", "flared")
BOTTLE_STYLES = ("wine", "water", "sauce", "pill")

RadiusFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------------
# Solids of revolution
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shell:
    """A solid of revolution about +z, described by closed-form radius functions of height.

    solid = ({0 <= z <= height, r <= outer(z)}  plus a rounded rim bead)
            minus the cavity {z >= floor, r < inner(z)} (open at the top)
            minus the base recess {r < recess_radius, z < recess depth at r}.

    The same description yields both the mesh (sampled polygon, revolved) and an exact
    :meth:`contains`, which is what lets tests check the mesh against geometry it did not come from.
    """

    height: float
    outer: RadiusFn  # outside radius for z in [0, height]
    knots: tuple[float, ...] = ()  # heights where outer/inner have kinks or jumps
    inner: Optional[RadiusFn] = None  # cavity radius for z in [floor, height]; None = closed solid
    floor: float = 0.0  # height of the cavity's bottom
    base_fillet: float = 0.0  # radius rounding the outside bottom edge
    top_fillet: float = 0.0  # radius rounding the outside top edge (closed solids)
    floor_fillet: float = 0.0  # radius rounding the cavity's bottom corner
    rim_bead: bool = False  # a half-round bead on top of the wall (open shells)
    recess_radius: float = 0.0  # under the base: a flat recess, a foot ring's hollow, or a punt
    recess_depth: float = 0.0
    recess_dome: bool = False  # dome-shaped (a wine bottle's punt) rather than flat

    # -- radius functions with the fillets applied -------------------------------------------------
    def outer_at(self, z: np.ndarray) -> np.ndarray:
        z = np.clip(np.asarray(z, dtype=float), 0.0, self.height)
        r = np.asarray(self.outer(z), dtype=float)
        c = self.base_fillet
        if c > 0:
            low = z < c
            r = np.where(low, r - c + np.sqrt(np.clip(c * c - (c - z) ** 2, 0, None)), r)
        c = self.top_fillet
        if c > 0:
            high = z > self.height - c
            d = z - (self.height - c)
            r = np.where(high, r - c + np.sqrt(np.clip(c * c - d * d, 0, None)), r)
        return np.maximum(r, 0.0)

    def inner_at(self, z: np.ndarray) -> np.ndarray:
        """Cavity radius; above the rim the cavity continues straight up (it is open)."""
        assert self.inner is not None
        z = np.clip(np.asarray(z, dtype=float), self.floor, self.height)
        r = np.asarray(self.inner(z), dtype=float)
        f = self.floor_fillet
        if f > 0:
            low = z < self.floor + f
            r = np.where(low, r - f + np.sqrt(np.clip(f * f - (self.floor + f - z) ** 2, 0, None)), r)
        return np.maximum(r, 0.0)

    def recess_at(self, r: np.ndarray) -> np.ndarray:
        """Depth of the base recess at radius r (0 outside it)."""
        r = np.asarray(r, dtype=float)
        if self.recess_radius <= 0:
            return np.zeros_like(r)
        inside = r < self.recess_radius
        if self.recess_dome:
            depth = self.recess_depth * (1 - (r / self.recess_radius) ** 2)
        else:
            depth = np.full_like(r, self.recess_depth)
        return np.where(inside, depth, 0.0)

    def _bead(self) -> tuple[float, float]:
        """Centre radius and radius of the rim bead's circle."""
        ro = float(self.outer_at(self.height))
        ri = float(self.inner_at(self.height))
        return (ro + ri) / 2, (ro - ri) / 2

    # -- exact containment -------------------------------------------------------------------------
    def contains(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=float)
        r = np.hypot(p[:, 0], p[:, 1])
        z = p[:, 2]
        solid = (z >= 0) & (z <= self.height) & (r <= self.outer_at(z))
        if self.inner is not None:
            if self.rim_bead:
                rc, rad = self._bead()
                solid |= (r - rc) ** 2 + (z - self.height) ** 2 <= rad * rad
            solid &= ~((z >= self.floor) & (r < self.inner_at(z)))
        solid &= ~(z < self.recess_at(r))
        return solid

    # -- the 2D profile ----------------------------------------------------------------------------
    def _heights(self, lo: float, hi: float, fillets: list[tuple[float, float]], n: int) -> np.ndarray:
        """Sample heights: uniform, denser inside fillets, both sides of every knot (for jumps)."""
        eps = 1e-6 * self.height
        zs = [np.linspace(lo, hi, n)]
        for a, b in fillets:
            if b > a:
                zs.append(a + (b - a) * (1 - np.cos(np.linspace(0, np.pi / 2, 12))))
        for k in self.knots:
            zs.append(np.array([k - eps, k + eps]))
        z = np.unique(np.concatenate(zs))
        return z[(z >= lo) & (z <= hi)]

    def _outer_polygon(self) -> np.ndarray:
        h = self.height
        fillets = [(0.0, self.base_fillet), (h - self.top_fillet, h)]
        z = self._heights(0.0, h, fillets, 96)
        r = self.outer_at(z)
        return np.concatenate([[[0.0, 0.0]], np.stack([r, z], 1), [[0.0, h]]])

    def outside(self) -> CrossSection:
        """The profile without the cavity: outer region plus rim bead minus base recess."""
        section = CrossSection([self._outer_polygon()])
        if self.inner is not None and self.rim_bead:
            rc, rad = self._bead()
            section = section + CrossSection.circle(rad, 32).translate((rc, self.height))
        if self.recess_radius > 0:
            rr = np.linspace(0.0, self.recess_radius, 24 if self.recess_dome else 2)
            depth = self.recess_at(rr * (1 - 1e-9))
            below = -0.1 * self.height
            # Counter-clockwise: along the bottom (below the base), up, back along the ceiling.
            poly = np.concatenate([[[0.0, below], [self.recess_radius, below]],
                                   np.stack([rr, depth], 1)[::-1]])
            section = section - CrossSection([poly])
        return section.simplify(1e-5 * self.height)

    def cavity(self) -> Optional[CrossSection]:
        """The hollow, continued well above the rim so the top is cut open cleanly."""
        if self.inner is None:
            return None
        h = self.height
        f = self.floor_fillet
        z = self._heights(self.floor, h, [(self.floor, self.floor + f)], 64)
        r = self.inner_at(z)
        top = h + 0.5 * h
        poly = np.concatenate([[[0.0, self.floor]], np.stack([r, z], 1),
                               [[r[-1], top], [0.0, top]]])
        return CrossSection([poly]).simplify(1e-5 * self.height)

    def profile(self) -> CrossSection:
        section = self.outside()
        cav = self.cavity()
        if cav is not None:
            section = section - cav
        return section


def revolve(section: CrossSection) -> Manifold:
    return Manifold.revolve(section, SEGMENTS)


# --------------------------------------------------------------------------------------------------
# Mugs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handle:
    """A loop swept along a curve in the xz-plane (y = 0), attached to the body on the +x side.

    The centre line leaves the body horizontally at ``z_top``, bulges out to ``base_x + reach`` and
    comes back horizontally at ``z_bottom``; both ends continue into the wall so the union fuses them.
    The cross-section is an ellipse: ``thickness`` across the curve (in the xz-plane) and ``width``
    along y, so flat strap handles and round rods both occur.
    """

    style: str
    z_top: float
    z_bottom: float
    base_x: float  # x where the curve leaves the wall (the widest wall radius along the handle)
    reach: float  # how far the curve's centre line goes beyond base_x
    squareness: float  # superellipse exponent of the loop: 2 round, 4-5 D-shaped, 8+ squared
    thickness: float  # half-thickness across the curve
    width: float  # half-width along y
    tilt: float  # extra outward shift of the lower half (a leaning handle)
    ear: float  # 0 for symmetric loops; >0 makes the upper part bulge more (an ear)
    anchor_x: float  # x the two ends reach inside the wall

    def centre_line(self, n: int = 40) -> np.ndarray:
        s = np.linspace(0.0, 1.0, n)
        theta = np.pi * (1 - np.cos(np.pi * s)) / 2  # denser near the ends where corners are
        zc = (self.z_top + self.z_bottom) / 2
        a = (self.z_top - self.z_bottom) / 2
        sin = np.clip(np.sin(theta), 0.0, 1.0)
        bulge = sin ** (2.0 / self.squareness) * (1 + self.ear * np.cos(theta)) / (1 + self.ear * 0.5)
        x = self.base_x + self.reach * bulge + self.tilt * (1 - np.cos(theta)) / 2 * sin
        z = zc + a * np.cos(theta)
        curve = np.stack([x, z], 1)
        arm_top = np.array([[self.anchor_x, self.z_top],
                            [(self.anchor_x + self.base_x) / 2, self.z_top]])
        arm_bot = arm_top[::-1].copy()
        arm_bot[:, 1] = self.z_bottom
        return np.concatenate([arm_top, curve, arm_bot])

    def hole_point(self) -> np.ndarray:
        """A point in the opening between handle and body, at mid-height (for tests)."""
        line = self.centre_line(200)
        zc = (self.z_top + self.z_bottom) / 2
        loop = line[2:-2]
        mid = loop[np.argmin(np.abs(loop[:, 1] - zc) + (loop[:, 0] < self.base_x) * 1e9)]
        return np.array([(self.base_x + mid[0] - self.thickness) / 2, 0.0, zc])

    def solid(self) -> Manifold:
        line = self.centre_line()
        tangent = np.gradient(line, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)  # in the xz-plane
        alpha = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        across = np.cos(alpha) * self.thickness  # along the in-plane normal
        along_y = np.sin(alpha) * self.width
        rings = [np.stack([p[0] + across * nrm[0], along_y, p[1] + across * nrm[1]], 1)
                 for p, nrm in zip(line, normal)]
        # Hulls of three consecutive rings overlap their neighbours, so the union has no
        # coincident faces and no gaps at bends.
        pieces = [Manifold.hull_points(np.concatenate(rings[i:i + 3])) for i in range(len(rings) - 2)]
        return Manifold.batch_boolean(pieces, OpType.Add)


@dataclass(frozen=True)
class MugDesign:
    body_style: str
    shell: Shell
    handle: Handle
    params: dict = field(default_factory=dict)

    def build(self) -> Manifold:
        body = revolve(self.shell.outside())
        cavity = revolve(self.shell.cavity())
        return (body + self.handle.solid()) - cavity


def _mug_outer(style: str, rng: np.random.Generator, height: float) -> tuple[RadiusFn, dict]:
    if style == "straight":
        radius = 1.0
        return (lambda z: np.full_like(z, radius)), {"radius": radius}
    if style == "tapered":
        wide, narrow = 1.0, rng.uniform(0.72, 0.9)
        bottom, top = (narrow, wide) if rng.random() < 0.7 else (wide, narrow)
        return (lambda z: bottom + (top - bottom) * z / height), {"bottom": bottom, "top": top}
    if style == "barrel":
        base, bulge = rng.uniform(0.85, 0.95), rng.uniform(0.08, 0.2)
        return (lambda z: base + bulge * np.sin(np.pi * z / height)), {"base": base, "bulge": bulge}
    if style == "waisted":
        waist, gamma = rng.uniform(0.07, 0.16), rng.uniform(0.8, 1.25)
        return (lambda z: 1.0 - waist * np.sin(np.pi * (z / height) ** gamma)), {"waist": waist}
    raise AssertionError(style)


def design_mug(index: int, rng: np.random.Generator) -> MugDesign:
    body_style = MUG_BODIES[index % len(MUG_BODIES)]
    handle_style = MUG_HANDLES[(index // len(MUG_BODIES)) % len(MUG_HANDLES)]
    height = rng.uniform(1.5, 2.9)
    outer, params = _mug_outer(body_style, rng, height)
    wall = rng.uniform(0.04, 0.14)
    base_fillet = rng.uniform(0.03, 0.15)
    bottom = rng.uniform(0.08, 0.22)
    recess_depth = rng.uniform(0.03, 0.08) if rng.random() < 0.7 else 0.0
    r0 = float(outer(np.zeros(1))[0])
    recess_radius = r0 - base_fillet - rng.uniform(0.06, 0.2) if recess_depth > 0 else 0.0
    floor = bottom + recess_depth
    base_fillet = min(base_fillet, 0.9 * floor)  # rounding the base edge must not reach the cavity
    shell = Shell(
        height=height, outer=outer, inner=lambda z: outer(z) - wall, floor=floor,
        base_fillet=base_fillet, floor_fillet=rng.uniform(0.04, 0.3),
        rim_bead=bool(rng.random() < 0.5),
        recess_radius=max(recess_radius, 0.0), recess_depth=recess_depth,
    )

    # The handle: sized in the body's units, placed where it fits between base and rim.
    thickness = rng.uniform(0.06, 0.13)
    width = thickness * rng.uniform(1.0, 2.3)
    margin = 0.05 + 1.3 * thickness
    ear = 0.0
    squareness = {"round": 2.0, "d": rng.uniform(3.2, 5.0), "square": rng.uniform(7.0, 12.0),
                  "ear": rng.uniform(1.8, 2.6)}[handle_style]
    span_max = height - 2 * margin
    if handle_style == "ear":
        span = span_max * rng.uniform(0.35, 0.55)
        z_top = height - margin - rng.uniform(0.0, 0.1) * height
        ear = rng.uniform(0.3, 0.7)
        reach = thickness + rng.uniform(0.25, 0.4)
    else:
        span = span_max * rng.uniform(0.6, 0.95)
        slack = span_max - span
        z_top = height - margin - slack * rng.uniform(0.1, 0.6)
        if handle_style == "round":
            reach = max(thickness + 0.25, span / 2 * rng.uniform(0.75, 1.05))
        else:
            reach = thickness + rng.uniform(0.3, 0.6)
    z_bottom = z_top - span
    along = np.linspace(z_bottom, z_top, 64)
    base_x = float(shell.outer_at(along).max())
    handle = Handle(
        style=handle_style, z_top=z_top, z_bottom=z_bottom, base_x=base_x, reach=reach,
        squareness=squareness, thickness=thickness, width=width,
        tilt=rng.uniform(-0.08, 0.15), ear=ear, anchor_x=0.5 * float(shell.outer_at(along).min()),
    )
    params.update(height=height, wall=wall, floor=floor, recess_depth=recess_depth)
    return MugDesign(body_style=body_style, shell=shell, handle=handle, params=params)


# --------------------------------------------------------------------------------------------------
# Bowls
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BowlDesign:
    style: str
    foot: bool
    shell: Shell
    params: dict = field(default_factory=dict)

    def build(self) -> Manifold:
        return revolve(self.shell.profile())


def design_bowl(index: int, rng: np.random.Generator) -> BowlDesign:
    style = BOWL_STYLES[index % len(BOWL_STYLES)]
    foot = (index // len(BOWL_STYLES)) % 2 == 1
    wall = rng.uniform(0.015, 0.09)  # thin porcelain to thick stoneware (rim radius is ~1)
    foot_h = rng.uniform(0.04, 0.1) if foot else 0.0
    fillet = 0.0
    if style == "hemispherical":
        base_r = rng.uniform(0.3, 0.6)
        k = rng.uniform(0.6, 1.15)  # vertical semi-axis: shallow to deep
        c = k * np.sqrt(1 - base_r**2)  # ellipsoid centre above the base
        depth = c * rng.uniform(0.7, 1.0)

        def body(z):
            return np.sqrt(np.clip(1 - ((c - z) / k) ** 2, 0, None))

        def body_in(z):
            return (1 - wall) * np.sqrt(np.clip(1 - ((c - z) / (k - wall)) ** 2, 0, None))

        inner_bottom = c - (k - wall)
    elif style == "conical":
        base_r = rng.uniform(0.25, 0.5)
        depth = rng.uniform(0.4, 0.9)
        slope = (1 - base_r) / depth

        def body(z):
            return base_r + slope * z

        def body_in(z):
            return body(z) - wall * np.sqrt(1 + slope**2)

        inner_bottom = 0.0
        fillet = rng.uniform(0.05, 0.2)
    else:  # flared: the wall's slope grows towards the rim
        base_r = rng.uniform(0.4, 0.65)
        depth = rng.uniform(0.5, 0.9)
        p = min(rng.uniform(1.3, 2.1), 2.5 * depth / (1 - base_r))  # keep the rim slope <= 2.5
        p = max(p, 1.2)

        def body(z):
            return base_r + (1 - base_r) * (np.clip(z, 0, None) / depth) ** p

        def body_in(z):
            slope = (1 - base_r) * p / depth * (np.clip(z, 1e-9, None) / depth) ** (p - 1)
            return body(z) - wall * np.sqrt(1 + slope**2)

        inner_bottom = 0.0
        fillet = rng.uniform(0.03, 0.12)

    height = foot_h + depth
    foot_r = base_r * rng.uniform(0.8, 0.97) if foot else 0.0

    def outer(z):
        return np.where(z < foot_h, foot_r, body(z - foot_h))

    bottom = wall * rng.uniform(1.0, 1.6)
    floor = foot_h + max(inner_bottom, bottom)
    fillet = min(fillet, 0.9 * floor)  # rounding the base edge must not reach the cavity
    shell = Shell(
        height=height, outer=outer, knots=(foot_h,) if foot else (),
        inner=lambda z: body_in(z - foot_h), floor=floor,
        base_fillet=0.0 if foot else fillet,
        # A round bowl's cavity is already curved at the bottom; cones and flares get a rounded corner.
        floor_fillet=rng.uniform(0.02, 0.15) if style != "hemispherical" else 0.0,
        rim_bead=bool(rng.random() < 0.6),
        recess_radius=foot_r * (1 - rng.uniform(0.1, 0.25)) if foot else 0.0,
        recess_depth=foot_h,
    )
    return BowlDesign(style=style, foot=foot, shell=shell,
                      params={"wall": wall, "depth": depth, "base_radius": base_r, "foot_height": foot_h})


# --------------------------------------------------------------------------------------------------
# Bottles
# --------------------------------------------------------------------------------------------------


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


@dataclass(frozen=True)
class BottleDesign:
    style: str
    shell: Shell
    body_top: float  # height where the shoulder starts
    shoulder_top: float  # height where the neck starts
    squareness: float  # superellipse exponent of the body's section; 2 = round
    aspect: float  # depth / width of the body's section (1 = round or square)
    params: dict = field(default_factory=dict)

    def section_weight(self, z: np.ndarray) -> np.ndarray:
        """1 on the body, fading to 0 through the shoulder: neck and cap stay round."""
        return 1 - _smoothstep((z - self.body_top) / max(self.shoulder_top - self.body_top, 1e-6))

    def warp(self, v: np.ndarray) -> np.ndarray:
        w = self.section_weight(v[:, 2])
        phi = np.arctan2(v[:, 1], v[:, 0])
        n = self.squareness
        rho = (np.abs(np.cos(phi)) ** n + np.abs(np.sin(phi)) ** n) ** (-1.0 / n)
        scale = rho**w
        out = v.copy()
        out[:, 0] *= scale
        out[:, 1] *= scale * (1 - (1 - self.aspect) * w)
        return out

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Exact containment: undo the section warp (it keeps heights), then ask the round shell.

        The warp scales a point at original angle phi0 by s = rho(phi0)**w in x and y and then y by
        k = 1 - (1 - aspect) * w, so tan(phi) = k tan(phi0) can be solved for phi0 directly.
        """
        p = np.asarray(points, dtype=float)
        w = self.section_weight(p[:, 2])
        k = 1 - (1 - self.aspect) * w
        phi0 = np.arctan2(p[:, 1] / k, p[:, 0])
        n = self.squareness
        rho = (np.abs(np.cos(phi0)) ** n + np.abs(np.sin(phi0)) ** n) ** (-1.0 / n)
        s = rho**w
        round_points = np.stack([p[:, 0] / s, p[:, 1] / (s * k), p[:, 2]], 1)
        return self.shell.contains(round_points)

    def build(self) -> Manifold:
        solid = revolve(self.shell.profile())
        if self.squareness != 2.0 or self.aspect != 1.0:
            solid = solid.warp_batch(self.warp)
        return solid


def design_bottle(index: int, rng: np.random.Generator) -> BottleDesign:
    style = BOTTLE_STYLES[index % len(BOTTLE_STYLES)]
    u = rng.uniform
    grooves: list[tuple[float, float]] = []  # (height fraction of the body, depth)
    body_taper, bulge, waist = 0.0, 0.0, 0.0
    punt = (0.0, 0.0)
    neck_taper = 0.0
    finish: list[tuple[float, float]] = []  # stacked (radius, height) bands above the neck
    ring = None  # (radius, height, position below the neck's top)
    if style == "wine":
        body_h, shoulder_h = u(2.4, 3.6), u(0.5, 1.7)
        neck_r, neck_h = u(0.28, 0.38), u(1.0, 2.0)
        body_taper = u(0.0, 0.04)
        shoulder_mix = u(0.5, 1.0)  # mostly S-curved shoulders
        finish = [(neck_r * u(1.08, 1.2), u(0.12, 0.25))]
        if rng.random() < 0.8:
            punt = (u(0.5, 0.75), u(0.15, 0.45))
        base_fillet, top_fillet = u(0.06, 0.15), finish[0][0] - neck_r
        squareness, aspect = 2.0, 1.0
    elif style == "water":
        body_h, shoulder_h = u(2.0, 3.3), u(0.4, 1.0)
        neck_r, neck_h = u(0.28, 0.45), u(0.2, 0.45)
        shoulder_mix = u(0.0, 0.5)
        if rng.random() < 0.5:
            waist = u(0.04, 0.1)
        for _ in range(int(rng.integers(0, 4))):
            grooves.append((u(0.15, 0.85), u(0.02, 0.05)))
        ring = (neck_r * u(1.25, 1.45), u(0.03, 0.06), neck_h * u(0.3, 0.6))
        finish = [(neck_r * u(1.05, 1.15), u(0.3, 0.6))]
        base_fillet, top_fillet = u(0.1, 0.3), u(0.03, 0.08)
        squareness = u(3.0, 5.0) if rng.random() < 0.35 else 2.0
        aspect = 1.0
    elif style == "sauce":
        body_h, shoulder_h = u(1.4, 2.4), u(0.5, 1.2)
        neck_r, neck_h = u(0.2, 0.35), u(0.25, 0.8)
        shoulder_mix = u(0.3, 1.0)
        if rng.random() < 0.5:
            body_taper = u(0.05, 0.2)
        else:
            bulge = u(0.0, 0.12)
        neck_taper = u(0.0, 0.2)
        cap_r = neck_r * u(1.15, 1.7)
        finish = [(cap_r, u(0.3, 0.6))]
        if rng.random() < 0.5:
            finish.append((u(0.1, 0.18), u(0.15, 0.35)))  # a nozzle
        base_fillet, top_fillet = u(0.08, 0.25), u(0.02, 0.06)
        squareness = u(3.0, 6.0) if rng.random() < 0.6 else 2.0
        aspect = u(0.65, 0.95) if rng.random() < 0.5 else 1.0
    else:  # pill bottle
        body_h, shoulder_h = u(1.0, 2.2), u(0.08, 0.25)
        neck_r, neck_h = u(0.75, 0.9), u(0.05, 0.15)
        shoulder_mix = 0.0
        finish = [(u(1.0, 1.06), u(0.35, 0.6))]
        base_fillet, top_fillet = u(0.05, 0.15), u(0.05, 0.12)
        squareness = u(3.0, 4.5) if rng.random() < 0.2 else 2.0
        aspect = 1.0

    body_top = body_h
    neck_bottom = body_h + shoulder_h
    neck_top = neck_bottom + neck_h
    top_r = 1.0 - body_taper

    def body(z):
        t = z / body_h
        r = 1.0 - body_taper * t + bulge * np.sin(np.pi * t)
        r = r - waist * np.exp(-(((t - 0.55) / 0.15) ** 2))
        for pos, depth in grooves:
            r = r - depth * np.exp(-(((t - pos) * body_h / 0.03) ** 2))
        return r

    def shoulder(z):
        s = np.clip((z - body_top) / shoulder_h, 0.0, 1.0)
        s_curve = (1 + np.cos(np.pi * s)) / 2
        dome = np.sqrt(np.clip(1 - s**2, 0, None))
        return neck_r + (top_r - neck_r) * (shoulder_mix * s_curve + (1 - shoulder_mix) * dome)

    def neck(z):
        return neck_r * (1 - neck_taper * (z - neck_bottom) / neck_h)

    knots = [body_top, neck_bottom, neck_top]
    bands = []
    z0 = neck_top
    for radius, h in finish:
        bands.append((z0, z0 + h, radius))
        z0 += h
        knots.append(z0)
    height = z0
    if ring is not None:
        ring_r, ring_h, below = ring
        ring_band = (neck_top - below - ring_h, neck_top - below, ring_r)
        knots += [ring_band[0], ring_band[1]]
    else:
        ring_band = None

    def outer(z):
        r = np.where(z <= body_top, body(z), np.where(z <= neck_bottom, shoulder(z), neck(z)))
        if ring_band is not None:
            r = np.where((z >= ring_band[0]) & (z <= ring_band[1]), ring_band[2], r)
        for lo, hi, radius in bands:
            r = np.where((z > lo) & (z <= hi), radius, r)
        return r

    if style == "wine":
        top_fillet = min(top_fillet, finish[0][1] * 0.6)
    shell = Shell(
        height=height, outer=outer, knots=tuple(sorted(knots)), base_fillet=base_fillet,
        top_fillet=top_fillet, recess_radius=punt[0], recess_depth=punt[1], recess_dome=True,
    )
    params = {"body_height": body_h, "shoulder_height": shoulder_h, "neck_radius": neck_r,
              "neck_height": neck_h, "grooves": len(grooves)}
    return BottleDesign(style=style, shell=shell, body_top=body_top, shoulder_top=neck_bottom,
                        squareness=squareness, aspect=aspect, params=params)


# --------------------------------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------------------------------

_DESIGNERS = {"mug": design_mug, "bowl": design_bowl, "bottle": design_bottle}
STYLES: dict[str, tuple[str, ...]] = {"mug": MUG_BODIES, "bowl": BOWL_STYLES, "bottle": BOTTLE_STYLES}
"""The styles of each category; object ``index`` gets ``STYLES[category][index % len(...)]``."""


def design(category: str, index: int, seed: int):
    """The parameters of one object (a Mug/Bowl/BottleDesign), before any geometry is built."""
    if category not in _DESIGNERS:
        raise UserError(f"unknown shape category {category!r} (known: {', '.join(CATEGORIES)})")
    if index < 0 or seed < 0:
        raise UserError(f"procedural {category}: index and seed must be >= 0 (got {index}, {seed})")
    rng = np.random.default_rng([int(seed), CATEGORIES.index(category), int(index)])
    return _DESIGNERS[category](int(index), rng)


def generate(category: str, index: int, seed: int) -> trimesh.Trimesh:
    """A watertight, manifold mug, bowl or bottle, identical for identical arguments (+z up)."""
    return from_manifold(design(category, index, seed).build())
