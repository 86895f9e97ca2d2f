"""The on-disk layout of one object, written atomically and read without mesh work.

An object folder (``<dataset>/<category>/<name>/``, its id is ``<category>/<name>``) holds:

=====================  =====================================================================
``info.json``          category, source, counts (``n_uniform``, ``n_surface``, ``n_views``)
``mesh.ply``           the watertight, normalised mesh (object frame), binary PLY
``points.npy``         float16 (N, 3): ``n_uniform`` uniform points in the padded box, then
                       ``n_surface`` near-surface points (object frame)
``occupancies.npy``    uint8, ``np.packbits`` of the N inside/outside labels
``distances.npy``      float16 (N,) signed distances to the surface (negative inside), clipped at
                       ``meta.json``'s ``distance_cap`` (format 2; ``stereo-occ dataset`` adds
                       them to a format-1 dataset in place)
``near_density.npy``   float32 (N,) the near-surface pool's sampling density at each point relative
                       to the uniform pool's (format 3; data/mixture.py): what importance-weights a
                       mixed sample (``train.iou_estimator=mixture``); training objects only
``views.npz``          per view: ``rotations`` (V, 3, 3), ``K`` (V, 2, 3, 3),
                       ``world_to_cam`` (V, 2, 4, 4, OpenCV, rig frame -> camera),
                       ``lighting`` (V, L) the drawn light/material parameters,
                       ``offsets`` (4 V + 1,) byte offsets into ``renders.bin``
``renders.bin``        per view, four PNG files back to back: left RGB, right RGB,
                       left depth, right depth (16-bit, ``depth * DEPTH_SCALE``, 0 = background)
=====================  =====================================================================

PNG keeps a 128x128 pair with its depth maps at a few kB (the background compresses to nothing),
and a view is read with one slice of a memory map and two small PNG decodes, so reading stays far
cheaper than a training step. A folder is built under a temporary name and renamed when complete,
so a folder with the final name is always whole.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from ..errors import UserError

FORMAT_VERSION = 3
"""Version of the dataset layout (meta.json and the object folders); bump on incompatible changes.

2 added ``distances.npy``; a format-1 dataset reads as before, and rebuilding it over itself adds them.
3 added ``near_density.npy``; a dataset of format 1 or 2 reads as before, and a run that needs the
densities estimates them from the stored meshes."""

DEPTH_SCALE = 10_000.0
"""Depth PNG units per object unit (0.1 mm for a 10 cm object); 16 bits cover 6.5 object units."""

RENDERS_PER_VIEW = 4  # left RGB, right RGB, left depth, right depth
TMP_SUFFIX = ".partial"


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB (H, W, 3) or uint16 (H, W) image."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes | memoryview | np.ndarray) -> np.ndarray:
    with Image.open(io.BytesIO(bytes(data))) as img:
        return np.asarray(img)


def encode_depth(depth: np.ndarray) -> bytes:
    return encode_png(np.clip(np.round(depth * DEPTH_SCALE), 0, 65535).astype(np.uint16))


@dataclass
class Views:
    """Everything rendered for one object, in memory, ready to be written."""

    rotations: np.ndarray  # (V, 3, 3)
    K: np.ndarray  # (V, 2, 3, 3)
    world_to_cam: np.ndarray  # (V, 2, 4, 4)
    lighting: np.ndarray  # (V, L)
    pngs: list[bytes]  # 4 V PNG files, in the order RENDERS_PER_VIEW describes


def write_object(
    folder: Path,
    *,
    info: dict,
    mesh: trimesh.Trimesh,
    points: np.ndarray,
    occupancies: np.ndarray,
    distances: np.ndarray,
    near_density: np.ndarray | None,
    views: Views,
) -> None:
    """Write a whole object folder atomically (temporary folder, then rename); ``near_density`` None
    writes none (an object only evaluated never needs it)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + TMP_SUFFIX)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n_views = len(views.rotations)
    if len(views.pngs) != RENDERS_PER_VIEW * n_views:
        raise ValueError("views.pngs must hold four PNG files per view")
    info = dict(info, n_views=n_views, n_points=int(len(points)))
    (tmp / "info.json").write_text(json.dumps(info, indent=1))
    mesh.export(tmp / "mesh.ply")
    np.save(tmp / "points.npy", points.astype(np.float16))
    np.save(tmp / "occupancies.npy", np.packbits(occupancies.astype(bool)))
    np.save(tmp / "distances.npy", distances.astype(np.float16))
    if near_density is not None:
        np.save(tmp / "near_density.npy", near_density.astype(np.float32))
    offsets = np.zeros(len(views.pngs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in views.pngs])
    with open(tmp / "renders.bin", "wb") as f:
        for png in views.pngs:
            f.write(png)
    np.savez(
        tmp / "views.npz",
        rotations=views.rotations.astype(np.float32),
        K=views.K.astype(np.float32),
        world_to_cam=views.world_to_cam.astype(np.float32),
        lighting=views.lighting.astype(np.float32),
        offsets=offsets,
    )
    for f in tmp.iterdir():  # durable before it becomes visible under its final name
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def write_distances(folder: Path, distances: np.ndarray) -> None:
    """Add ``distances.npy`` to a complete format-1 object folder (atomically: temporary file, rename)."""
    tmp = Path(folder) / "distances.partial.npy"
    np.save(tmp, distances.astype(np.float16))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, Path(folder) / "distances.npy")


def has_distances(folder: Path) -> bool:
    return (Path(folder) / "distances.npy").is_file()


def is_complete(folder: Path) -> bool:
    """True for a folder that a finished :func:`write_object` produced."""
    return (Path(folder) / "views.npz").is_file() and not Path(folder).name.endswith(TMP_SUFFIX)


class ObjectReader:
    """Read access to one object folder. Cheap to create; arrays load lazily and are cached.

    Safe to create before ``fork`` (DataLoader workers): nothing is opened until first use.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not is_complete(self.folder):
            raise UserError(f"not a complete object folder: {self.folder}")
        self._info: dict | None = None
        self._views: dict[str, np.ndarray] | None = None
        self._blob: np.memmap | None = None
        self._points: np.ndarray | None = None
        self._occ: np.ndarray | None = None
        self._distances: np.ndarray | None = None

    @property
    def info(self) -> dict:
        if self._info is None:
            self._info = json.loads((self.folder / "info.json").read_text())
        return self._info

    @property
    def category(self) -> str:
        return self.info["category"]

    @property
    def n_views(self) -> int:
        return int(self.info["n_views"])

    @property
    def n_uniform(self) -> int:
        return int(self.info["n_uniform"])

    def _view_arrays(self) -> dict[str, np.ndarray]:
        if self._views is None:
            with np.load(self.folder / "views.npz") as z:
                self._views = {k: z[k] for k in z.files}
        return self._views

    def cameras(self, view: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rotation (3, 3), K (2, 3, 3), world_to_cam (2, 4, 4)) of a view."""
        v = self._view_arrays()
        return v["rotations"][view], v["K"][view], v["world_to_cam"][view]

    def lighting(self, view: int) -> np.ndarray:
        return self._view_arrays()["lighting"][view]

    def _png(self, index: int) -> np.ndarray:
        if self._blob is None:
            self._blob = np.memmap(self.folder / "renders.bin", dtype=np.uint8, mode="r")
        off = self._view_arrays()["offsets"]
        return decode_png(self._blob[off[index] : off[index + 1]])

    def image(self, view: int, camera: int) -> np.ndarray:
        """uint8 (H, W, 3) image of ``camera`` (0 = left, 1 = right) in ``view``."""
        return self._png(RENDERS_PER_VIEW * view + camera)

    def depth(self, view: int, camera: int) -> np.ndarray:
        """float32 (H, W) depth along the camera's z, object units; 0 where there is no object."""
        raw = self._png(RENDERS_PER_VIEW * view + 2 + camera)
        return raw.astype(np.float32) / DEPTH_SCALE

    def points(self) -> np.ndarray:
        """float16 (N, 3) memory-mapped pool, uniform points first (object frame)."""
        if self._points is None:
            self._points = np.load(self.folder / "points.npy", mmap_mode="r")
        return self._points

    def occupancies(self) -> np.ndarray:
        """bool (N,) labels of :meth:`points`."""
        if self._occ is None:
            packed = np.load(self.folder / "occupancies.npy")
            self._occ = np.unpackbits(packed, count=len(self.points())).astype(bool)
        return self._occ

    def distances(self) -> np.ndarray:
        """float16 (N,) memory-mapped signed distances of :meth:`points` (negative inside, clipped)."""
        if self._distances is None:
            if not has_distances(self.folder):
                raise UserError(
                    f"{self.folder}: no distances.npy (a dataset built before format 2); add them by "
                    "running `stereo-occ dataset` again with the same --config and --out"
                )
            self._distances = np.load(self.folder / "distances.npy", mmap_mode="r")
        return self._distances

    def near_density(self) -> np.ndarray | None:
        """float32 (N,) memory-mapped near-surface sampling density of :meth:`points` relative to the
        uniform one (format 3), or None for an object built before it or outside the train split."""
        path = self.folder / "near_density.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def mesh(self) -> trimesh.Trimesh:
        return trimesh.load(self.folder / "mesh.ply", force="mesh", process=False)

    def nbytes_per_view(self) -> float:
        """Bytes on disk per stored stereo pair (renders and camera data), excluding the point pool."""
        size = (self.folder / "renders.bin").stat().st_size + (self.folder / "views.npz").stat().st_size
        return size / self.n_views
