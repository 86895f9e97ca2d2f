"""Pictures for the report: mesh renders seen by a dataset camera, training curves, the figure grid.

The reconstruction figure puts the left input image beside the ground truth and each model's mesh,
all seen from the *left camera of the same view*, so a reader compares shapes, not viewpoints. Meshes
are drawn in one plain grey material under one fixed light rig (unlike the dataset's randomised
renders), so differences between columns are differences of geometry only.

:class:`MeshRenderer` is reusable (e.g. by ``reconstruct`` to preview a mesh): give it a trimesh in
the rig frame and OpenCV ``K`` / ``world_to_cam`` as stored with every view (see ``data/rig.py``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must be set before pyrender loads OpenGL

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # no display: figures go to PNG bytes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from PIL import Image  # noqa: E402

from ..config import CATEGORIES  # noqa: E402
from ..data.rig import OPENCV_TO_OPENGL  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..files import write_atomic  # noqa: E402

GREY = (0.6, 0.6, 0.63)
"""The one material colour of every rendered mesh: neutral, so shading alone shows the shape."""

BACKGROUND = (1.0, 1.0, 1.0)


class MeshRenderer:
    """Offscreen renderer of meshes as seen by an OpenCV pinhole camera.

    Uses the process's OpenGL context for its size (:func:`~stereo_occ.data.render.offscreen`,
    shared with the dataset's renderer and never deleted: deleting one terminates every other's
    display); call :meth:`render` many times. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, width: int, height: int | None = None):
        import pyrender  # lazily: importing it initialises OpenGL

        from ..data.render import offscreen

        self._pyrender = pyrender
        self.width = int(width)
        self.height = int(height if height is not None else width)
        self._renderer = offscreen(self.width, self.height)
        self._material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=(*GREY, 1.0), metallicFactor=0.0, roughnessFactor=0.75, doubleSided=True
        )

    def render(self, mesh: trimesh.Trimesh, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) image of ``mesh`` (rig frame) through camera ``K`` / ``world_to_cam`` (OpenCV).

        An empty mesh (a model that predicts nothing inside) gives the plain background.
        """
        pr = self._pyrender
        scene = pr.Scene(bg_color=(*BACKGROUND, 1.0), ambient_light=(0.15, 0.15, 0.15))
        if len(mesh.faces) > 0:
            # Flat shading: it shows facets of marching-cubes meshes and sharp rims of ground truth alike.
            scene.add(pr.Mesh.from_trimesh(mesh, material=self._material, smooth=False))
        K = np.asarray(K, dtype=np.float64)
        # pyrender's principal point counts from pixel corners, OpenCV's from pixel centres.
        camera = pr.IntrinsicsCamera(
            fx=K[0, 0], fy=K[1, 1], cx=K[0, 2] + 0.5, cy=K[1, 2] + 0.5, znear=0.01, zfar=100.0
        )
        cam_to_world = np.linalg.inv(np.asarray(world_to_cam, dtype=np.float64)) @ OPENCV_TO_OPENGL
        scene.add(camera, pose=cam_to_world)
        # A key light at the camera and a fill light from above-left: the same for every mesh.
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=1.4), pose=cam_to_world)
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=1.6), pose=cam_to_world @ _tilt(-0.7, 0.6))
        color, _ = self._renderer.render(scene)
        return np.ascontiguousarray(color[..., :3])

    def close(self) -> None:
        """Let go of the context (it stays with the process, for the next renderer of its size)."""
        self._renderer = None

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tilt(pitch: float, yaw: float) -> np.ndarray:
    """A rotation (4x4) that turns a light away from the camera axis by ``pitch`` and ``yaw`` radians."""
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0, 0], [0, cp, -sp, 0], [0, sp, cp, 0], [0, 0, 0, 1]], dtype=np.float64)
    ry = np.array([[cy, 0, sy, 0], [0, 1, 0, 0], [-sy, 0, cy, 0], [0, 0, 0, 1]], dtype=np.float64)
    return ry @ rx


@dataclass(frozen=True)
class Crop:
    """A square window of an image, in pixel-edge coordinates (``x0, y0`` = top-left corner).

    The figure zooms every column into the same window, so the objects fill their cells while all
    columns still share one camera: renders get a zoomed ``K`` (:meth:`camera`), the input image is
    resampled (:meth:`image`), and both map the same scene point to the same output pixel.
    """

    x0: float
    y0: float
    size: float
    out_size: int

    @classmethod
    def around_center(cls, K: np.ndarray, radius: float, out_size: int) -> "Crop":
        """The square of half-side ``radius`` pixels around the principal point."""
        cx, cy = float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
        return cls(cx - radius, cy - radius, 2.0 * radius, int(out_size))

    def camera(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics that render exactly this window at ``out_size`` pixels (OpenCV, centre convention)."""
        s = self.out_size / self.size
        K2 = np.array(K, dtype=np.float64)
        K2[0, 0] *= s
        K2[1, 1] *= s
        K2[0, 2] = s * (K[0, 2] + 0.5 - self.x0) - 0.5
        K2[1, 2] = s * (K[1, 2] + 0.5 - self.y0) - 0.5
        return K2

    def image(self, image: np.ndarray) -> np.ndarray:
        """The window of ``image`` resampled to ``out_size`` (bicubic; outside the image is white)."""
        box = (self.x0, self.y0, self.x0 + self.size, self.y0 + self.size)
        src = Image.fromarray(np.asarray(image, dtype=np.uint8))
        pad = int(math.ceil(max(0.0, -box[0], -box[1], box[2] - src.width, box[3] - src.height)))
        if pad:
            padded = Image.new("RGB", (src.width + 2 * pad, src.height + 2 * pad), (255, 255, 255))
            padded.paste(src, (pad, pad))
            src, box = padded, tuple(b + pad for b in box)
        out = src.resize((self.out_size, self.out_size), Image.Resampling.BICUBIC, box=box)
        return np.asarray(out)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def load_image(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an image file; UserError naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None


# ----------------------------------------------------------------------------------------------------
# Training curves


@dataclass
class TrainingLog:
    """The rows of a trainer's ``metrics.csv`` split by kind: training steps and validations."""

    train_iteration: np.ndarray
    train_seconds: np.ndarray
    train_loss: np.ndarray
    val_iteration: np.ndarray
    val_seconds: np.ndarray
    val_iou: np.ndarray
    # validation IoU per category (NaN where a log has none: older logs, or no such val object)
    val_category: dict[str, np.ndarray] = field(default_factory=dict)


def _number(text: str | None) -> float:
    if text is None or text.strip() == "":
        return math.nan
    return float(text)


def read_training_log(path: str | Path, until: float | None = None) -> TrainingLog:
    """Parse ``metrics.csv`` (columns iteration, seconds, split, loss, iou; ``split`` is train or val).

    ``until``: only the rows up to that iteration (a long run beside the first steps of a variant).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"training log not found: {path}")
    train: list[tuple[float, float, float]] = []
    val: list[tuple[float, ...]] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"iteration", "seconds", "split", "loss", "iou"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}: not a training log (missing columns {', '.join(sorted(missing))})")
        try:
            for row in reader:
                it, sec = _number(row["iteration"]), _number(row["seconds"])
                if until is not None and it > until:
                    continue
                if row["split"] == "train":
                    train.append((it, sec, _number(row["loss"])))
                elif row["split"] == "val":
                    val.append((it, sec, _number(row["iou"]), *(_number(row.get(f"iou_{c}")) for c in CATEGORIES)))
        except ValueError as exc:
            raise UserError(f"{path}: malformed number on line {reader.line_num} ({exc})") from None
    t = np.array(train, dtype=np.float64).reshape(-1, 3)
    v = np.array(val, dtype=np.float64).reshape(-1, 3 + len(CATEGORIES))
    per_category = {c: v[:, 3 + k] for k, c in enumerate(CATEGORIES)}
    return TrainingLog(t[:, 0], t[:, 1], t[:, 2], v[:, 0], v[:, 1], v[:, 2], per_category)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points: loss per batch is noisy, its trend is what matters."""
    if len(values) < 3 or window <= 1:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def training_curves_png(logs: Mapping[str, TrainingLog], *, dpi: int = 110) -> bytes:
    """A 2x2 PNG: training loss and validation IoU against iterations and against seconds.

    Every model shares the same axes, so "better per iteration" and "better per second of compute"
    can be read off side by side.
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.6), dpi=dpi, constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, log) in enumerate(logs.items()):
        c = colors[i % len(colors)]
        window = max(1, len(log.train_loss) // 25)
        for col, (x_train, x_val) in enumerate(
            [(log.train_iteration, log.val_iteration), (log.train_seconds, log.val_seconds)]
        ):
            ax = axes[0, col]
            if len(log.train_loss):
                ax.plot(x_train, log.train_loss, color=c, alpha=0.25, linewidth=0.8)
                ax.plot(x_train, _smooth(log.train_loss, window), color=c, linewidth=1.8, label=name)
            ax = axes[1, col]
            if len(log.val_iou):
                ax.plot(x_val, log.val_iou, color=c, marker="o", markersize=3.5, linewidth=1.8, label=name)
    for col, xlabel in enumerate(["iteration", "training time (s)"]):
        axes[0, col].set_ylabel("training loss (BCE)")
        axes[1, col].set_ylabel("validation IoU")
        axes[1, col].set_xlabel(xlabel)
        axes[0, col].set_xlabel(xlabel)
        for row in range(2):
            ax = axes[row, col]
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(frameon=False)
    axes[0, 0].set_title("against iterations")
    axes[0, 1].set_title("against wall-clock time")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def category_curves_png(logs: Mapping[str, TrainingLog], *, against: str = "minutes", dpi: int = 110) -> bytes:
    """Validation IoU per category (and the mean) against training minutes (or ``against="iterations"``:
    for runs whose minutes another job on the machine stretched), one panel each.

    Mugs and bowls are thin shells and bottles nearly solid: a mean hides which one a change helped.
    """
    if against not in ("minutes", "iterations"):
        raise UserError(f"curves against minutes or iterations, not {against!r}")
    panels = ["mean", *CATEGORIES]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), dpi=dpi, layout="constrained",
                             sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, log) in enumerate(logs.items()):
        x = log.val_seconds / 60.0 if against == "minutes" else log.val_iteration
        for ax, panel in zip(axes, panels):
            values = log.val_iou if panel == "mean" else log.val_category.get(panel, np.full(len(x), np.nan))
            if len(values) and not np.isnan(values).all():
                ax.plot(x, values, color=colors[i % len(colors)], marker="o", markersize=3, linewidth=1.6,
                        label=name)
    for ax, panel in zip(axes, panels):
        ax.set_title(f"{panel} (validation)")
        ax.set_xlabel("training time (min)" if against == "minutes" else "iteration")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("IoU")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # below the panels: run names can be long
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------
# The reconstruction figure


@dataclass
class FigureRow:
    """One object: an image per column, and the mesh file behind each rendered column (if any)."""

    object_id: str
    category: str
    view: int
    images: dict[str, Path]  # column -> PNG file
    meshes: dict[str, Path] = field(default_factory=dict)  # column -> mesh file


@dataclass
class ReconstructionFigure:
    """Rows of objects by columns (``left input``, ``ground truth``, then one per model).

    Stored as PNG and mesh files plus ``figure.json`` (paths relative to it), so the figure survives
    between runs and the report can link every mesh.
    """

    columns: list[str]
    rows: list[FigureRow]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        base = path.parent

        def rel(p: Path) -> str:
            return os.path.relpath(p, base)

        data = {
            "columns": self.columns,
            "rows": [
                {
                    "object_id": r.object_id,
                    "category": r.category,
                    "view": r.view,
                    "images": {k: rel(v) for k, v in r.images.items()},
                    "meshes": {k: rel(v) for k, v in r.meshes.items()},
                }
                for r in self.rows
            ],
        }
        write_atomic(path, json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ReconstructionFigure":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            base = path.parent
            rows = [
                FigureRow(
                    object_id=r["object_id"],
                    category=r["category"],
                    view=int(r["view"]),
                    images={k: base / v for k, v in r["images"].items()},
                    meshes={k: base / v for k, v in r["meshes"].items()},
                )
                for r in data["rows"]
            ]
            return cls(columns=list(data["columns"]), rows=rows)
        except FileNotFoundError:
            raise UserError(f"figure description not found: {path}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a figure description ({exc})") from None


def figure_png(figure: ReconstructionFigure, *, cell_inches: float = 1.6, dpi: int = 110) -> bytes:
    """The whole figure as one PNG grid with column titles and row labels (for papers and slides)."""
    n_rows, n_cols = len(figure.rows), len(figure.columns)
    if n_rows == 0:
        raise UserError("the reconstruction figure has no rows")
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.3), dpi=dpi, squeeze=False
    )
    for i, row in enumerate(figure.rows):
        for j, column in enumerate(figure.columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if column in row.images:
                ax.imshow(load_image(row.images[column]))
            if i == 0:
                ax.set_title(column, fontsize=10)
            if j == 0:
                ax.set_ylabel(row.category, fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.01, top=1 - 0.3 / (cell_inches * n_rows + 0.3),
                        wspace=0.03, hspace=0.03)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

