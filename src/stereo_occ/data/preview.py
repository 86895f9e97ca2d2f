"""A picture to check a dataset by eye: stereo pairs with their inside points projected on top.

If the frames, the rotation or the camera matrices were inconsistent anywhere between build and
loader, the dots would miss the object; one look at this grid catches what unit tests might not.
The points go through the same path as training targets: pool (object frame) -> ``R`` -> stored
``K`` / ``world_to_cam``.
"""

from __future__ import annotations

from itertools import zip_longest
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import read_meta, read_split
from .rig import project
from .storage import ObjectReader, is_complete

_DOTS = 300  # inside points drawn per image
_OBJECTS_PER_ROW = 3


def _pick_objects(root: Path, split: str, n_objects: int) -> list[str]:
    """Up to ``n_objects`` built objects of ``split``, alternating categories so all of them show."""
    by_category: dict[str, list[str]] = {}
    for object_id in read_split(root, split):
        if is_complete(root / object_id):
            by_category.setdefault(object_id.split("/")[0], []).append(object_id)
    interleaved = [i for group in zip_longest(*by_category.values()) for i in group if i is not None]
    return interleaved[:n_objects]


def save_preview(dataset: Path, out: Path, n_objects: int = 6, split: str = "train") -> None:
    """Write a PNG grid: per object, its first view's left and right image with the inside points on them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(dataset)
    read_meta(root)
    if n_objects < 1:
        raise UserError(f"preview needs at least one object (got {n_objects})")
    ids = _pick_objects(root, split, n_objects)
    if not ids:
        raise UserError(f"{root}: no built objects in split {split!r}")
    rng = np.random.default_rng(0)
    per_row = min(_OBJECTS_PER_ROW, len(ids))
    rows = -(-len(ids) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(3.2 * per_row, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, object_id in enumerate(ids):
        obj = ObjectReader(root / object_id)
        rotation, K, world_to_cam = obj.cameras(0)
        n_uniform = obj.n_uniform
        labels = obj.occupancies()[:n_uniform]
        inside = np.asarray(obj.points()[:n_uniform][labels], dtype=np.float64)
        if len(inside) > _DOTS:
            inside = inside[rng.choice(len(inside), _DOTS, replace=False)]
        points_rig = inside @ rotation.astype(np.float64).T
        for cam, name in ((0, "left"), (1, "right")):
            ax = axes[i // per_row, 2 * (i % per_row) + cam]
            ax.imshow(obj.image(0, cam))
            uv, _ = project(points_rig, K[cam].astype(np.float64), world_to_cam[cam].astype(np.float64))
            ax.scatter(uv[:, 0], uv[:, 1], s=1.5, c="red", alpha=0.6, linewidths=0)
            label = (object_id if len(object_id) <= 32 else object_id[:29] + "...") if cam == 0 else ""
            ax.set_title(f"{label}\n{name}", fontsize=6.5)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
