"""Headless stereo rendering of one object with pyrender (EGL on Mesa or NVIDIA).

A :class:`StereoRenderer` uses the process's one ``OffscreenRenderer`` (an OpenGL context) and owns a scene holding the
two rig cameras, a directional light and the current object. Creating the context and uploading a mesh
are the expensive parts, so both happen once: the context once per process (per renderer), the mesh
once per object. Per stereo pair only the object node's pose (the rotation), the light and the
material change, which keeps the build close to the raw render rate.

Geometry (docs/geometry.md): cameras come from :class:`~stereo_occ.data.rig.StereoRig`, whose
matrices follow OpenCV. pyrender wants an OpenGL camera pose (camera-to-world, looking along -z, y up):
``inv(world_to_cam) @ OPENCV_TO_OPENGL``. OpenCV puts pixel centres at integer coordinates while
OpenGL puts them at half-integers, hence ``cx + 0.5, cy + 0.5`` for pyrender's ``IntrinsicsCamera``.
pyrender's depth is the distance along the camera axis (0 for background), which is exactly the
OpenCV camera's ``z``.
"""

from __future__ import annotations

import colorsys
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import pyrender  # noqa: E402
import trimesh  # noqa: E402

from ..config import RenderConfig, RigConfig  # noqa: E402
from .pattern import SurfacePattern, print_on  # noqa: E402
from .rig import LEFT, OPENCV_TO_OPENGL, RIGHT, StereoRig, look_at_opencv  # noqa: E402

LIGHTING_FIELDS: tuple[str, ...] = (
    "light_intensity",
    "ambient",
    "hue",
    "saturation",
    "value",
    "metallic",
    "roughness",
    "light_dir_x",
    "light_dir_y",
    "light_dir_z",
)
"""Meaning of the ``lighting`` vector a render returns (and views.npz stores), in order.
``light_dir`` is the unit direction, in the rig frame, from the object towards the light."""

_ZNEAR, _ZFAR = 0.05, 100.0

_OFFSCREEN: dict[tuple[int, int], pyrender.OffscreenRenderer] = {}


def offscreen(width: int, height: int) -> pyrender.OffscreenRenderer:
    """The process's OpenGL renderer for ``width`` x ``height`` images, created on first use.

    One per size and process, and never deleted, on purpose: creating an EGL context is slow, and
    pyrender's ``delete`` terminates the EGL display that every context in the process shares, so
    closing one renderer would break every other (the dataset's and the report's figures alike).
    The contexts live until the process exits.
    """
    key = (int(width), int(height))
    if key not in _OFFSCREEN:
        _OFFSCREEN[key] = pyrender.OffscreenRenderer(*key)
    return _OFFSCREEN[key]


def _opengl_pose(world_to_cam_opencv: np.ndarray) -> np.ndarray:
    """Camera-to-world pose with OpenGL axes, as pyrender wants it, from an OpenCV world-to-camera."""
    return np.linalg.inv(world_to_cam_opencv) @ OPENCV_TO_OPENGL


def _uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = float(bounds[0]), float(bounds[1])
    return float(rng.uniform(lo, hi)) if hi > lo else lo


class StereoRenderer:
    """Renders stereo pairs (images and depth) of a mesh at a given rotation, with random lighting.

    Not thread-safe and not picklable (it uses the process's OpenGL context): create it in the
    process that renders. :meth:`close` (or a ``with`` block) drops its scene.
    """

    def __init__(self, rig_cfg: RigConfig, render_cfg: RenderConfig):
        self.rig = StereoRig.from_config(rig_cfg)
        self.cfg = render_cfg
        size = self.rig.image_size
        K = self.rig.K
        self.scene = pyrender.Scene(bg_color=[*render_cfg.background[:3], 1.0], ambient_light=[0.3] * 3)
        self._cameras = []
        for cam in (LEFT, RIGHT):
            camera = pyrender.IntrinsicsCamera(
                fx=K[0, 0], fy=K[1, 1], cx=K[0, 2] + 0.5, cy=K[1, 2] + 0.5, znear=_ZNEAR, zfar=_ZFAR
            )
            self._cameras.append(self.scene.add(camera, pose=_opengl_pose(self.rig.world_to_cam[cam])))
        self._light = self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=3.0))
        self._materials: list[pyrender.MetallicRoughnessMaterial] = []
        self._mesh_node: pyrender.Node | None = None
        self._mesh_source: trimesh.Trimesh | None = None  # the trimesh the uploaded node was made from
        self._renderer: pyrender.OffscreenRenderer | None = offscreen(size, size)

    # -- object -------------------------------------------------------------------------------
    def _set_mesh(self, mesh: trimesh.Trimesh) -> pyrender.Node:
        """Upload ``mesh`` unless it is the one already in the scene (same Python object)."""
        if self._mesh_source is mesh and self._mesh_node is not None:
            return self._mesh_node
        if self._mesh_node is not None:
            self.scene.remove_node(self._mesh_node)
        # Split vertices at sharp edges so creases stay crisp while curved walls shade smoothly.
        shaded = mesh.smooth_shaded
        # Strip any colours the file carried: the material (drawn per pair) decides the colour.
        shaded = trimesh.Trimesh(shaded.vertices, shaded.faces, vertex_normals=shaded.vertex_normals, process=False)
        pm = pyrender.Mesh.from_trimesh(shaded, material=pyrender.MetallicRoughnessMaterial(), smooth=True)
        # from_trimesh deep-copies the material it is given, so keep the primitives' own copies: those are
        # what the shader reads, and what _draw_lighting must change.
        self._materials = [p.material for p in pm.primitives]
        self._mesh_node = self.scene.add(pm)
        self._mesh_source = mesh
        return self._mesh_node

    # -- lighting -----------------------------------------------------------------------------
    def _draw_lighting(self, rng: np.random.Generator) -> np.ndarray:
        """Draw light and material within the config ranges, apply them, return the drawn vector."""
        c = self.cfg
        intensity = _uniform(rng, c.light_intensity)
        ambient = _uniform(rng, c.ambient)
        hue, sat, val = _uniform(rng, c.hue), _uniform(rng, c.saturation), _uniform(rng, c.value)
        metallic, roughness = _uniform(rng, c.metallic), _uniform(rng, c.roughness)
        # Light from the cameras' hemisphere (z > 0.2), so the visible side is never fully dark.
        while True:
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            if direction[2] > 0.2:
                break
        up = np.array([0.0, 1.0, 0.0]) if abs(direction[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        self.scene.set_pose(self._light, _opengl_pose(look_at_opencv(direction, np.zeros(3), up)))
        self._light.light.intensity = intensity
        self.scene.ambient_light = np.full(3, ambient)
        for material in self._materials:
            material.baseColorFactor = np.array([*colorsys.hsv_to_rgb(hue, sat, val), 1.0])
            material.metallicFactor = metallic
            material.roughnessFactor = roughness
        return np.array([intensity, ambient, hue, sat, val, metallic, roughness, *direction], dtype=np.float32)

    # -- rendering ----------------------------------------------------------------------------
    def render(
        self, mesh: trimesh.Trimesh, rotation: np.ndarray, rng: np.random.Generator,
        pattern: SurfacePattern | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Left and right RGB (uint8 HxWx3), their depth maps (float32 HxW, 0 = background), lighting.

        ``mesh`` is in the object frame; it is shown at ``p_rig = rotation @ p_obj``, with ``pattern``
        (data/pattern.py; ``None``: plain) printed on it. Passing the same mesh object again reuses
        its uploaded copy.
        """
        if self._renderer is None:
            raise RuntimeError("StereoRenderer is closed")
        node = self._set_mesh(mesh)
        pose = np.eye(4)
        pose[:3, :3] = rotation
        self.scene.set_pose(node, pose)
        lighting = self._draw_lighting(rng)
        out = []
        for view, cam in zip((LEFT, RIGHT), self._cameras):
            self.scene.main_camera_node = cam
            color, depth = self._renderer.render(self.scene)
            color, depth = np.ascontiguousarray(color[..., :3]), depth.astype(np.float32)
            if pattern is not None:
                color = print_on(color, depth, self.rig.K, self.rig.world_to_cam[view], rotation, pattern)
            out.append((color, depth))
        (left, left_depth), (right, right_depth) = out
        return left, right, left_depth, right_depth, lighting

    def close(self) -> None:
        """Drop this renderer's scene (and with it the uploaded mesh); the process's GL context stays."""
        if self._mesh_node is not None:
            self.scene.remove_node(self._mesh_node)
        self._mesh_node = self._mesh_source = None
        self._renderer = None

    def __enter__(self) -> "StereoRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
