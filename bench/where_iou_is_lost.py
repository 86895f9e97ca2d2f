"""Where a trained model loses its IoU, per category: over-filling or missed walls, near or far.

    python bench/where_iou_is_lost.py --checkpoint runs/long/runs/rig-stereo/model_best.pt \
        --dataset runs/long/dataset [--split test] [--views 1] [--points 20000] [--objects N]

For one view of each object (the evaluation's), the network is asked on ``--points`` of the
object's uniform points (the volumetric IoU's points) at the checkpoint's threshold, and each error
is located against the true mesh:

* the mean of the items' IoU (what ``stereo-occ evaluate`` reports) beside the IoU of the pooled
  points (which weights large objects);
* volume precision and recall (also in ``stereo-occ evaluate``'s metrics): low precision is
  over-filling, low recall is missed parts;
* false positives and false negatives by their distance to the true surface, in object units
  (a mug wall is 0.02-0.07 thick, a bowl's 0.01-0.05); the reference, from the same points, is where
  the occupied points themselves lie;
* the share of false positives inside the object's convex hull (a mug's or bowl's cavity, the gap
  under a handle) rather than outside it, and the share of that cavity (the hull's empty points)
  they fill, beside the cavity's volume over the object's own: a bowl's cavity holds four to six
  bowls of material, so filling a fifth of it costs about as many false positives as the bowl has points.

Run it on ``--split train`` (with ``--objects`` to take a few from each category) beside the test
split to tell over-fitting (training objects far better) from under-fitting (alike).

A blurred band around every wall shows as false positives spread over the first few distance bins
on both sides; a filled cavity as false positives inside the hull, far from the surface.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import trimesh
from scipy.spatial import Delaunay, cKDTree
from torch.utils.data import default_collate

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair, select_objects
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.checkpoint import load_model

EDGES = (0.0, 0.01, 0.02, 0.04, 0.08, np.inf)
"""Distance bins to the true surface, object units."""


class Tally:
    """Counts of one category: hits, errors by distance bin, false positives inside the hull."""

    def __init__(self) -> None:
        bins = len(EDGES) - 1
        self.hits = self.false_pos = self.false_neg = self.false_pos_in_hull = self.cavity = 0
        self.fp_bins, self.fn_bins, self.occupied_bins = np.zeros(bins), np.zeros(bins), np.zeros(bins)
        self.item_ious: list[float] = []

    def add(self, pred: np.ndarray, occupied: np.ndarray, distance: np.ndarray, in_hull: np.ndarray) -> None:
        which = np.clip(np.digitize(distance, EDGES) - 1, 0, len(EDGES) - 2)
        fp, fn = pred & ~occupied, ~pred & occupied
        hits, false_pos, false_neg = (int(np.count_nonzero(m)) for m in (pred & occupied, fp, fn))
        union = hits + false_pos + false_neg
        self.item_ious.append(hits / union if union else 1.0)  # an empty prediction of an empty object is right
        self.hits += hits
        self.false_pos += false_pos
        self.false_neg += false_neg
        self.false_pos_in_hull += int(np.count_nonzero(fp & in_hull))
        self.cavity += int(np.count_nonzero(in_hull & ~occupied))
        for counts, mask in ((self.fp_bins, fp), (self.fn_bins, fn), (self.occupied_bins, occupied)):
            counts += np.bincount(which[mask], minlength=len(counts))

    def row(self, name: str) -> str:
        share = lambda counts: " ".join(f"{v:4.2f}" for v in counts / max(counts.sum(), 1))  # noqa: E731
        union = self.hits + self.false_pos + self.false_neg
        return (
            f"{name:<7} IoU {np.mean(self.item_ious):.3f} (pooled {self.hits / max(union, 1):.3f})  precision {self.hits / max(self.hits + self.false_pos, 1):.3f}"
            f"  recall {self.hits / max(self.hits + self.false_neg, 1):.3f}  FP in hull {self.false_pos_in_hull / max(self.false_pos, 1):.2f}"
            f"  cavity filled {self.false_pos_in_hull / max(self.cavity, 1):.2f} (cavity / object {self.cavity / max(self.hits + self.false_neg, 1):.1f})\n"
            f"        by distance {' '.join(f'<{e:g}' for e in EDGES[1:-1])} >={EDGES[-2]:g}:"
            f"  FP {share(self.fp_bins)} | FN {share(self.fn_bins)} | occupied {share(self.occupied_bins)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--views", type=int, default=1, help="views per object (the first k)")
    parser.add_argument("--points", type=int, default=20_000, help="uniform points per item")
    parser.add_argument("--objects", type=int, default=0,
                        help="at most this many objects, taken in turn from each category (0: all)")
    args = parser.parse_args()

    model, cfg = load_model(args.checkpoint)
    threshold = cfg.eval.threshold
    dataset = StereoOccupancyDataset(args.dataset, args.split, views=args.views, points_per_sample=args.points,
                                     uniform_only=True)
    tallies = {c: Tally() for c in CATEGORIES}
    hulls: dict[int, tuple[cKDTree, Delaunay]] = {}
    objects = select_objects(dataset.categories, args.objects)
    items = [o * dataset.views_per_object + v for o in objects for v in range(dataset.views_per_object)]
    for i in items:
        item = dataset[i]
        batch = default_collate([item])
        with torch.inference_mode():
            code = encode_pair(model, item["left"], item["right"], Cameras.from_batch(batch))
            probs = decode_probs(model, code, item["points"], cfg.eval.batch_points)
        index = int(item["object_index"])
        if index not in hulls:
            mesh = dataset.objects[index].mesh()
            surface, _ = trimesh.sample.sample_surface(mesh, 50_000, seed=index)
            hulls[index] = (cKDTree(surface), Delaunay(mesh.convex_hull.vertices))
        tree, hull = hulls[index]
        points = item["points"].numpy() @ item["rotation"].numpy()  # rig frame -> object frame
        occupied = item["occupancies"].numpy() > 0.5
        tallies[dataset.categories[index]].add(probs >= threshold, occupied, tree.query(points)[0],
                                               hull.find_simplex(points) >= 0)
    print(f"{args.checkpoint} on {args.split} ({len(items)} items, {args.points} uniform points each, "
          f"threshold {threshold})")
    for category in CATEGORIES:
        if tallies[category].hits + tallies[category].false_neg:
            print(tallies[category].row(category))


if __name__ == "__main__":
    main()
