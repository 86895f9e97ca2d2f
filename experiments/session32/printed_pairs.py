"""Plain and printed stereo pairs of the same test objects, and the depth a plane sweep reads off each.

    python experiments/session32/printed_pairs.py --plain runs/quick31/dataset --printed runs/s32/blotches/dataset \
        --out docs/images/s32-printed-pairs.png

One row per object (the first test mug, bowl and bottle, their first view): the left and right
images of the plain dataset, the left view's swept depth (``models/plane_sweep.py``, 48 planes, 3x3
window), the same for the printed dataset (``dataset.render.pattern=blotches``; the same object,
rotation and light), and the rendered depth. Depth maps share one colour scale per row; pixels
where the sweep is more than 0.05 object units off are red.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from stereo_occ.config import CATEGORIES  # noqa: E402
from stereo_occ.data.dataset import StereoOccupancyDataset  # noqa: E402
from stereo_occ.models.cameras import LEFT, Cameras  # noqa: E402
from stereo_occ.models.plane_sweep import plane_sweep  # noqa: E402


def first_of_each(data: StereoOccupancyDataset) -> list[int]:
    """The first item of each category (one view per object: item = object)."""
    picked: dict[str, int] = {}
    for index, category in enumerate(data.categories):
        picked.setdefault(category, index)
    return [picked[c] for c in CATEGORIES if c in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", required=True)
    parser.add_argument("--printed", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sets = {name: StereoOccupancyDataset(root, "test", points_per_sample=16, load_depth=True, views="first")
            for name, root in (("plain", args.plain), ("printed", args.printed))}
    rows = first_of_each(sets["plain"])
    fig, axes = plt.subplots(len(rows), 7, figsize=(14, 2.1 * len(rows)))
    titles = ["plain left", "plain right", "plain: swept depth", "printed left", "printed right",
              "printed: swept depth", "rendered depth"]
    for r, index in enumerate(rows):
        truth = None
        column = 0
        for name in ("plain", "printed"):
            batch = default_collate([sets[name][index]])
            with torch.no_grad():
                left_sweep, _ = plane_sweep(batch["left"], batch["right"], Cameras.from_batch(batch), 48, 0.75)
            truth = batch["depth"][0, LEFT].numpy()
            on = truth > 0
            lo, hi = truth[on].min(), truth[on].max()
            swept = np.where(on, left_sweep[0, 0].numpy(), np.nan)
            wrong = on & (np.abs(swept - truth) > 0.05)
            for image in (batch["left"][0], batch["right"][0]):
                axes[r, column].imshow(image.permute(1, 2, 0).numpy())
                column += 1
            shown = np.ma.masked_where(~on | wrong, swept)
            red = np.zeros((*wrong.shape, 4))
            red[wrong] = (0.85, 0.1, 0.1, 1.0)
            axes[r, column].imshow(red)
            axes[r, column].imshow(shown, cmap="viridis", vmin=lo, vmax=hi)
            axes[r, column].set_xlabel(f"within 0.05: {1 - wrong.sum() / on.sum():.0%}", fontsize=8)
            column += 1
        axes[r, column].imshow(np.ma.masked_where(truth <= 0, truth), cmap="viridis")
        axes[r, 0].set_ylabel(sets["plain"].categories[index])
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
