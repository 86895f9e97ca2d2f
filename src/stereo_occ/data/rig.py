"""The study's toed-in stereo rig: camera matrices, projection, and the field-of-view check.

Conventions (written once here, used everywhere; docs/geometry.md has the picture):

* **Rig frame** (= the frame of targets and predictions): origin at the object centre, ``+y`` up,
  ``+z`` along the centre line towards the cameras, ``+x`` to the right as the cameras see it.
  Units are object units: the normalised object's bounding box has longest side 1, and a view's
  object sits at ``p_rig = R @ p_obj``.
* **Cameras**: two pinhole cameras at distance ``D = camera_distance / object_size`` (object units),
  at angle ``-half_angle`` (left) and ``+half_angle`` (right) from the centre line, in the
  ``xz``-plane, both looking at the origin (toed-in, so disparity changes sign at the origin).
* **Matrices** follow **OpenCV**: the camera looks along its ``+z``, ``+x`` is right and ``+y`` down in
  the image; ``K`` maps camera coordinates to pixels with pixel centres at integer coordinates, so the
  image centre is ``((W-1)/2, (H-1)/2)``. ``world_to_cam`` maps rig-frame points to camera
  coordinates; its ``z`` is the depth stored in the depth maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import RigConfig
from ..errors import UserError

LEFT, RIGHT = 0, 1

OBJECT_RADIUS = math.sqrt(3.0) / 2.0
"""Any rotation of an object normalised into the unit cube lies in this sphere (object units)."""

MIN_OBJECT_RADIUS = 0.5
"""A normalised object (longest side 1, centred) always reaches this far from its centre."""

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Flips camera axes between OpenCV (y down, z forward) and OpenGL (y up, z backward)."""


def look_at_opencv(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-to-camera matrix (4x4, OpenCV axes) of a camera at ``position`` looking at ``target``."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ position
    return w2c


@dataclass(frozen=True)
class StereoRig:
    """Intrinsics and extrinsics of the two cameras (index 0 = left, 1 = right)."""

    K: np.ndarray  # (3, 3), shared by both cameras
    world_to_cam: np.ndarray  # (2, 4, 4)
    image_size: int
    object_radius: float = OBJECT_RADIUS  # every object of the dataset lies in this sphere (object units)

    @classmethod
    def from_config(cls, cfg: RigConfig) -> "StereoRig":
        if cfg.image_size < 8:
            raise UserError(f"rig.image_size must be at least 8 pixels (got {cfg.image_size})")
        if not 0 < cfg.fov_deg < 170:
            raise UserError(f"rig.fov_deg must be in (0, 170) (got {cfg.fov_deg})")
        if not MIN_OBJECT_RADIUS <= cfg.object_radius <= OBJECT_RADIUS:
            raise UserError(
                f"rig.object_radius must be in [{MIN_OBJECT_RADIUS}, {OBJECT_RADIUS:.4f}] object units "
                f"(got {cfg.object_radius}): a normalised object reaches at least half its longest side "
                "from its centre, and never beyond the unit cube's corners"
            )
        distance = cfg.camera_distance / cfg.object_size
        size = cfg.image_size
        focal = size / (2.0 * math.tan(math.radians(cfg.fov_deg) / 2.0))
        K = np.array([[focal, 0.0, (size - 1) / 2.0], [0.0, focal, (size - 1) / 2.0], [0.0, 0.0, 1.0]])
        poses = []
        for sign in (-1.0, 1.0):
            position = distance * np.array([sign * math.sin(cfg.half_angle), 0.0, math.cos(cfg.half_angle)])
            poses.append(look_at_opencv(position, np.zeros(3), np.array([0.0, 1.0, 0.0])))
        rig = cls(K=K, world_to_cam=np.stack(poses), image_size=size, object_radius=cfg.object_radius)
        # Every object lies within rig.object_radius at any rotation (the build checks each one), so
        # that sphere must be fully visible in both images.
        needed = rig.sphere_image_radius(cfg.object_radius)
        if needed >= (size - 1) / 2.0:
            raise UserError(
                f"rig: objects within rig.object_radius={cfg.object_radius:.3f} object units of their centre, "
                f"shown {cfg.object_size} rig units long at distance {cfg.camera_distance}, can leave the "
                f"{cfg.fov_deg} degree field of view (they need a disc of radius {needed:.1f} px, the "
                f"{size} px images hold {(size - 1) / 2:.1f}); raise rig.fov_deg, lower rig.object_size, or "
                "lower rig.object_radius if the objects allow it (docs/geometry.md)"
            )
        return rig

    def check_object(self, vertices: np.ndarray, name: str) -> None:
        """Refuse an object (normalised vertices) that can leave the images at some rotation."""
        reach = float(np.sqrt(np.einsum("ij,ij->i", vertices, vertices).max())) if len(vertices) else 0.0
        # normalize() divides by the box size: a box corner can land a rounding step past sqrt(3)/2
        if reach <= self.object_radius * (1.0 + 1e-9):
            return
        if self.object_radius >= OBJECT_RADIUS:
            raise UserError(
                f"{name}: reaches {reach:.3f} object units from its centre, beyond the unit cube's corners: "
                "the mesh is not normalised (centred on its box, longest side 1)"
            )
        raise UserError(
            f"{name}: reaches {reach:.3f} object units from its centre, beyond rig.object_radius="
            f"{self.object_radius:.3f}, so some rotations would leave the images; raise rig.object_radius "
            f"(at most {OBJECT_RADIUS:.3f}, and rig.fov_deg if the rig check then asks) or leave this mesh out"
        )

    @property
    def distance(self) -> float:
        """Distance of each camera from the object centre, in object units."""
        return float(np.linalg.norm(self.camera_centers()[0]))

    def camera_centers(self) -> np.ndarray:
        """(2, 3) camera positions in the rig frame."""
        rot, t = self.world_to_cam[:, :3, :3], self.world_to_cam[:, :3, 3]
        return -np.einsum("cji,cj->ci", rot, t)

    def sphere_image_radius(self, radius: float) -> float:
        """Image radius (pixels) of a sphere at the origin; it projects to a centred disc."""
        d = self.distance
        if radius >= d:
            return math.inf
        return float(self.K[0, 0] * radius / math.sqrt(d * d - radius * radius))

    def project(self, points: np.ndarray, camera: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) as (u, v) = (column, row), and depth (N,), of rig-frame points."""
        return project(points, self.K, self.world_to_cam[camera])

    def baseline(self) -> float:
        c = self.camera_centers()
        return float(np.linalg.norm(c[1] - c[0]))


def project(points: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) points with OpenCV ``K`` and ``world_to_cam``: pixels (N, 2) and depths (N,)."""
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    depth = cam[:, 2]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:3], depth


def unproject(pixels: np.ndarray, depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """The inverse of :func:`project`: (N, 3) rig-frame points at (N, 2) pixels (column, row) and depths (N,)."""
    rays = np.concatenate([pixels, np.ones((len(pixels), 1))], 1) @ np.linalg.inv(K).T  # camera frame, z = 1
    cam = rays * np.asarray(depth, dtype=np.float64)[:, None]
    return (cam - world_to_cam[:3, 3]) @ world_to_cam[:3, :3]  # R^T (x - t), as row vectors


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )
