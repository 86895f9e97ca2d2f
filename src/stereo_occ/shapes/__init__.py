"""Where the meshes come from (procedural, ShapeNetCore, a folder) and how they become normalised,
watertight solids: ``list_shapes(cfg)`` names them cheaply, ``ShapeSource.load()`` builds each one."""

from .mesh_ops import make_watertight, normalize, read_mesh
from .sources import ShapeSource, list_shapes

__all__ = ["ShapeSource", "list_shapes", "make_watertight", "normalize", "read_mesh"]
