"""Stereo calibration files for reconstruction, and how far they are from the training rig.

Camera-aware models (``rig-stereo``, ``rig-mono``) project with the calibration instead of the
training rig; the study's models take no camera input and assume the training rig (docs/geometry.md).
For both, the differences from the training rig are reported, since far from it a model works
outside what it learned. The file format (docs/reconstruct.md), OpenCV convention, lengths in object
units::

    image_size: [128, 128]          # width, height in pixels
    left:
      K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
      world_to_cam: [[r11, r12, r13, t1], [r21, r22, r23, t2], [r31, r32, r33, t3], [0, 0, 0, 1]]
    right:
      K: ...
      world_to_cam: ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..data.rig import StereoRig
from ..errors import UserError

CAMERAS = ("left", "right")

FOCAL_TOLERANCE = 0.02
"""Relative focal-length difference (after scaling to the training image size) still called equal."""
CENTER_TOLERANCE = 0.02
"""Principal-point difference, as a share of the image side."""
ANGLE_TOLERANCE_DEG = 2.0
"""Camera orientation difference, degrees."""
POSITION_TOLERANCE = 0.02
"""Camera position difference, as a share of the camera's distance from the object centre."""


@dataclass(frozen=True)
class Calibration:
    """Both cameras of a stereo pair (index 0 = left, 1 = right), OpenCV convention."""

    K: np.ndarray  # (2, 3, 3)
    world_to_cam: np.ndarray  # (2, 4, 4), rig frame (object centre at the origin) -> camera
    image_size: tuple[int, int]  # (width, height) in pixels

    @classmethod
    def from_rig(cls, rig: StereoRig) -> "Calibration":
        return cls(K=np.stack([rig.K, rig.K]), world_to_cam=rig.world_to_cam, image_size=(rig.image_size,) * 2)

    def resized(self, width: int, height: int) -> "Calibration":
        """The calibration of the same cameras with images resized to ``width`` x ``height``.

        With pixel centres at integer coordinates, a pixel coordinate u maps to (u + 0.5) s - 0.5.
        """
        sx, sy = width / self.image_size[0], height / self.image_size[1]
        scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return Calibration(K=scale @ self.K, world_to_cam=self.world_to_cam, image_size=(width, height))

    def camera_centers(self) -> np.ndarray:
        rot, t = self.world_to_cam[:, :3, :3], self.world_to_cam[:, :3, 3]
        return -np.einsum("cji,cj->ci", rot, t)


def _matrix(path: Path, data: dict, camera: str, key: str, shape: tuple[int, int]) -> np.ndarray:
    try:
        value = np.asarray(data[camera][key], dtype=np.float64)
    except KeyError:
        raise UserError(f"{path}: missing {camera}.{key}") from None
    except (TypeError, ValueError):
        raise UserError(f"{path}: {camera}.{key} must be a {shape[0]}x{shape[1]} matrix of numbers") from None
    if value.shape != shape or not np.all(np.isfinite(value)):
        raise UserError(f"{path}: {camera}.{key} must be a {shape[0]}x{shape[1]} matrix of numbers")
    return value


def _check_camera(path: Path, camera: str, K: np.ndarray, w2c: np.ndarray) -> None:
    if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1]) and K[1, 0] == 0):
        raise UserError(f"{path}: {camera}.K is not a pinhole intrinsic matrix [[fx,s,cx],[0,fy,cy],[0,0,1]]")
    rot = w2c[:3, :3]
    if not np.allclose(w2c[3], [0, 0, 0, 1]) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3):
        raise UserError(f"{path}: {camera}.world_to_cam is not a rigid transform (rotation + translation)")
    if np.linalg.det(rot) < 0:
        raise UserError(f"{path}: {camera}.world_to_cam is a reflection, not a rotation")


def load_calibration(path: str | Path) -> Calibration:
    """Read and check a calibration YAML; UserError naming the file and the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid YAML file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with image_size, left and right")
    unknown = set(data) - {"image_size", *CAMERAS}
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    size = data.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise UserError(f"{path}: image_size must be [width, height] in pixels")
    Ks, w2cs = [], []
    for camera in CAMERAS:
        if not isinstance(data.get(camera), dict):
            raise UserError(f"{path}: missing {camera} (with K and world_to_cam)")
        K = _matrix(path, data, camera, "K", (3, 3))
        w2c = _matrix(path, data, camera, "world_to_cam", (4, 4))
        _check_camera(path, camera, K, w2c)
        Ks.append(K)
        w2cs.append(w2c)
    return Calibration(K=np.stack(Ks), world_to_cam=np.stack(w2cs), image_size=(size[0], size[1]))


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation taking ``a`` to ``b`` (3x3 rotations), degrees."""
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def differences_from_rig(calibration: Calibration, rig: StereoRig) -> list[str]:
    """What differs between a calibration and the training rig beyond the tolerances, in words.

    Intrinsics are compared after scaling the calibration to the rig's image size, so the same
    cameras photographing at a higher resolution count as equal.
    """
    cal = calibration.resized(rig.image_size, rig.image_size)
    rig_cal = Calibration.from_rig(rig)
    found: list[str] = []
    centers, rig_centers = cal.camera_centers(), rig_cal.camera_centers()
    for c, camera in enumerate(CAMERAS):
        K, K0 = cal.K[c], rig_cal.K[c]
        for name, i in (("fx", 0), ("fy", 1)):
            if abs(K[i, i] - K0[i, i]) > FOCAL_TOLERANCE * K0[i, i]:
                found.append(f"{camera} {name} {K[i, i]:.1f} px vs {K0[i, i]:.1f} px")
        if np.abs(K[:2, 2] - K0[:2, 2]).max() > CENTER_TOLERANCE * rig.image_size:
            ours, theirs = np.round(K[:2, 2], 1).tolist(), np.round(K0[:2, 2], 1).tolist()
            found.append(f"{camera} principal point {ours} vs {theirs}")
        angle = rotation_angle_deg(cal.world_to_cam[c, :3, :3], rig_cal.world_to_cam[c, :3, :3])
        if angle > ANGLE_TOLERANCE_DEG:
            found.append(f"{camera} orientation differs by {angle:.1f} degrees")
        distance = float(np.linalg.norm(rig_centers[c]))
        moved = float(np.linalg.norm(centers[c] - rig_centers[c]))
        if moved > POSITION_TOLERANCE * distance:
            found.append(f"{camera} position differs by {moved:.3f} object units (camera distance {distance:.2f})")
    return found
